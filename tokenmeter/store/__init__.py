"""The SQLite store: upserts, cursors, fetch runs, snapshots, merge and export (DESIGN §5).

Writes happen in a ``WriteSession``: records are upserted by ``hash(source, account, key)`` inside
one open transaction, which commits only at a ``Cursor`` checkpoint (together with the cursor)
or at the end of the run; an exception rolls back to the last checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..records import QuotaSnapshot, UsageRecord

__all__ = [
    "NANO",
    "Store",
    "WriteSession",
    "from_nanos",
    "is_busy",
    "is_full",
    "is_read_only",
    "row_id",
    "to_nanos",
    "write_error",
]

NANO = Decimal(10) ** 9
# how many migrations tokenmeter has; when all are applied, opening skips importing sqlite-utils
# (tests/test_store.py checks this matches store/migrations.py)
SCHEMA_MIGRATIONS = 4
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


ROLLUP = 900
_ROLLUP_SQL = """
INSERT INTO usage_rollup (bucket, source, kind, account, provider, model, project, agent, has_cost, currency,
       cost_kind, est_currency, records, calls, requests, input_tokens, output_tokens, cache_read_tokens,
       cache_write_tokens, reasoning_tokens, total_tokens, cost_nanos, est_cost_nanos)
SELECT start_ts - start_ts % 900, source, kind, account, provider, model, project, agent,
       cost_nanos IS NOT NULL, currency, cost_kind, est_currency,
       COUNT(*), SUM(COALESCE(requests, 1)), SUM(requests), SUM(input_tokens), SUM(output_tokens),
       SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
       SUM(COALESCE(total_tokens, input_tokens + output_tokens)), SUM(cost_nanos), SUM(est_cost_nanos)
FROM usage WHERE start_ts >= ? AND start_ts < ?
GROUP BY 1, source, kind, account, provider, model, project, agent, 9, currency, cost_kind, est_currency
"""


def _ranges(buckets: list[int], step: int) -> list[tuple[int, int]]:
    """Sorted bucket starts -> contiguous [lo, hi) ranges."""
    out: list[list[int]] = []
    for b in buckets:
        if out and b <= out[-1][1]:
            out[-1][1] = b + step
        else:
            out.append([b, b + step])
    return [(a, b) for a, b in out]


def to_nanos(value: Decimal | None) -> int | None:
    if value is None:
        return None
    return int((value * NANO).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_nanos(value: int | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value).scaleb(-9)


def row_id(source: str, account: str | None, key: str) -> str:
    return hashlib.blake2b(f"{source}\x1f{account or ''}\x1f{key}".encode(), digest_size=16).hexdigest()


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    # fixed width (microseconds always written) so these strings sort in time order: merge compares them
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@dataclass
class RunCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    snapshots: int = 0


BUSY_TIMEOUT = 30.0  # seconds a write waits for another writer before "database is busy"


def _code(exc: BaseException) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary code of an extended one


def is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock ("database is locked"): worth retrying later."""
    return isinstance(exc, sqlite3.OperationalError) and (
        _code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "is locked" in str(exc))


def is_full(exc: BaseException) -> bool:
    """The disk (or the file's size limit) is full."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        _code(exc) == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc))


def is_read_only(exc: BaseException) -> bool:
    """The database file or its folder cannot be written."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        _code(exc) == sqlite3.SQLITE_READONLY or "readonly database" in str(exc))


def write_error(exc: BaseException, path: str = "") -> StoreError | None:
    """The one-line ``StoreError`` for a failed write (busy, full, read-only), or None for others."""
    where = f"database {path}" if path else "the database"
    if is_busy(exc):
        return StoreError(f"{where} is busy: another tokenmeter run is writing to it; "
                          "try again when it has finished", reason="busy")
    if is_full(exc):
        return StoreError(f"{where}: the disk is full; nothing was changed, the data stored before "
                          "is intact; free some space and try again", reason="full")
    if is_read_only(exc):
        return StoreError(f"{where} is read-only (the file or its folder is not writable): this "
                          "command needs to write to it; reports and exports still work", reason="read-only")
    return None


def _create_private(file: Path) -> None:
    """Create an empty database file 0600 whatever the umask (SQLite gives -wal/-shm the same mode);
    a file that already exists is left alone."""
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _writable(file: Path) -> bool:
    # WAL mode writes the -wal and -shm files next to the database: the folder must be writable too
    return os.access(file, os.W_OK) and os.access(file.parent, os.W_OK | os.X_OK)


