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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..batch import RecordBatch
from ..records import QuotaSnapshot, UsageRecord
from .base import Estimate, RunCounts
from .bulk import NanoEstimate, Sums, encode_rows, merge_sums, rollup_sums
from .common import _tx, iso, now_iso, row_id, to_nanos
from .quota import insert_snapshot

if TYPE_CHECKING:
    from . import Store

__all__ = ["BATCH", "USAGE_COLUMNS", "NanoEstimate", "WriteSession"]

BATCH = 5000
# The time index is rebuilt after a bulk load into an empty table (sorting once beats inserting
# at random: a third of the load); a load killed before that leaves it to the next write session.
START_INDEX = "idx_usage_start"
_START_INDEX_SQL = f"CREATE INDEX IF NOT EXISTS {START_INDEX} ON usage (start_ts)"
BULK_WAL_PAGES = 100_000  # write-ahead log pages (~400 MB) a bulk load lets grow before copying them
ROLL_MIN = 2000  # rows a transaction inserts before they go into the rollup as partial sums at once

USAGE_COLUMNS = (
    "id", "source", "kind", "account", "key", "provider", "model", "project", "session", "agent", "machine",
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
# add_rows' rows: the columns that vary per row; _bulk_sql writes the rest into the statement
_BULK_COLUMNS = (
    "id", "key", "model", "project", "session", "agent", "start", "start_ts", "requests", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens",
    "est_cost_nanos", "est_currency", "price_basis", "details", "content_hash",
)


def _literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    if "\x00" in value:  # a NUL would cut an SQL literal short: never the case for ids and labels
        raise ValueError("NUL in a source, account or provider label")
    return "'" + value.replace("'", "''") + "'"


def _bulk_sql(source: str, kind: str, account: str | None, provider: str, fetched_at: str,
              machine: str | None) -> str:
    """The upsert of ``_BULK_COLUMNS`` rows: the batch's shared values are literals, end = start, no cost."""
    params = {c: f"?{i}" for i, c in enumerate(_BULK_COLUMNS, 1)}
    params.update(source=_literal(source), kind=_literal(kind), account=_literal(account),
                  provider=_literal(provider), fetched_at=_literal(fetched_at), machine=_literal(machine),
                  end=params["start"],
                  end_ts=params["start_ts"], errors="NULL", cost_nanos="NULL", currency="NULL", cost_kind="NULL")
    return _UPSERT_SQL.replace(", ".join("?" for _ in USAGE_COLUMNS), ", ".join(params[c] for c in USAGE_COLUMNS))


class WriteSession:
    """Upserts one source run's records; commits with each cursor checkpoint."""

    def __init__(self, store: Store, source: str, kind: str, machine: str | None = None) -> None:
        self.store = store
        self.conn = store.conn
        self.source = source
        self.kind = kind
        self.machine = machine
        self.counts = RunCounts()
        self.committed = RunCounts()  # what the last checkpoint made durable
        self.uncommitted = 0  # records and snapshots added since then (lost if the run fails)
        self._pending: dict[str, tuple[Any, ...]] = {}  # full rows (USAGE_COLUMNS) by id
        self._bulk: dict[str, tuple[Any, ...]] = {}  # add_rows' rows (_BULK_COLUMNS) by id
        self._bulk_key: tuple[str | None, str] | None = None  # their (account, provider)
        self._bulk_sql = ""
        self._fetched_at = now_iso()
        self._in_tx = False
        self._max_rowid: int | None = None
        self._tx_rowid: int | None = None  # the highest rowid before this transaction's inserts
        # the batches added since the last flush (their rollup sums, if made with them, and their
        # rows), and the rollup sums of the rows this transaction inserted (None: summed in SQL)
        self._flush_sums: list[tuple[Sums | None, Sequence[tuple[Any, ...]]]] = []
        self._flush_rows = 0
        self._tx_sums: Sums | None = {}
        self._index_checked = False
        self._index_dropped = False  # this session dropped the time index for a bulk load
        self._autocheckpoint = 1000
        self._rolls = 0  # checkpoints that added partial rollup rows, over buckets _rolled (lo, hi)
        self._rolled: tuple[int, int] | None = None

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
        if self._bulk:
            self._bulk.pop(row[0], None)
        if len(self._pending) + len(self._bulk) >= BATCH:
            self.flush()

    @property
    def encoding(self) -> tuple[str, str]:
        """What ``encode_rows`` needs besides a batch: rows prepared with it are taken as they are."""
        return (self.source, self.kind)

    def add_rows(self, batch: RecordBatch, estimates: Sequence[NanoEstimate | None] | None = None) -> None:
        """Add a ``RecordBatch`` with one estimate per row (``(cost nanos, currency, basis)`` or None).

        The bulk form of ``add``: the same columns, content hash and row id as ``_row`` gives the
        row's ``UsageRecord`` (tests prove it). A batch prepared for this session (``batch.prepared``
        made by ``encode_rows`` with ``self.encoding``, e.g. in a worker process) is stored as it
        is; else its rows are encoded here with ``estimates`` (None: no estimates).
        """
        account, provider = batch.account, batch.provider
        if self._bulk and self._bulk_key != (account, provider):
            self.flush()
        if not self._bulk:
            self._bulk_key = (account, provider)
            self._bulk_sql = _bulk_sql(self.source, self.kind, account, provider, self._fetched_at, self.machine)
        prepared = batch.prepared
        sums = None
        if prepared is not None and prepared[0] == self.encoding and len(prepared[1]) == len(batch.rows):
            encoded = prepared[1]
            sums = prepared[2] if len(prepared) > 2 else None
        else:
            encoded = encode_rows(batch, estimates or [None] * len(batch.rows), *self.encoding)
        self._flush_sums.append((sums, encoded))
        self._flush_rows += len(encoded)
        full = self._pending
        if full:
            for row in encoded:
                full.pop(row[0], None)  # the same key added by add() in this batch: last one wins
        self._bulk.update(zip([row[0] for row in encoded], encoded, strict=True))
        if len(self._bulk) + len(full) >= BATCH:
            self.flush()
        self.uncommitted += len(batch.rows)

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
            r.provider, r.model, r.project, r.session, r.agent, self.machine, start_iso, end_iso,
            int(start.timestamp()), int(end.timestamp()), r.requests, r.errors, r.input_tokens,
            r.output_tokens, r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens,
            r.total_tokens, cost, r.currency, r.cost_kind,
            to_nanos(est.cost) if est else None, est.currency if est else None,
            est.basis if est else None, details, content_hash, self._fetched_at,
        )

    def flush(self) -> None:
        if not self._pending and not self._bulk:
            return
        self._begin()
        rows = list(self._pending.values())
        bulk = list(self._bulk.values())
        self._pending, self._bulk = {}, {}
        if self._max_rowid is None:
            self._max_rowid = self.conn.execute("SELECT IFNULL(MAX(rowid), 0) FROM usage").fetchone()[0]
            if self._tx_rowid is None:
                self._tx_rowid = self._max_rowid
            if not self._index_checked:
                self._check_index(len(bulk))
        # one statement per row: insert, or replace only when the content changed. New rows take
        # rowids above the old maximum (nothing is ever deleted), so the counts need no extra lookups.
        changed = self.conn.executemany(_UPSERT_SQL, rows).rowcount if rows else 0
        if bulk and self._index_dropped:
            # a load into a table that was empty: plain inserts, unless an id came twice (then the
            # upsert decides for those; the rows just inserted are unchanged to it)
            sql = self._bulk_sql
            done = self.conn.executemany(sql[: sql.index(" ON CONFLICT")].replace("INSERT", "INSERT OR IGNORE", 1),
                                         bulk).rowcount
            changed += done if done == len(bulk) else done + self.conn.executemany(sql, bulk).rowcount
        elif bulk:
            changed += self.conn.executemany(self._bulk_sql, bulk).rowcount
        top = self.conn.execute("SELECT IFNULL(MAX(rowid), 0) FROM usage").fetchone()[0]
        new = top - self._max_rowid
        self._max_rowid = top
        self._take_sums(not rows and new == len(bulk) == self._flush_rows)
        self.counts.new += new
        self.counts.updated += changed - new
        self.counts.unchanged += len(rows) + len(bulk) - changed

    def _take_sums(self, all_new: bool) -> None:
        """Keep the flushed batches' rollup sums for the transaction when every row they hold was
        inserted (else, e.g. an id seen twice, an update, rows added one by one: summed in SQL)."""
        sums, self._flush_sums, self._flush_rows = self._flush_sums, [], 0
        if self._tx_sums is None or not all_new:
            self._tx_sums = None
            return
        account, provider = self._bulk_key or (None, "")
        for part, rows in sums:
            # summed here when the batch came without (not prepared, or some rows dropped since)
            part = rollup_sums(rows) if part is None else part
            merge_sums(self._tx_sums, {(account, provider, *k): v for k, v in part.items()})

    def _check_index(self, bulk: int) -> None:
        """Drop the time index before a bulk load into an empty table; put it back if a killed load
        left it missing."""
        self._index_checked = True
        has = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                                (START_INDEX,)).fetchone()
        if self._max_rowid == 0 and bulk >= BATCH:
            if has:
                self.conn.execute(f"DROP INDEX {START_INDEX}")
            self._index_dropped = True
            # and the log is copied into the file once at the end, not at every commit (each copy
            # waits for the disk)
            self._autocheckpoint = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_WAL_PAGES}")
        elif not has:
            self.conn.execute(_START_INDEX_SQL)

    def _restore_index(self) -> None:
        if self._index_dropped:
            with _tx(self.store):
                self.conn.execute(_START_INDEX_SQL)
            self._index_dropped = False
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")

    def checkpoint(self, cursor: Mapping[str, Any] | None) -> None:
        """Write pending rows and the cursor, then commit."""
        self.flush()
        self._begin()
        self._roll()
        if cursor is not None:
            self.conn.execute(
                "INSERT INTO source_state (source, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (self.source + self.store.state_suffix, json.dumps(dict(cursor), sort_keys=True), now_iso()),
            )
        self.conn.execute("COMMIT")
        self._in_tx = False
        self._max_rowid = None  # another writer may insert before our next transaction
        self.committed = RunCounts(**self.counts.__dict__)
        self.uncommitted = 0

    def _roll(self) -> None:
        """Put the rows this transaction inserted into the rollup, as one set of partial sums (per
        checkpoint, not per flush: fewer partial rows keep reports fast); updated rows marked
        their buckets by trigger."""
        if self._tx_rowid is not None and self._max_rowid is not None and self._max_rowid > self._tx_rowid:
            if self._max_rowid - self._tx_rowid < ROLL_MIN:
                # a few rows (a watch or status-line refresh every few seconds): mark their buckets
                # for the next refresh instead, which leaves one row per group, not one set per run
                self.store._mark_inserted(self.store._inserted_buckets(self._tx_rowid, self._max_rowid))
                self._tx_rowid = None
                self._tx_sums = {}
                return
            if self._tx_sums:
                buckets = self.store._roll_sums(self.source, self.kind, self.machine, self._tx_sums)
            else:
                buckets = self.store._roll_inserted(self._tx_rowid, self._max_rowid)
            self.store._mark_changed(buckets)
            if buckets:
                self._rolls += 1
                lo, hi = self._rolled or (buckets[0], buckets[0])
                self._rolled = (min(lo, *buckets), max(hi, *buckets))
        self._tx_rowid = None
        self._tx_sums = {}

    def _compact(self) -> None:
        # several checkpoints left partial rows in the same buckets: merge them (a sum of the
        # rollup's own rows, far cheaper than rebuilding from usage) so reports stay fast
        if self._rolls > 1 and self._rolled is not None:
            with _tx(self.store):
                self.store._compact_rollup(*self._rolled)
        self._rolls, self._rolled = 0, None

    def finish(self, cursor: Mapping[str, Any] | None) -> None:
        self.checkpoint(cursor)
        self._compact()
        self._restore_index()
        now = now_iso()
        self.conn.execute(
            "INSERT INTO source_state (source, last_success, last_error, updated_at) VALUES (?, ?, NULL, ?) "
            "ON CONFLICT(source) DO UPDATE SET last_success = excluded.last_success, last_error = NULL, "
            "updated_at = excluded.updated_at",
            (self.source + self.store.state_suffix, now, now),
        )

    def abort(self) -> None:
        self._pending, self._bulk = {}, {}
        self._flush_sums, self._flush_rows, self._tx_sums = [], 0, {}
        self._max_rowid = self._tx_rowid = None
        if self._in_tx:
            self._in_tx = False
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back on its own (disk full)
                self.conn.execute("ROLLBACK")
        with contextlib.suppress(Exception):  # else the next write session puts it back
            self._restore_index()
