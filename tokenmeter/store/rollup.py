"""The 15-minute report rollup: keeping it fresh (an explicit step) and the aggregate queries the
reports run over it. Reports never read ``usage`` row by row: a month is a few thousand buckets
however many records it holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import date, timedelta, tzinfo
from typing import Any

from ..errors import StoreError
from ..periods import offset_segments
from .base import Filters, ReconcileTotal, UsageTotal
from .common import ROLLUP, _tx

__all__ = ["RollupQueries"]

_ROLLUP_SQL = """
INSERT INTO usage_rollup (bucket, source, kind, account, provider, model, project, agent, machine, has_cost,
       currency, cost_kind, est_currency, records, calls, requests, input_tokens, output_tokens, cache_read_tokens,
       cache_write_tokens, reasoning_tokens, total_tokens, cost_nanos, est_cost_nanos)
SELECT start_ts - start_ts % 900, source, kind, account, provider, model, project, agent, machine,
       cost_nanos IS NOT NULL, currency, cost_kind, est_currency,
       COUNT(*), SUM(COALESCE(requests, 1)), SUM(requests), SUM(input_tokens), SUM(output_tokens),
       SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
       SUM(COALESCE(total_tokens, input_tokens + output_tokens)), SUM(cost_nanos), SUM(est_cost_nanos)
FROM usage WHERE start_ts >= ? AND start_ts < ?
GROUP BY 1, source, kind, account, provider, model, project, agent, machine, 10, currency, cost_kind, est_currency
"""

# the same sums over rows just inserted (a rowid range): added to the rollup as partial rows
_ROLLUP_NEW_SQL = _ROLLUP_SQL.replace("INSERT INTO usage_rollup", "INSERT INTO main.usage_rollup").replace(
    "WHERE start_ts >= ? AND start_ts < ?", "WHERE rowid > ? AND rowid <= ?")

_GROUPS = ("bucket, source, kind, account, provider, model, project, agent, machine, has_cost, currency, "
           "cost_kind, est_currency")
_SUMS = ("records", "calls", "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
         "reasoning_tokens", "total_tokens", "cost_nanos", "est_cost_nanos")
_COMPACT_SQL = (f"INSERT INTO main.usage_rollup ({_GROUPS}, {', '.join(_SUMS)}) SELECT {_GROUPS}, "
                + ", ".join(f"SUM({c})" for c in _SUMS)
                + f" FROM main.usage_rollup WHERE bucket >= ? AND bucket <= ? GROUP BY {_GROUPS}")

METRICS = (
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens",
)
FILTER_COLUMNS = ("provider", "source", "model", "project", "agent", "machine")
ROLLUP_COLUMNS = ("model", "provider", "source", "account", "project", "agent", "machine")
# session is grouped from ``usage`` itself, not the rollup: it has no bound on its values (a scripted
# headless run is a session per call), so a rollup column would split buckets up to one row per
# record and slow every other report; a session report costs a scan of its period's rows instead
ROW_COLUMNS = ("session",)
GROUP_COLUMNS = ROLLUP_COLUMNS + ROW_COLUMNS

# ``usage`` rows in the rollup's shape (one row each), for groupings the rollup does not carry; the
# inner range on start_ts uses idx_usage_start, the outer bucket range keeps the rollup's semantics
_ROWS_AS_ROLLUP = """(SELECT start_ts - start_ts % 900 AS bucket, source, kind, account, provider, model,
       project, agent, machine, session, cost_nanos IS NOT NULL AS has_cost, currency, cost_kind, est_currency,
       1 AS records, COALESCE(requests, 1) AS calls, requests, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, reasoning_tokens,
       COALESCE(total_tokens, input_tokens + output_tokens) AS total_tokens, cost_nanos, est_cost_nanos
FROM usage WHERE start_ts >= ? AND start_ts < ?)"""
_EPOCH = date(1970, 1, 1)


def _ranges(buckets: list[int], step: int) -> list[tuple[int, int]]:
    """Sorted bucket starts -> contiguous [lo, hi) ranges."""
    out: list[list[int]] = []
    for b in buckets:
        if out and b <= out[-1][1]:
            out[-1][1] = b + step
        else:
            out.append([b, b + step])
    return [(a, b) for a, b in out]


def _filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    parts, params = [], []
    for col in FILTER_COLUMNS:
        value = getattr(filters, col)
        if value:
            escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            parts.append(f"u.{col} LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
    return " AND ".join(parts), params


def _cost_sql(mode: str) -> tuple[str, str, str]:
    """SQL over the rollup for (cost nanos, currency, kind) under a cost mode."""
    if mode == "billed":
        return ("CASE WHEN u.has_cost THEN u.cost_nanos END", "CASE WHEN u.has_cost THEN u.currency END",
                "CASE WHEN u.has_cost THEN u.cost_kind END")
    if mode == "estimated":
        return "u.est_cost_nanos", "u.est_currency", "CASE WHEN u.est_currency IS NOT NULL THEN 'estimated' END"
    return (
        "CASE WHEN u.has_cost THEN u.cost_nanos ELSE u.est_cost_nanos END",
        "CASE WHEN u.has_cost THEN u.currency ELSE u.est_currency END",
        "CASE WHEN u.has_cost THEN u.cost_kind WHEN u.est_currency IS NOT NULL THEN 'estimated' END",
    )


def _exclude_sql(exclude: Mapping[str, Sequence[tuple[int, int]]]) -> tuple[str, list[Any]]:
    """Matches log rows of a provider (or ``provider-…``) inside that provider's intervals."""
    terms, params = [], []
    for provider, intervals in sorted(exclude.items()):
        times = " OR ".join("(u.bucket >= ? AND u.bucket < ?)" for _ in intervals)
        terms.append(f"((u.provider = ? OR substr(u.provider, 1, ?) = ?) AND ({times}))")
        params.extend([provider, len(provider) + 1, provider + "-"])
        for a, b in intervals:
            params.extend([a, b])
    return f"(u.kind = 'log' AND ({' OR '.join(terms)}))", params


