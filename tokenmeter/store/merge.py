"""`db merge`: another tokenmeter database read as untrusted input.

The other file is opened read-only with ``trusted_schema`` off and ``query_only`` on. Only a
schema version this tokenmeter knows is accepted (a wrong or newer one is a ``StoreError`` and
nothing changes). Only plain stored columns of the real ``usage`` and ``quota_snapshots`` tables
are read, by name: never a view, a virtual table or a generated column. Every row is validated as
a record would be; a bad row is skipped and counted, so it never replaces one of ours. The whole
merge is bounded in time and rolls back when it runs out.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRecord, StoreError
from ..records import COUNT_FIELDS, QuotaSnapshot, UsageRecord

# the names themselves, not the package face: store/__init__.py imports this module lazily
from .common import ROLLUP, _tx, iso, row_id
from .quota import SNAPSHOT_COLUMNS as _SNAPSHOT_COLUMNS
from .session import USAGE_COLUMNS

if TYPE_CHECKING:
    from . import Store

__all__ = ["MERGE_TIMEOUT", "merge_database"]

MERGE_TIMEOUT = 600.0  # seconds a whole merge may take before it gives up (and changes nothing)
MAX_COUNT = 10**12  # tokens or requests in one row: far above any real row, far below SQL SUM overflow
MAX_NANOS = 10**16  # |cost| of one row: ten million currency units, in nanos
MAX_TEXT = 65_536  # characters of a name, key, path or hash
MAX_VALUE = 16 * 2**20  # bytes of any one value SQLite may hand us (details included)
BATCH = 2000
_FIRST_YEAR, _LAST_YEAR = 1970, 9998

# the columns each table had from the first migration, and the ones later migrations added
_USAGE_ADDED = {"agent": "m004_agent", "machine": "m005_hub"}
_CURRENCY = re.compile(r"[A-Z]{3}")
_CREATE_TABLE = re.compile(r"\s*CREATE\s+TABLE\s", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _BadText:
    """What a TEXT value that is not UTF-8 reads as (instead of aborting the whole read)."""


_BAD = _BadText()


def _text_factory(raw: bytes) -> Any:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _BAD


def _q(name: str) -> str:
    return f'"{name}"'


def _show(value: object, limit: int = 80) -> str:
    """A foreign string fit for a one-line message."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Foreign(StoreError):
    """The other file cannot be read; raised inside our transaction so it rolls back untouched."""


def merge_database(store: Store, other: str | Path, *, timeout: float = MERGE_TIMEOUT) -> dict[str, int]:
    """Merge ``other`` into ``store``; see ``Store.merge``."""
    path = Path(other).expanduser()
    name = _show(path, 200)
    if not path.exists():
        raise StoreError(f"cannot merge {name}: no such file")
    ours = Path(store.path).expanduser()
    if path.resolve() == ours.resolve() or (ours.exists() and os.path.samefile(path, ours)):
        raise StoreError("cannot merge a database into itself")
    deadline = time.monotonic() + timeout
    ro = _open_read_only(path, name, deadline)
    try:
        usage_cols, snapshot_cols = _check_schema(ro, name, deadline, timeout)
        before = store.conn.total_changes
        with _tx(store):
            usage, bad_usage = _merge_usage(store, ro, usage_cols, name, deadline, timeout)
            snaps, bad_snaps = _merge_snapshots(store.conn, ro, snapshot_cols, name, deadline, timeout)
    finally:
        ro.close()
    return {"usage": usage, "quota_snapshots": snaps, "skipped": bad_usage + bad_snaps,
            "changes": store.conn.total_changes - before}


# -- opening and checking the other file ---------------------------------------------------------


def _open_read_only(path: Path, name: str, deadline: float) -> sqlite3.Connection:
    try:
        ro = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                             check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot merge {name}: {_show(exc)}") from None
    ro.text_factory = _text_factory
    ro.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE)
    # aborts any statement (schema parse included) once the time is up: SQLite raises "interrupted"
    ro.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        # no function, view or trigger from the file's schema runs with our privileges; no writes
        for pragma in ("trusted_schema = OFF", "query_only = ON", "cell_size_check = ON", "mmap_size = 0"):
            ro.execute(f"PRAGMA {pragma}")
    except sqlite3.Error as exc:
        ro.close()
        raise StoreError(f"cannot merge {name}: {_show(exc)}") from None
    return ro


