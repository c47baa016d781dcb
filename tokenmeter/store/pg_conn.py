"""A PostgreSQL connection that speaks the store's SQL: the query modules are written once, in the
SQL both engines share, and this adapter turns the few SQLite spellings they use into PostgreSQL's.

What it rewrites (outside string literals and quoted names): ``?`` and ``?N`` placeholders, ``%``
(psycopg's placeholder character), ``IS NOT x`` (``IS DISTINCT FROM``), ``INSERT OR IGNORE``
(``ON CONFLICT DO NOTHING``), ``LIKE`` (case-insensitive in SQLite: ``ILIKE``), ``BEGIN
IMMEDIATE`` and SQLite's index hints. psycopg errors come out as ``PgError``, a
``sqlite3.DatabaseError`` carrying the SQLSTATE, so every place that handles a database failure
handles both engines, and no message carries the connection's password.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from ..dburl import redact_text

__all__ = ["PgConnection", "PgCursor", "PgError", "translate"]

_TOKEN = re.compile(
    r"""(?P<lit>'(?:[^']|'')*')|(?P<ident>"[^"]*")|\?(?P<num>\d*)|(?P<pct>%)"""
    r"""|\bIS\s+NOT\s+(?!NULL\b)|\bNOT\s+INDEXED\b|\bINDEXED\s+BY\s+\w+|\bLIKE\b|\bBEGIN\s+IMMEDIATE\b""",
    re.IGNORECASE,
)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> tuple[str, bool]:
    """``sql`` in PostgreSQL's spelling, and whether it uses numbered (``?N``) placeholders."""
    numbered = False

    def sub(m: re.Match[str]) -> str:
        nonlocal numbered
        if m.group("lit") is not None:
            return m.group("lit").replace("%", "%%")
        if m.group("ident") is not None:
            return m.group("ident").replace("%", "%%")
        if m.group("pct") is not None:
            return "%%"
        num = m.group("num")
        if num is not None:
            if num:
                numbered = True
                return f"%(p{num})s"
            return "%s"
        word = m.group().upper()
        if word.startswith("IS"):
            return "IS DISTINCT FROM "
        if word == "LIKE":
            return "ILIKE"
        if word.startswith("BEGIN"):
            return "BEGIN"
        return ""  # index hints: the planner chooses

    ignore = bool(_OR_IGNORE.match(sql))
    if ignore:
        sql = _OR_IGNORE.sub("INSERT INTO", sql, count=1)
    out = _TOKEN.sub(sub, sql)
    if ignore:
        out = out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return out, numbered


def _params(params: Any, numbered: bool) -> Any:
    if numbered and params is not None and not isinstance(params, dict):
        return {f"p{i}": v for i, v in enumerate(params, 1)}
    return params


class PgError(sqlite3.OperationalError):
    """A PostgreSQL failure; ``sqlstate`` is its SQLSTATE code (None when the connection failed)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class PgCursor:
    """The results of one statement, shaped like a ``sqlite3.Cursor`` (what the queries use of it)."""

    def __init__(self, cur: Any, conn: PgConnection) -> None:
        self._cur = cur
        self._conn = conn

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._conn._call(self._cur.fetchone)

    def fetchall(self) -> list[Any]:
        return self._conn._call(self._cur.fetchall)

    def fetchmany(self, size: int) -> list[Any]:
        return self._conn._call(self._cur.fetchmany, size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection in autocommit mode (the store issues BEGIN/COMMIT itself)."""

    def __init__(self, raw: Any, secrets: Sequence[str] = ()) -> None:
        self.raw = raw
        self.secrets = tuple(s for s in secrets if s)
        self.total_changes = 0  # like sqlite3's: rows changed by this connection so far

    def _error(self, exc: BaseException) -> PgError:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PgError(redact_text(message, self.secrets), getattr(exc, "sqlstate", None))

    def _call(self, fn: Any, *args: Any) -> Any:
        import psycopg

        try:
            return fn(*args)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] | None = None) -> PgCursor:
        text, numbered = translate(sql)
        args = _params(list(params) if params is not None and not isinstance(params, dict) else params, numbered)
        if not args:  # without parameters psycopg sends the text as it is: no %% escapes then
            text, args = text.replace("%%", "%"), None
        cur = self._call(self.raw.execute, text, args)
        if cur.rowcount > 0 and cur.description is None:
            self.total_changes += cur.rowcount
        return PgCursor(cur, self)

    def executemany(self, sql: str, rows: Iterable[Any]) -> PgCursor:
        text, numbered = translate(sql)
        batch = [_params(r, numbered) for r in rows]
        cur = self.raw.cursor()
        if batch:
            self._call(cur.executemany, text, batch)
            self.total_changes += max(cur.rowcount, 0)
        return PgCursor(cur, self)

    def close(self) -> None:
        self.raw.close()


def numeric_as_int(conn: Any) -> None:
    """Load NUMERIC as ``int`` when it has no fraction: PostgreSQL sums BIGINT columns as NUMERIC,
    and the store's sums are integer counts and nano-units."""
    from psycopg.adapt import Loader

    class IntNumericLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            if "." in text or "N" in text or "e" in text.lower():
                return Decimal(text)
            return int(text)

    conn.adapters.register_loader("numeric", IntNumericLoader)
