"""The SQLite store: every SQL statement tokenmeter runs lives under this package (DESIGN §5).

``Store`` implements ``base.UsageStore``, the interface the rest of tokenmeter uses; its methods
are grouped by noun: ``session.py`` (a source run's writes), ``usage.py`` (rows, re-estimates),
``rollup.py`` (the report rollup and its aggregates), ``quota.py``, ``state.py`` (cursors, runs,
alerts) and ``merge.py``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..dburl import is_url, redact_url
from ..errors import StoreError
from .base import Filters, RunCounts, StoredUsage, UsageStore, UsageTotal, UsageWriter
from .common import (
    BUSY_TIMEOUT,
    NANO,
    NEXT_SEQ,
    ROLLUP,
    dicts,
    from_nanos,
    is_busy,
    is_full,
    is_read_only,
    iso,
    now_iso,
    row_id,
    to_nanos,
    write_error,
)
from .quota import QuotaQueries
from .rollup import RollupQueries
from .session import BATCH, USAGE_COLUMNS, WriteSession
from .state import StateQueries
from .usage import UsageQueries

__all__ = [
    "BATCH",
    "BUSY_TIMEOUT",
    "NANO",
    "ROLLUP",
    "USAGE_COLUMNS",
    "Filters",
    "RunCounts",
    "Store",
    "StoredUsage",
    "UsageStore",
    "UsageTotal",
    "UsageWriter",
    "WriteSession",
    "from_nanos",
    "is_busy",
    "is_full",
    "is_read_only",
    "is_url",
    "iso",
    "now_iso",
    "open_store",
    "redact_url",
    "row_id",
    "to_nanos",
    "write_error",
]

# how many migrations tokenmeter has; when all are applied, opening skips importing sqlite-utils
# (tests/test_store.py checks this matches store/migrations.py)
SCHEMA_MIGRATIONS = 5


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


class Store(UsageQueries, RollupQueries, QuotaQueries, StateQueries):
    """An open tokenmeter SQLite database (migrated, WAL mode, busy timeout); a ``UsageStore``.

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
            # big ingests touch the id index at random: an 8 MB page cache (instead of 2 MB)
            # keeps most of it in memory (the time index is built after a bulk load); more
            # measured no faster and counts against an ingest's memory
            conn.execute("PRAGMA cache_size = -8192")
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

    # -- schema and writing -------------------------------------------------------------
    def pending_migrations(self) -> list[str]:
        from .migrations import migrations

        return [m.name for m in migrations.pending(self.db)]

    def _dicts(self, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
        return dicts(self.conn, sql, params)

    def session(self, source: str, kind: str, machine: str | None = None) -> WriteSession:
        """The writer of one source run (records arrive priced: see ``WriteSession.add``); its rows
        name ``machine``."""
        return WriteSession(self, source, kind, machine)

    def _mark_inserted(self, buckets: Iterable[int]) -> None:
        """Mark the buckets of inserted rows for the rollup and for `db push` (updates and deletes
        mark theirs by trigger)."""
        marks = sorted(buckets)
        self.conn.executemany("INSERT OR IGNORE INTO rollup_dirty VALUES (?)", [(b,) for b in marks])
        self._mark_changed(marks)

    def _mark_changed(self, buckets: Iterable[int]) -> None:
        """Number the buckets of inserted rows for `db push` (triggers number updates and deletes)."""
        marks = sorted(buckets)
        if not marks:
            return
        # one MAX per batch, not per bucket: the caller holds the write lock, so nobody else numbers
        (top,) = self.conn.execute("SELECT " + NEXT_SEQ).fetchone()
        self.conn.executemany("INSERT INTO usage_changes (bucket, seq) VALUES (?, ?) "
                              "ON CONFLICT(bucket) DO UPDATE SET seq = excluded.seq",
                              [(b, top + i) for i, b in enumerate(marks)])

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


def open_store(location: str | Path, *, migrate: bool = True) -> Any:
    """The store at ``location``: a libpq URL (``postgresql://…``) opens a hub (``PgStore``),
    anything else a SQLite file (``Store``). Both are a ``UsageStore``."""
    if isinstance(location, str) and is_url(location):
        from .pg import PgStore

        return PgStore.open(location, migrate=migrate)
    return Store.open(location, migrate=migrate)
