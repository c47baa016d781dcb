"""The write session of one source run: records upserted by ``hash(source, account, key)`` inside
one open transaction, which commits only at a ``Cursor`` checkpoint (together with the cursor) or
at the end of the run; an exception rolls back to the last checkpoint.

Records arrive priced (the fetch runner estimates them): the store never calls into pricing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..records import QuotaSnapshot, UsageRecord
from .base import Estimate, RunCounts
from .common import ROLLUP, iso, now_iso, row_id, to_nanos
from .quota import insert_snapshot

if TYPE_CHECKING:
    from . import Store

__all__ = ["BATCH", "USAGE_COLUMNS", "WriteSession"]

BATCH = 5000

USAGE_COLUMNS = (
    "id", "source", "kind", "account", "key", "provider", "model", "project", "session", "agent",
    "start", "end", "start_ts", "end_ts", "requests", "errors", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens",
    "cost_nanos", "currency", "cost_kind", "est_cost_nanos", "est_currency", "price_basis",
    "details", "content_hash", "fetched_at",
)
_UPSERT_SQL = (
    "INSERT INTO usage ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {sets} "
    "WHERE usage.content_hash IS NOT excluded.content_hash"
).format(
    cols=", ".join(f'"{c}"' for c in USAGE_COLUMNS),
    marks=", ".join("?" for _ in USAGE_COLUMNS),
    sets=", ".join(f'"{c}" = excluded."{c}"' for c in USAGE_COLUMNS if c != "id"),
)
_START_TS = USAGE_COLUMNS.index("start_ts")


class WriteSession:
    """Upserts one source run's records; commits with each cursor checkpoint."""

    def __init__(self, store: Store, source: str, kind: str) -> None:
        self.store = store
        self.conn = store.conn
        self.source = source
        self.kind = kind
        self.counts = RunCounts()
        self.committed = RunCounts()  # what the last checkpoint made durable
        self.uncommitted = 0  # records and snapshots added since then (lost if the run fails)
        self._pending: dict[str, tuple[Any, ...]] = {}
        self._fetched_at = now_iso()
        self._in_tx = False
        self._max_rowid: int | None = None

    def _begin(self) -> None:
        if not self._in_tx:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def add(self, item: UsageRecord | QuotaSnapshot, estimate: Estimate | None = None) -> None:
        """Add a record with its price-table estimate (None: no price), or a quota snapshot."""
        self.uncommitted += 1
        if isinstance(item, QuotaSnapshot):
            self._begin()
            insert_snapshot(self.conn, self.source, item)
            self.counts.snapshots += 1
            return
        row = self._row(item, estimate)
        # the same key twice in one run (e.g. a forked log line): last one wins, counted once
        self._pending[row[0]] = row
        if len(self._pending) >= BATCH:
            self.flush()

    def _row(self, r: UsageRecord, est: Estimate | None) -> tuple[Any, ...]:
        # the hot path of a large log ingest: every call here is per record
        details = (
            json.dumps(dict(r.details), sort_keys=True, default=str, separators=(",", ":")) if r.details else "{}"
        )
        start = r.start
        end = r.end or start
        start_iso = iso(start)
        end_iso = start_iso if end == start else iso(end)
        cost = to_nanos(r.cost)
        content: tuple[Any, ...] = (
            self.kind, r.account, r.key, r.provider, r.model, r.project, r.session, start_iso, end_iso,
            r.requests, r.errors, r.input_tokens, r.output_tokens, r.cache_read_tokens,
            r.cache_write_tokens, r.reasoning_tokens, r.total_tokens, cost, r.currency, r.cost_kind, details,
        )
        if r.agent is not None:  # only then: rows stored before agents existed keep their hash
            content += (r.agent,)
        content_hash = hashlib.blake2b(repr(content).encode(), digest_size=12).hexdigest()
        return (
            row_id(self.source, r.account, r.key), self.source, self.kind, r.account, r.key,
            r.provider, r.model, r.project, r.session, r.agent, start_iso, end_iso,
            int(start.timestamp()), int(end.timestamp()), r.requests, r.errors, r.input_tokens,
            r.output_tokens, r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens,
            r.total_tokens, cost, r.currency, r.cost_kind,
            to_nanos(est.cost) if est else None, est.currency if est else None,
            est.basis if est else None, details, content_hash, self._fetched_at,
        )

    def flush(self) -> None:
        if not self._pending:
            return
        self._begin()
        rows = list(self._pending.values())
        self._pending = {}
        if self._max_rowid is None:
            self._max_rowid = self.conn.execute("SELECT IFNULL(MAX(rowid), 0) FROM usage").fetchone()[0]
        # one statement per row: insert, or replace only when the content changed. New rows take
        # rowids above the old maximum (nothing is ever deleted), so the counts need no extra lookups.
        changed = self.conn.executemany(_UPSERT_SQL, rows).rowcount
        top = self.conn.execute("SELECT IFNULL(MAX(rowid), 0) FROM usage").fetchone()[0]
        new = top - self._max_rowid
        if new:
            # the rollup buckets of inserted rows (updates mark theirs by trigger); when a batch
            # mixes new and unchanged rows, marking all its buckets costs a little rebuild work
            buckets = {r[_START_TS] - r[_START_TS] % ROLLUP for r in rows}
            self.conn.executemany("INSERT OR IGNORE INTO rollup_dirty VALUES (?)", [(b,) for b in buckets])
        self._max_rowid = top
        self.counts.new += new
        self.counts.updated += changed - new
        self.counts.unchanged += len(rows) - changed

    def checkpoint(self, cursor: Mapping[str, Any] | None) -> None:
        """Write pending rows and the cursor, then commit."""
        self.flush()
        self._begin()
        if cursor is not None:
            self.conn.execute(
                "INSERT INTO source_state (source, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (self.source, json.dumps(dict(cursor), sort_keys=True), now_iso()),
            )
        self.conn.execute("COMMIT")
        self._in_tx = False
        self._max_rowid = None  # another writer may insert before our next transaction
        self.committed = RunCounts(**self.counts.__dict__)
        self.uncommitted = 0

    def finish(self, cursor: Mapping[str, Any] | None) -> None:
        self.checkpoint(cursor)
        now = now_iso()
        self.conn.execute(
            "INSERT INTO source_state (source, last_success, last_error, updated_at) VALUES (?, ?, NULL, ?) "
            "ON CONFLICT(source) DO UPDATE SET last_success = excluded.last_success, last_error = NULL, "
            "updated_at = excluded.updated_at",
            (self.source, now, now),
        )

    def abort(self) -> None:
        self._pending = {}
        self._max_rowid = None
        if self._in_tx:
            self._in_tx = False
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back on its own (disk full)
                self.conn.execute("ROLLBACK")
