"""Values and errors every part of the SQLite store shares: nano-unit money, row ids, UTC text
times, the mapping of SQLite failures to one-line ``StoreError``s, and the write transaction."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ..errors import StoreError

NANO = Decimal(10) ** 9
BUSY_TIMEOUT = 30.0  # seconds a write waits for another writer before "database is busy"
ROLLUP = 900  # seconds per report rollup bucket
# a bucket's change number for `db push`: one above the highest so far (an index keeps MAX cheap)
NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM usage_changes)"


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


def dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def dicts(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
    """The rows of ``sql`` as dicts keyed by column name."""
    cur = conn.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    for r in cur:
        yield dict(zip(names, r, strict=True))


def _code(exc: BaseException) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary code of an extended one


def _sqlstate(exc: BaseException) -> str:
    return getattr(exc, "sqlstate", None) or ""  # PostgreSQL's error code (pg_conn.PgError)


def is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock ("database is locked"): worth retrying later."""
    return isinstance(exc, sqlite3.OperationalError) and (
        _code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "is locked" in str(exc)
        # lock_not_available, deadlock_detected, serialization_failure
        or _sqlstate(exc) in ("55P03", "40P01", "40001"))


def is_full(exc: BaseException) -> bool:
    """The disk (or the file's size limit) is full."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        _code(exc) == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
        or _sqlstate(exc) in ("53100", "54000"))  # disk_full, program_limit_exceeded


def is_read_only(exc: BaseException) -> bool:
    """The database file or its folder cannot be written (on a server: no right to write)."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        _code(exc) == sqlite3.SQLITE_READONLY or "readonly database" in str(exc)
        or _sqlstate(exc) in ("25006", "42501"))  # read_only_sql_transaction, insufficient_privilege


def write_error(exc: BaseException, path: str = "") -> StoreError | None:
    """The one-line ``StoreError`` for a failed write (busy, full, read-only), or None for others."""
    where = f"database {path}" if path else "the database"
    if is_busy(exc):
        return StoreError(f"{where} is busy: another tokenmeter run is writing to it; "
                          "try again when it has finished", reason="busy")
    if is_full(exc):
        return StoreError(f"{where}: the disk is full; nothing was changed, the data stored before "
                          "is intact; free some space and try again", reason="full")
    if is_read_only(exc) and _sqlstate(exc):
        return StoreError(f"{where} does not accept writes from this user (no write permission, or a "
                          "read-only server): this command needs to write to it; reports still work",
                          reason="read-only")
    if is_read_only(exc):
        return StoreError(f"{where} is read-only (the file or its folder is not writable): this "
                          "command needs to write to it; reports and exports still work", reason="read-only")
    return None


class _tx:
    """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``); failures become one-line errors."""

    def __init__(self, store: Any) -> None:
        self.conn: sqlite3.Connection = store.conn
        self.path: str = store.path

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