def _readable(conn: sqlite3.Connection, uri: str) -> sqlite3.Connection:
    """A read-only WAL database needs its -shm file, which an unwritable folder may not have: then
    read it as immutable (nobody can write it from here anyway)."""
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        return sqlite3.connect(uri.replace("?mode=ro", "?mode=ro&immutable=1"), isolation_level=None,
                               check_same_thread=False, uri=True)


class Store:
    """An open tokenmeter database (migrated, WAL mode, busy timeout).

    A database whose file or folder is not writable opens read-only: reports and exports work,
    writes fail with ``StoreError``.
    """

    def __init__(self, conn: sqlite3.Connection, path: str, *, read_only: bool = False) -> None:
        self.conn = conn
        self.path = path
        self.read_only = read_only
        self._db: Any = None
        self._temp_rollup = False

    @property
    def db(self) -> Any:
        """The connection as a ``sqlite_utils.Database``."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    @classmethod
    def open(cls, path: str | Path, *, migrate: bool = True) -> Store:
        path = str(path)
        read_only = False
        target = path
        if path != ":memory:" and not path.startswith("file:"):
            from ..config import private_dir

            file = Path(path).expanduser()
            try:
                private_dir(file.parent)
                if not file.exists() and os.access(file.parent, os.W_OK | os.X_OK):
                    _create_private(file)
            except OSError as exc:
                raise StoreError(f"cannot create database {path}: {exc.strerror or exc}") from None
            read_only = file.exists() and not _writable(file)
            if read_only:
                target = f"{file.resolve().as_uri()}?mode=ro"
        try:
            # uri=True lets merge ATTACH another file read-only; plain paths work as before
            conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT, check_same_thread=False,
                                   uri=True)
            if read_only:
                conn = _readable(conn, target)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if path != ":memory:" and not read_only:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # big ingests touch the id and time indexes at random: a 16 MB page
            # cache (instead of 2 MB) keeps most of them in memory
            conn.execute("PRAGMA cache_size = -16384")
            conn.execute("PRAGMA temp_store = MEMORY")
            store = cls(conn, path, read_only=read_only)
            if migrate and not store._up_to_date():
                if read_only:
                    raise StoreError(f"database {path} is read-only and needs a schema update: run "
                                     "`tokenmeter db migrate` once as a user who can write to it")
                from .migrations import migrations

                migrations.apply(store.db)
        except sqlite3.DatabaseError as exc:
            mapped = write_error(exc, path)
            if mapped is not None:
                raise mapped from exc
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        return store

    @contextlib.contextmanager
    def busy_timeout(self, seconds: float) -> Iterator[None]:
        """Wait at most ``seconds`` for another writer inside the block (then "database is locked")."""
        (before,) = self.conn.execute("PRAGMA busy_timeout").fetchone()
        self.conn.execute(f"PRAGMA busy_timeout = {int(min(seconds * 1000, before))}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(before)}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _up_to_date(self) -> bool:
        try:
            (n,) = self.conn.execute(
                "SELECT COUNT(*) FROM _sqlite_migrations WHERE migration_set = 'tokenmeter'"
            ).fetchone()
        except sqlite3.OperationalError:
            return False
        return n == SCHEMA_MIGRATIONS

    # -- state -----------------------------------------------------------------------------
    def pending_migrations(self) -> list[str]:
        from .migrations import migrations

        return [m.name for m in migrations.pending(self.db)]

    def get_cursor(self, source: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT cursor FROM source_state WHERE source = ?", (source,)).fetchone()
        if not row or not row[0]:
            return {}
        return json.loads(row[0])

    def source_states(self) -> dict[str, dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM source_state")
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    def record_error(self, source: str, message: str) -> None:
        self.conn.execute(
            "INSERT INTO source_state (source, last_error, last_error_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET last_error = excluded.last_error, "
            "last_error_at = excluded.last_error_at, updated_at = excluded.updated_at",
            (source, message, now_iso(), now_iso()),
        )

    def log_run(self, **values: Any) -> None:
        cols = ", ".join(f'"{c}"' for c in values)
        self.conn.execute(
            f"INSERT INTO fetch_runs ({cols}) VALUES ({', '.join('?' * len(values))})", list(values.values())
        )

    def last_runs(self) -> dict[str, dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT * FROM fetch_runs WHERE id IN (SELECT MAX(id) FROM fetch_runs GROUP BY source)"
        )
        names = [d[0] for d in cur.description]
        return {r[1]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    # -- writing ---------------------------------------------------------------------------
    def session(self, source: str, kind: str, *, pricer: Any = None) -> WriteSession:
        return WriteSession(self, source, kind, pricer)

    # -- reading ---------------------------------------------------------------------------
    def usage_rows(self, **where: Any) -> list[dict[str, Any]]:
        """Stored usage rows as dicts (costs as Decimal), optionally filtered by exact column values."""
        sql = "SELECT * FROM usage"
        params: list[Any] = []
        if where:
            sql += " WHERE " + " AND ".join(f'"{k}" = ?' for k in where)
            params = list(where.values())
        sql += " ORDER BY start_ts, source, key"
        return [_public_row(r) for r in self._dicts(sql, params)]

    def snapshots(self, latest: bool = True) -> list[dict[str, Any]]:
        if latest:
            sql = (
                "SELECT q.* FROM quota_snapshots q JOIN (SELECT provider, IFNULL(account, '') a, name, "
                "MAX(observed_at) m FROM quota_snapshots GROUP BY provider, IFNULL(account, ''), name) l "
                "ON q.provider = l.provider AND IFNULL(q.account, '') = l.a AND q.name = l.name "
                "AND q.observed_at = l.m ORDER BY q.provider, q.name"
            )
        else:
            sql = "SELECT * FROM quota_snapshots ORDER BY observed_at"
        out = []
        for r in self._dicts(sql, []):
            for k in ("used", "remaining", "total"):
                r[k] = None if r[k] is None else Decimal(r[k])
            r["details"] = json.loads(r["details"] or "{}")
            out.append(r)
        return out

    def _dicts(self, sql: str, params: Iterable[Any]) -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        for r in cur:
            yield dict(zip(names, r, strict=True))

    def reprice(self, pricer: Any) -> tuple[int, int]:
        """Recompute every estimate with ``pricer``; returns (changed, total)."""
        from ..records import UsageRecord

        changed = total = 0
        updates = []
        cur = self.conn.execute(
            "SELECT id, provider, model, start, requests, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, reasoning_tokens, est_cost_nanos, est_currency, price_basis "
            "FROM usage WHERE model IS NOT NULL"
        )
        for row in cur.fetchall():
            total += 1
            start = datetime.fromisoformat(row[3].replace("Z", "+00:00"))
            rec = UsageRecord(key="x", start=start, provider=row[1], model=row[2], requests=row[4],
                              input_tokens=row[5], output_tokens=row[6], cache_read_tokens=row[7],
                              cache_write_tokens=row[8], reasoning_tokens=row[9])
            est = pricer(rec) if pricer else None
            new = (to_nanos(est.cost), est.currency, est.basis) if est else (None, None, None)
            if new != tuple(row[10:13]):
                changed += 1
                updates.append((*new, row[0]))
        with _tx(self):
            self.conn.executemany(
                "UPDATE usage SET est_cost_nanos = ?, est_currency = ?, price_basis = ? WHERE id = ?", updates
            )
        return changed, total

    # -- rollup ----------------------------------------------------------------------------
    def refresh_rollup(self) -> int:
        """Recompute the 15-minute rollup for buckets changed since the last report; returns how many.

        When the file cannot take the write (read-only, disk full), the stale buckets are recomputed
        in memory for this connection instead.
        """
        self._drop_temp_rollup()
        if not self.conn.execute("SELECT 1 FROM rollup_dirty LIMIT 1").fetchone():
            return 0
        if not self.read_only:
            try:
                with _tx(self):
                    buckets = [b for (b,) in self.conn.execute("SELECT bucket FROM rollup_dirty ORDER BY bucket")]
                    for lo, hi in _ranges(buckets, ROLLUP):
                        self.conn.execute("DELETE FROM usage_rollup WHERE bucket >= ? AND bucket < ?", (lo, hi))
                        self.conn.execute(_ROLLUP_SQL, (lo, hi))
                    self.conn.execute("DELETE FROM rollup_dirty")
                return len(buckets)
            except StoreError as exc:
                if exc.reason not in ("full", "read-only"):
                    raise
        return self._refresh_rollup_in_memory()

    def _refresh_rollup_in_memory(self) -> int:
        # rebuild the stale buckets in a TEMP copy of the rollup, which this connection's unqualified
        # `usage_rollup` resolves to (temp is searched before main); the file is not touched
        buckets = [b for (b,) in self.conn.execute("SELECT bucket FROM rollup_dirty ORDER BY bucket")]
        self.conn.execute("CREATE TEMP TABLE usage_rollup AS SELECT * FROM main.usage_rollup")
        self._temp_rollup = True
        for lo, hi in _ranges(buckets, ROLLUP):
            self.conn.execute("DELETE FROM temp.usage_rollup WHERE bucket >= ? AND bucket < ?", (lo, hi))
            self.conn.execute(_ROLLUP_SQL, (lo, hi))
        return len(buckets)

    def _drop_temp_rollup(self) -> None:
        if self._temp_rollup:
            self.conn.execute("DROP TABLE IF EXISTS temp.usage_rollup")
            self._temp_rollup = False

    def mark_all_dirty(self) -> None:
        # the rollup's own buckets too: rows removed behind the triggers' back leave buckets to drop
        self.conn.execute(
            "INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT start_ts - start_ts % 900 FROM usage "
            "UNION SELECT DISTINCT bucket FROM usage_rollup"
        )

    # -- merge -----------------------------------------------------------------------------
    def merge(self, other: str | Path, *, timeout: float | None = None) -> dict[str, int]:
        """Merge another tokenmeter database in. Idempotent: merging the same file twice changes nothing.

        A row from the other file replaces ours only when it was fetched later. Cursors and fetch
        runs are per machine and are not merged. The other file is untrusted input (see
        ``store/merge.py``): a wrong or newer schema, an unreadable file or running out of
        ``timeout`` seconds is a ``StoreError`` and changes nothing; bad rows are skipped and
        counted in ``skipped``.
        """
        from .merge import MERGE_TIMEOUT, merge_database

        return merge_database(self, other, timeout=MERGE_TIMEOUT if timeout is None else timeout)


class _tx:
    def __init__(self, store: Store) -> None:
        self.conn = store.conn
        self.path = store.path

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # the busy timeout ran out, a read-only file: one clear line instead of a traceback
            mapped = write_error(exc, self.path)
            if mapped is None:
                raise
            raise mapped from None

    def __exit__(self, exc_type: object, exc: BaseException | None, *rest: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as failed:
                exc = failed
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back already
            self.conn.execute("ROLLBACK")
        mapped = write_error(exc, self.path) if exc is not None else None
        if mapped is not None:  # e.g. the disk filled up: nothing of this transaction was stored
            raise mapped from None
        if exc_type is None and exc is not None:
            raise exc


def _public_row(r: dict[str, Any]) -> dict[str, Any]:
    r["cost"] = from_nanos(r.pop("cost_nanos"))
    r["estimated_cost"] = from_nanos(r.pop("est_cost_nanos"))
    r["details"] = json.loads(r["details"] or "{}")
    return r


class WriteSession:
    """Upserts one source run's records; commits with each cursor checkpoint."""

    def __init__(self, store: Store, source: str, kind: str, pricer: Any) -> None:
        self.store = store
        self.conn = store.conn
        self.source = source
        self.kind = kind
        self.pricer = pricer
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

    def add(self, item: UsageRecord | QuotaSnapshot) -> None:
        self.uncommitted += 1
        if isinstance(item, QuotaSnapshot):
            self._add_snapshot(item)
            return
        row = self._row(item)
        # the same key twice in one run (e.g. a forked log line): last one wins, counted once
        self._pending[row[0]] = row
        if len(self._pending) >= BATCH:
            self.flush()

    def _row(self, r: UsageRecord) -> tuple[Any, ...]:
        # the hot path of a large log ingest: every call here is per record
        details = (
            json.dumps(dict(r.details), sort_keys=True, default=str, separators=(",", ":")) if r.details else "{}"
        )
        est = self.pricer(r) if self.pricer is not None and r.model else None
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
            ts_at = USAGE_COLUMNS.index("start_ts")
            buckets = {r[ts_at] - r[ts_at] % ROLLUP for r in rows}
            self.conn.executemany("INSERT OR IGNORE INTO rollup_dirty VALUES (?)", [(b,) for b in buckets])
        self._max_rowid = top
        self.counts.new += new
        self.counts.updated += changed - new
        self.counts.unchanged += len(rows) - changed

    def _add_snapshot(self, s: QuotaSnapshot) -> None:
        self._begin()
        observed = iso(s.observed_at)
        sid = hashlib.sha256(
            f"{s.provider}\x1f{s.account or ''}\x1f{s.name}\x1f{observed}".encode()
        ).hexdigest()[:32]
        self.conn.execute(
            "INSERT OR REPLACE INTO quota_snapshots (id, source, provider, account, name, unit, used, "
            "remaining, total, resets_at, observed_at, details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (sid, self.source, s.provider, s.account, s.name, s.unit, _dec(s.used), _dec(s.remaining),
             _dec(s.total), iso(s.resets_at), observed,
             json.dumps(dict(s.details), sort_keys=True, default=str)),
        )
        self.counts.snapshots += 1

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