def _wrong(name: str, why: str) -> StoreError:
    return StoreError(f"cannot merge {name}: {why}; nothing was changed")


def _known_migrations() -> list[str]:
    from .migrations import migrations

    return [m.name for m in migrations._migrations]


def _check_schema(ro: sqlite3.Connection, name: str, deadline: float,
                  timeout: float) -> tuple[list[str], list[str]]:
    """The columns to read from ``usage`` and ``quota_snapshots``; a ``StoreError`` for any schema
    that is not one of ours."""
    not_ours = "it is not a tokenmeter database"
    try:
        master = {str(n).lower(): (t, s) for t, n, s in ro.execute("SELECT type, name, sql FROM main.sqlite_master")}
        for table in ("_sqlite_migrations", "usage", "quota_snapshots"):
            kind, sql = master.get(table, (None, None))
            if kind is None:
                raise _wrong(name, not_ours + f" (it has no {table} table)")
            if kind != "table" or not isinstance(sql, str) or not _CREATE_TABLE.match(sql):
                raise _wrong(name, not_ours + f" ({table} is a {_show(kind)}, not a plain table)")
        names = _read_columns(ro, "_sqlite_migrations", ["migration_set", "name"], name)
        applied = [n for s, n in ro.execute(f"SELECT {names} FROM main._sqlite_migrations NOT INDEXED")
                   if s == "tokenmeter"]
        known = _known_migrations()
        if not all(isinstance(n, str) for n in applied):
            raise _wrong(name, not_ours + " (its migration table is damaged)")
        newer = [n for n in applied if n not in known]
        if newer:
            raise _wrong(name, f"it was written by a newer tokenmeter (schema {_show(newer[0], 40)}); "
                               "upgrade tokenmeter on this machine, then merge")
        if not applied or set(applied) != set(known[: len(set(applied))]):
            raise _wrong(name, "its schema version is unknown (migrations "
                               f"{_show(', '.join(sorted(set(applied))) or 'none', 120)})")
        usage_required = [c for c in USAGE_COLUMNS if _USAGE_ADDED.get(c, known[0]) in applied]
        usage = _plain_columns(ro, "usage", usage_required, name, USAGE_COLUMNS)
        snapshots = _plain_columns(ro, "quota_snapshots", list(_SNAPSHOT_COLUMNS), name)
    except sqlite3.Error as exc:
        raise _read_error(exc, name, deadline, timeout) from None
    return usage, snapshots


def _plain_columns(ro: sqlite3.Connection, table: str, required: Sequence[str], name: str,
                   ours: Sequence[str] | None = None) -> list[str]:
    """Which of ``ours`` (default: ``required``) ``table`` has as plain stored columns; every one
    of ``required`` must be there."""
    ours = required if ours is None else ours
    hidden = {str(r[1]).lower(): r[6] for r in ro.execute(f"PRAGMA main.table_xinfo({table})")}
    found = []
    for col in ours:
        if col not in hidden:
            if col in required:
                raise _wrong(name, f"its schema is not one tokenmeter knows ({table} has no column {col})")
            continue
        if hidden[col] != 0:  # 1: hidden column of a virtual table; 2, 3: generated (virtual, stored)
            raise _wrong(name, f"its schema is not one tokenmeter knows ({table}.{col} is a generated column)")
        found.append(col)
    return found


def _read_columns(ro: sqlite3.Connection, table: str, cols: Sequence[str], name: str) -> str:
    return ", ".join(map(_q, _plain_columns(ro, table, cols, name)))


def _read_error(exc: sqlite3.Error, name: str, deadline: float, timeout: float) -> StoreError:
    if time.monotonic() > deadline or "interrupted" in str(exc):
        return _Foreign(f"cannot merge {name}: gave up after {timeout:g} s (the file is too big or damaged); "
                        "nothing was changed")
    return _Foreign(f"cannot merge {name}: {_show(exc)}; nothing was changed")


