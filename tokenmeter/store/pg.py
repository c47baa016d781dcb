"""The PostgreSQL store (a team hub): ``PgStore`` implements ``base.UsageStore`` with the same
query modules as the SQLite ``Store``, through ``pg_conn.PgConnection``.

Only what the engines do differently lives here: connecting (a libpq URL; ``PGPASSWORD``,
``~/.pgpass`` and ``sslmode`` work as in psql), migrations under an advisory lock, bulk writes
(``pg_write``) and the rollup refresh, which many machines may run at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..dburl import redact_text, redact_url, url_secrets
from ..errors import StoreError
from .common import BUSY_TIMEOUT, ROLLUP, _tx
from .pg_conn import PgConnection, numeric_as_int
from .pg_schema import ROLLUP_LOCK
from .quota import QuotaQueries
from .rollup import _ROLLUP_SQL, RollupQueries, _ranges
from .state import StateQueries
from .usage import UsageQueries

__all__ = ["CONNECT_TIMEOUT", "PgStore"]

CONNECT_TIMEOUT = 10  # seconds to reach the server before "cannot open database"


def connect(url: str) -> Any:
    """A psycopg connection to ``url`` (autocommit); a one-line ``StoreError`` without the password."""
    shown = redact_url(url)
    try:
        import psycopg
    except ImportError:
        raise StoreError(f"cannot open database {shown}: PostgreSQL needs psycopg; "
                         "install it with `pip install 'tokenmeter[postgres]'`") from None
    kwargs: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
    try:
        raw = psycopg.connect(url, **kwargs)
    except (psycopg.Error, ValueError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        why = redact_text(lines[-1] if lines else type(exc).__name__, url_secrets(url))
        raise StoreError(f"cannot open database {shown}: {why}") from None
    numeric_as_int(raw)
    return raw


class PgStore(UsageQueries, RollupQueries, QuotaQueries, StateQueries):
    """A tokenmeter database on a PostgreSQL server; a ``UsageStore``. ``path`` is the URL with
    its password hidden (it is what messages show)."""

    read_only = False  # True when this role may not write the tables (reports still work)
    # a role that may only read rebuilds stale buckets in a temporary copy (rollup.py): the copy
    # is made from the unqualified table (before it exists, that is the stored one), in pg_temp
    _stored = ""
    _temporary = "pg_temp."

    def __init__(self, conn: PgConnection, url: str, owner: str | None = None) -> None:
        self.conn: Any = conn
        if owner is None:
            from ..config import machine_id

            owner = machine_id()
        self.state_suffix = f"@{owner}"  # this machine's cursors and source states (state.py)
        self.path = redact_url(url)
        self._url = url
        self._temp_rollup = False
        self._stage_ready = False

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, owner: str | None = None) -> PgStore:
        """Open the hub at ``url``; ``owner`` (default: this machine's id) keys the cursors."""
        from . import pg_schema

        raw = connect(url)
        store = cls(PgConnection(raw, url_secrets(url)), url, owner)
        try:
            store.conn.execute(f"SET lock_timeout = {int(BUSY_TIMEOUT * 1000)}")
            newer = pg_schema.newer(store.conn)
            if newer:
                raise StoreError(f"database {store.path} was migrated by a newer tokenmeter (schema {newer[0]}); "
                                 "upgrade tokenmeter on this machine")
            if migrate and pg_schema.pending(store.conn):
                pg_schema.apply(store.conn)
            (writable,) = store.conn.execute(
                "SELECT to_regclass('usage') IS NULL OR has_table_privilege(to_regclass('usage'), 'INSERT')"
            ).fetchone()
            store.read_only = not writable
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def busy_timeout(self, seconds: float) -> Iterator[None]:
        """Wait at most ``seconds`` for another writer's locks inside the block."""
        self.conn.execute(f"SET lock_timeout = {max(1, int(seconds * 1000))}")
        try:
            yield
        finally:
            self.conn.execute(f"SET lock_timeout = {int(BUSY_TIMEOUT * 1000)}")

    def pending_migrations(self) -> list[str]:
        from . import pg_schema

        return pg_schema.pending(self.conn)

    def session(self, source: str, kind: str, machine: str | None = None) -> Any:
        from .pg_write import PgWriteSession

        return PgWriteSession(self, source, kind, machine)  # type: ignore[arg-type]

    def _mark_inserted(self, buckets: Iterable[int]) -> None:
        """Nothing to do: the hub's triggers mark the buckets of every written row."""

    def merge(self, other: str | Path, *, timeout: float | None = None) -> dict[str, int]:
        from .merge import MERGE_TIMEOUT, merge_database

        return merge_database(self, other, timeout=MERGE_TIMEOUT if timeout is None else timeout)  # type: ignore[arg-type]

    # -- the rollup: many writers, one refresher at a time ----------------------------------------
    def mark_all_dirty(self) -> None:
        self.conn.execute(
            "INSERT INTO rollup_dirty (bucket) SELECT start_ts - start_ts % 900 FROM usage "
            "UNION SELECT bucket FROM usage_rollup"
        )

    def refresh_rollup(self) -> int:
        """Recompute the buckets marked since the last refresh; returns how many.

        Refreshers take turns (an advisory lock). Marks are consumed up to the highest id read, so
        a bucket marked by a writer that commits meanwhile is recomputed by the next refresh.
        """
        self._drop_temp_rollup()
        if not self.conn.execute("SELECT 1 FROM rollup_dirty LIMIT 1").fetchone():
            return 0
        if self.read_only:
            return self._refresh_rollup_in_memory()
        with _tx(self):
            self.conn.execute(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK})")
            # the planner overestimates the groups of a long range and sorts (spilling to disk);
            # hashing them in memory is ~3x faster on a year of rows
            self.conn.execute("SET LOCAL enable_sort = off")
            self.conn.execute("SET LOCAL work_mem = '64MB'")
            top, = self.conn.execute("SELECT MAX(id) FROM rollup_dirty").fetchone()
            if top is None:  # another refresher did the work while we waited
                return 0
            buckets = [b for (b,) in self.conn.execute(
                "SELECT DISTINCT bucket FROM rollup_dirty WHERE id <= ? ORDER BY bucket", (top,))]
            for lo, hi in _ranges(buckets, ROLLUP):
                self.conn.execute("DELETE FROM usage_rollup WHERE bucket >= ? AND bucket < ?", (lo, hi))
                self.conn.execute(_ROLLUP_SQL, (lo, hi))
            self.conn.execute("DELETE FROM rollup_dirty WHERE id <= ?", (top,))
        return len(buckets)