def _segments(lo: int, hi: int, tz: tzinfo | None) -> list[tuple[int, int, int]]:
    # a local day is (bucket + UTC offset) // 86400 within a stretch of one offset
    return offset_segments(lo, hi, tz) if tz is not None else [(lo, hi, 0)]


class RollupQueries:
    """``Store`` methods over ``usage_rollup`` (and the few ledger rows of ``usage``)."""

    conn: sqlite3.Connection
    path: str
    read_only: bool
    _temp_rollup: bool

    def refresh_rollup(self) -> int:
        """Recompute the 15-minute rollup for buckets changed since the last refresh; returns how many.

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

    # where the stored rollup and a connection's temporary copy live (PostgreSQL: see pg.py)
    _stored = "main."
    _temporary = "temp."

    def _refresh_rollup_in_memory(self) -> int:
        # rebuild the stale buckets in a TEMP copy of the rollup, which this connection's unqualified
        # `usage_rollup` resolves to (temp is searched first); the stored rollup is not touched
        buckets = [b for (b,) in self.conn.execute("SELECT DISTINCT bucket FROM rollup_dirty ORDER BY bucket")]
        self.conn.execute(f"CREATE TEMP TABLE usage_rollup AS SELECT * FROM {self._stored}usage_rollup")
        self._temp_rollup = True
        for lo, hi in _ranges(buckets, ROLLUP):
            self.conn.execute(f"DELETE FROM {self._temporary}usage_rollup WHERE bucket >= ? AND bucket < ?", (lo, hi))
            self.conn.execute(_ROLLUP_SQL, (lo, hi))
        return len(buckets)

    def _drop_temp_rollup(self) -> None:
        if self._temp_rollup:
            self.conn.execute(f"DROP TABLE IF EXISTS {self._temporary}usage_rollup")
            self._temp_rollup = False

    def _roll_inserted(self, after: int, upto: int) -> list[int]:
        """Add the rows with rowids in ``(after, upto]``, all just inserted, to the rollup; returns
        their buckets.

        Queries sum the rollup's rows, so partial rows per bucket add up to the same totals; a
        bucket rebuilt later (an update, a merge) replaces them with one set. Summing the new rows
        here, in rowid order, costs a cold ingest far less than rebuilding every bucket afterwards
        through the time index.
        """
        self.conn.execute(_ROLLUP_NEW_SQL, (after, upto))
        return self._inserted_buckets(after, upto)

    def _roll_sums(self, source: str, kind: str, machine: str | None, sums: Mapping[tuple[Any, ...], Any]) -> list[int]:
        """Add one transaction's inserted rows to the rollup from their sums (``store.bulk``), keyed
        (account, provider, bucket, model, project, agent, est_currency); returns their buckets.
        The same partial rows as ``_roll_inserted``, without reading the rows back."""
        self.conn.executemany(
            "INSERT INTO main.usage_rollup (account, provider, bucket, model, project, agent, est_currency, records, "
            "calls, requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
            "total_tokens, est_cost_nanos, source, kind, machine, has_cost, currency, cost_kind, cost_nanos) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, NULL)",
            [(*k, *v, source, kind, machine) for k, v in sums.items()])
        return sorted({k[2] for k in sums})

    def _inserted_buckets(self, after: int, upto: int) -> list[int]:
        """The buckets of the rows with rowids in ``(after, upto]``."""
        return [b for (b,) in self.conn.execute(
            "SELECT DISTINCT start_ts - start_ts % 900 FROM usage WHERE rowid > ? AND rowid <= ? ORDER BY 1",
            (after, upto))]

    def _compact_rollup(self, lo: int, hi: int) -> None:
        """Merge the partial rows of buckets ``[lo, hi]`` into one row per group (sums of sums)."""
        (top,) = self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM main.usage_rollup").fetchone()
        self.conn.execute(_COMPACT_SQL, (lo, hi))
        self.conn.execute("DELETE FROM main.usage_rollup WHERE bucket >= ? AND bucket <= ? AND rowid <= ?",
                          (lo, hi, top))

    def mark_all_dirty(self) -> None:
        # the rollup's own buckets too: rows removed behind the triggers' back leave buckets to drop
        self.conn.execute(
            "INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT start_ts - start_ts % 900 FROM usage "
            "UNION SELECT DISTINCT bucket FROM usage_rollup"
        )

    def usage_span(self) -> tuple[int, int] | None:
        first, last = self.conn.execute("SELECT MIN(bucket), MAX(bucket) FROM usage_rollup").fetchone()
        return None if first is None else (first, last)

    def has_usage(self, lo: int, hi: int, kind: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM usage_rollup WHERE bucket >= ? AND bucket < ? AND kind = ? LIMIT 1", (lo, hi, kind)
        ).fetchone() is not None

    def ledger_spans(self, lo: int, hi: int, max_span: int) -> list[tuple[str, int, int]]:
        return self.conn.execute(
            "SELECT DISTINCT provider, "
            "CASE WHEN end_ts > start_ts THEN start_ts ELSE start_ts - start_ts % 86400 END, "
            "CASE WHEN end_ts > start_ts THEN end_ts ELSE start_ts - start_ts % 86400 + 86400 END "
            # idx_usage_ledger holds ledger rows only: few, however many log rows there are
            "FROM usage INDEXED BY idx_usage_ledger "
            "WHERE kind = 'ledger' AND start_ts >= ? AND start_ts < ? AND end_ts - start_ts <= ?",
            (lo - max_span, hi, max_span),
        ).fetchall()

    def usage_totals(
        self, lo: int, hi: int, *, tz: tzinfo | None, columns: Sequence[str], cost: str, filters: Filters,
        exclude: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> list[UsageTotal]:
        unknown = [c for c in columns if c not in GROUP_COLUMNS]
        if unknown:
            raise ValueError(f"cannot group usage by {unknown[0]!r}")
        cost_expr, cur_expr, kind_expr = _cost_sql(cost)
        where, params = _filter_sql(filters)
        excl_expr, excl_params = _exclude_sql(exclude) if exclude else ("0", [])
        cols = [f"u.{c}" for c in columns]
        from_rows = any(c in ROW_COLUMNS for c in columns)
        table = _ROWS_AS_ROLLUP if from_rows else "usage_rollup"
        span = None if from_rows else self.usage_span()
        out: list[UsageTotal] = []
        for seg_lo, seg_hi, offset in _segments(lo, hi, tz):
            # a range holding every bucket (an all-time report) reads faster in table order than
            # through the bucket index
            hint = " NOT INDEXED" if span and seg_lo <= span[0] and span[1] < seg_hi else ""
            # rows whose bucket lies in [seg_lo, seg_hi) start in [bucket(seg_lo), seg_hi + 900)
            rows_params = [seg_lo - seg_lo % ROLLUP, seg_hi + ROLLUP] if from_rows else []
            day_expr = f"(u.bucket + {int(offset)}) / 86400" if tz is not None else "NULL"
            sql = (
                f"SELECT {day_expr} AS dayno, "
                + "".join(f"{c}, " for c in cols)
                + f"{cur_expr} AS r_cur, {kind_expr} AS r_kind, {excl_expr} AS r_excluded, "
                + ", ".join(f"SUM(u.{m})" for m in METRICS)
                + f", SUM({cost_expr}), "
                + f"SUM(CASE WHEN {cost_expr} IS NULL THEN u.calls ELSE 0 END), SUM(u.calls) "
                + f"FROM {table} u{hint} WHERE u.bucket >= ? AND u.bucket < ?"
                + (f" AND {where}" if where else "")
                + " GROUP BY dayno"
                + "".join(f", {c}" for c in cols)
                + ", r_cur, r_kind, r_excluded"
            )
            n = len(cols)
            for r in self.conn.execute(sql, [*excl_params, *rows_params, seg_lo, seg_hi, *params]):
                day = None if r[0] is None else _EPOCH + timedelta(days=r[0])
                out.append(UsageTotal(day, tuple(r[1 : 1 + n]), r[1 + n], r[2 + n], bool(r[3 + n]), *r[4 + n :]))
        return out

    def reconcile_totals(self, lo: int, hi: int, *, tz: tzinfo, filters: Filters) -> list[ReconcileTotal]:
        where, params = _filter_sql(filters)
        out: list[ReconcileTotal] = []
        for seg_lo, seg_hi, offset in _segments(lo, hi, tz):
            sql = (
                f"SELECT (u.bucket + {int(offset)}) / 86400, u.model, u.has_cost, u.currency, u.est_currency, "
                "SUM(CASE WHEN u.cost_kind = 'billed' THEN u.cost_nanos END), "
                "SUM(CASE WHEN u.cost_kind = 'logged' THEN u.cost_nanos END), "
                "SUM(CASE WHEN u.kind = 'log' THEN u.est_cost_nanos END), "
                "SUM(CASE WHEN u.kind = 'ledger' THEN u.requests END), "
                "SUM(CASE WHEN u.kind = 'log' THEN u.requests END), "
                "SUM(CASE WHEN u.kind = 'log' AND u.est_currency IS NULL AND NOT u.has_cost THEN u.calls END) "
                "FROM usage_rollup u WHERE u.bucket >= ? AND u.bucket < ?"
                + (f" AND {where}" if where else "")
                + " GROUP BY 1, 2, 3, 4, 5"
            )
            for dayno, model, has_cost, *rest in self.conn.execute(sql, [seg_lo, seg_hi, *params]):
                out.append(ReconcileTotal(_EPOCH + timedelta(days=dayno), model, bool(has_cost), *rest))
        return out