def _rows(ro: sqlite3.Connection, table: str, cols: Sequence[str], name: str, deadline: float,
          timeout: float) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of the plain columns ``cols`` of the real table (never an index, a view or an expression)."""
    sql = f"SELECT {', '.join(map(_q, cols))} FROM main.{_q(table)} NOT INDEXED"
    try:
        cur = ro.execute(sql)
        while batch := cur.fetchmany(BATCH):
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("interrupted")
            yield batch
    except sqlite3.Error as exc:
        raise _read_error(exc, name, deadline, timeout) from None


# -- usage -----------------------------------------------------------------------------------------


def _merge_usage(store: Store, ro: sqlite3.Connection, cols: list[str], name: str,
                 deadline: float, timeout: float) -> tuple[int, int]:
    # a row from the other file replaces ours only when its content differs and it was fetched later
    upsert = (
        f"INSERT INTO usage ({', '.join(map(_q, USAGE_COLUMNS))}) "
        f"VALUES ({', '.join('?' * len(USAGE_COLUMNS))}) ON CONFLICT(id) DO UPDATE SET "
        + ", ".join(f'"{c}" = excluded."{c}"' for c in USAGE_COLUMNS if c != "id")
        + " WHERE excluded.content_hash IS NOT usage.content_hash AND excluded.fetched_at > usage.fetched_at"
    )
    conn = store.conn
    ts_at = USAGE_COLUMNS.index("start_ts")
    latest = datetime.now(UTC) + timedelta(days=1)  # a fetch "in the future" would win every merge
    changed = bad = 0
    for batch in _rows(ro, "usage", cols, name, deadline, timeout):
        good = []
        for raw in batch:
            row = _usage_row(dict(zip(cols, raw, strict=True)), latest)
            if row is None:
                bad += 1
            else:
                good.append(row)
        # buckets of rows new to us need their rollup recomputed (updates are marked by trigger); rows
        # we already hold mark nothing, so merging the same file again changes nothing
        store._mark_inserted(store._missing_buckets([(r[0], r[ts_at] - r[ts_at] % ROLLUP) for r in good]))
        changed += conn.executemany(upsert, good).rowcount
    return changed, bad


def _usage_row(v: dict[str, Any], latest: datetime) -> tuple[Any, ...] | None:
    """The row to store (in ``USAGE_COLUMNS`` order), or None when any value is not what a valid
    record would have stored."""
    try:
        for col in ("id", "source", "kind", "key", "provider", "content_hash", "start", "end", "fetched_at"):
            _need_text(v.get(col))
        for col in ("account", "model", "project", "session", "agent", "currency", "cost_kind", "est_currency",
                    "price_basis"):
            if v.get(col) is not None:
                _need_text(v[col])
        if v["kind"] not in ("ledger", "log") or v["id"] != row_id(v["source"], v["account"], v["key"]):
            return None
        for col in COUNT_FIELDS:
            _need_int(v.get(col), 0, MAX_COUNT)
        _need_int(v["cost_nanos"], -MAX_NANOS, MAX_NANOS)
        _need_int(v["est_cost_nanos"], 0, MAX_NANOS)
        est_currency = v["est_currency"]
        if (est_currency is not None and not _CURRENCY.fullmatch(est_currency)) or (
                v["est_cost_nanos"] is not None and est_currency is None):
            return None
        start, end, fetched = _when(v["start"]), _when(v["end"]), _when(v["fetched_at"])
        if fetched > latest:
            return None
        start_ts, end_ts = int(start.timestamp()), int(end.timestamp())
        if (type(v["start_ts"]) is not int or v["start_ts"] != start_ts
                or type(v["end_ts"]) is not int or v["end_ts"] != end_ts):
            return None  # type and value: a string or float here is not what we stored
        details = _details(v["details"])
        cost = v["cost_nanos"]
        # the record's own rules: subsets of input/output, errors <= requests, currency and cost_kind
        UsageRecord(key=v["key"], start=start, end=end, provider=v["provider"], model=v["model"],
                    account=v["account"], project=v["project"], session=v["session"], agent=v.get("agent"),
                    cost=None if cost is None else Decimal(cost).scaleb(-9), currency=v["currency"],
                    cost_kind=v["cost_kind"], details=details,
                    **{c: v[c] for c in COUNT_FIELDS})
    except (InvalidRecord, ValueError, TypeError, KeyError, OverflowError, RecursionError, InvalidOperation):
        return None
    out = dict(v, start=iso(start), end=iso(end), start_ts=start_ts, end_ts=end_ts,
               fetched_at=fetched.isoformat(timespec="microseconds").replace("+00:00", "Z"))
    return tuple(out.get(c) for c in USAGE_COLUMNS)


def _need_text(value: Any) -> None:
    if type(value) is not str or not value or len(value) > MAX_TEXT:
        raise ValueError("not a non-empty text")


def _need_int(value: Any, low: int, high: int) -> None:
    if value is not None and (type(value) is not int or not low <= value <= high):
        raise ValueError("not an integer in range")


def _when(text: str) -> datetime:
    """A stored ISO time: timezone-aware, in years a report can show; as UTC."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive time")
    dt = dt.astimezone(UTC)
    if not _FIRST_YEAR <= dt.year <= _LAST_YEAR:
        raise ValueError("year out of range")
    return dt


def _details(text: Any) -> dict[str, Any]:
    """Stored details: None or the text of a JSON object (no NaN or Infinity)."""
    if text is None:
        return {}
    if type(text) is not str or len(text) > MAX_VALUE:
        raise ValueError("details is not text of a sane size")

    def no_constant(word: str) -> Any:
        raise ValueError(f"{word} is not JSON")

    value = json.loads(text, parse_constant=no_constant)
    if not isinstance(value, dict):
        raise ValueError("details is not an object")
    return value


# -- quota snapshots -------------------------------------------------------------------------------


def _merge_snapshots(conn: sqlite3.Connection, ro: sqlite3.Connection, cols: list[str], name: str,
                     deadline: float, timeout: float) -> tuple[int, int]:
    insert = (f"INSERT OR IGNORE INTO quota_snapshots ({', '.join(_SNAPSHOT_COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(_SNAPSHOT_COLUMNS))})")
    added = bad = 0
    for batch in _rows(ro, "quota_snapshots", cols, name, deadline, timeout):
        good = []
        for raw in batch:
            row = _snapshot_row(dict(zip(cols, raw, strict=True)))
            if row is None:
                bad += 1
            else:
                good.append(row)
        added += conn.executemany(insert, good).rowcount
    return added, bad


def _snapshot_row(v: dict[str, Any]) -> tuple[Any, ...] | None:
    """The snapshot row to store, or None when it is not what a valid ``QuotaSnapshot`` stores."""
    try:
        for col in ("id", "source", "provider", "name", "unit", "observed_at"):
            _need_text(v[col])
        for col in ("account", "used", "remaining", "total", "resets_at"):
            if v[col] is not None:
                _need_text(v[col])
        amounts = {c: _amount(v[c]) for c in ("used", "remaining", "total")}
        observed = _when(v["observed_at"])
        resets = None if v["resets_at"] is None else _when(v["resets_at"])
        QuotaSnapshot(provider=v["provider"], name=v["name"], unit=v["unit"], observed_at=observed,
                      account=v["account"], resets_at=resets, details=_details(v["details"]), **amounts)
    except (InvalidRecord, ValueError, TypeError, KeyError, OverflowError, RecursionError, InvalidOperation):
        return None
    out = dict(v, observed_at=iso(observed), resets_at=iso(resets),
               **{c: None if a is None else format(a, "f") for c, a in amounts.items()})
    return tuple(out[c] for c in _SNAPSHOT_COLUMNS)


def _amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    value = Decimal(text)
    if not value.is_finite() or abs(value) >= Decimal(10) ** 18 or value.as_tuple().exponent < -18:
        raise ValueError("amount out of range")
    return value
