"""Usage reports: pure query -> rows functions over the store (the CLI only renders them).

Rules that make the numbers trustworthy:

- A row's cost is the source's own figure (``billed`` or ``logged``) when it has one, else the
  price-table estimate (``estimated``); ``--cost billed`` / ``--cost estimated`` force one kind.
  Usage with no price is counted in ``unpriced_requests`` and never shown as 0.
- One row per currency where currencies differ.
- No double counting: where a ledger source (a provider's bill) covers a provider's day, log
  records of that provider (same label, or the label followed by ``-…``) for that day are left out
  and a note says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from .errors import ConfigError
from .periods import Period, label, offset_segments
from .store import Store, from_nanos

__all__ = ["DIMENSIONS", "Filters", "Report", "usage_report"]

TIME_DIMS = ("day", "week", "month", "quarter")
COLUMN_DIMS = ("model", "provider", "source", "account", "project", "agent")
DIMENSIONS = TIME_DIMS + COLUMN_DIMS
METRICS = (
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens",
)
COST_MODES = ("auto", "billed", "estimated")


@dataclass(frozen=True)
class Filters:
    """Case-insensitive substring filters on the rollup's columns (``None`` or "" = any)."""

    provider: str | None = None
    source: str | None = None
    model: str | None = None
    project: str | None = None
    agent: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts, params = [], []
        for col in ("provider", "source", "model", "project", "agent"):
            value = getattr(self, col)
            if value:
                escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                parts.append(f"u.{col} LIKE ? ESCAPE '\\'")
                params.append(f"%{escaped}%")
        return " AND ".join(parts), params


@dataclass
class Report:
    period: dict[str, Any]
    group_by: list[str]
    rows: list[dict[str, Any]]
    total: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        total: Any = self.total[0] if len(self.total) == 1 else self.total
        if not self.total:
            total = _empty_row({})
        out = {"period": self.period, "group_by": self.group_by, "rows": self.rows, "total": total}
        if self.notes:
            out["notes"] = self.notes
        return out


def parse_group_by(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        item = item.strip().lower()
        if not item or item in ("none", "total"):
            continue
        if item not in DIMENSIONS:
            raise ConfigError(f"--by {item!r}: use any of {', '.join(DIMENSIONS)} (comma-separated)")
        if item not in out:
            out.append(item)
    return out


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


def _bounds(store: Store, period: Period) -> tuple[int, int] | None:
    lo, hi = period.bounds()
    if lo is None or hi is None:
        row = store.conn.execute("SELECT MIN(bucket), MAX(bucket) FROM usage_rollup").fetchone()
        if row[0] is None:
            return None
        lo = row[0] if lo is None else lo
        hi = row[1] + 1 if hi is None else hi
    return (lo, hi) if hi > lo else None


LEDGER_MAX_SPAN = 32 * 86400  # a ledger record longer than this (a monthly bill) covers nothing


def _ledger_cover(store: Store, lo: int, hi: int) -> tuple[str, list[Any], list[str]] | None:
    """SQL matching log rows whose (provider, time) a ledger source covers, or None if none do.

    A ledger bucket (start < end) covers its interval; an event-like ledger record (start == end)
    covers its UTC day. A log provider matches a ledger provider when equal or when it is the
    ledger's label followed by ``-`` (``qwen-singapore`` under ``qwen``).
    """
    conn = store.conn
    if not conn.execute(
        "SELECT 1 FROM usage_rollup WHERE bucket >= ? AND bucket < ? AND kind = 'log' LIMIT 1", (lo, hi)
    ).fetchone():
        return None
    spans: dict[str, list[tuple[int, int]]] = {}
    for provider, a, b in conn.execute(
        "SELECT DISTINCT provider, "
        "CASE WHEN end_ts > start_ts THEN start_ts ELSE start_ts - start_ts % 86400 END, "
        "CASE WHEN end_ts > start_ts THEN end_ts ELSE start_ts - start_ts % 86400 + 86400 END "
        # idx_usage_ledger holds ledger rows only: few, however many log rows there are
        "FROM usage INDEXED BY idx_usage_ledger "
        "WHERE kind = 'ledger' AND start_ts >= ? AND start_ts < ? AND end_ts - start_ts <= ?",
        (lo - LEDGER_MAX_SPAN, hi, LEDGER_MAX_SPAN),
    ):
        if b > lo:
            spans.setdefault(provider, []).append((a, b))
    if not spans:
        return None
    terms, params = [], []
    for provider, intervals in sorted(spans.items()):
        merged: list[list[int]] = []
        for a, b in sorted(intervals):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        times = " OR ".join("(u.bucket >= ? AND u.bucket < ?)" for _ in merged)
        terms.append(f"((u.provider = ? OR substr(u.provider, 1, ?) = ?) AND ({times}))")
        params.extend([provider, len(provider) + 1, provider + "-"])
        for a, b in merged:
            params.extend([a, b])
    return f"(u.kind = 'log' AND ({' OR '.join(terms)}))", params, sorted(spans)


def usage_report(
    store: Store,
    period: Period,
    *,
    by: Sequence[str] = (),
    filters: Filters | None = None,
    cost: str = "auto",
) -> Report:
    """Aggregate usage over ``period`` grouped by ``by`` (see module docstring for the rules)."""
    if cost not in COST_MODES:
        raise ConfigError(f"--cost {cost!r}: use auto, billed or estimated")
    by = list(by)
    filters = filters or Filters()
    tz_name = getattr(period.tz, "key", None) or str(period.tz)
    period_info = {
        "from": period.start.isoformat() if period.start else None,
        "to": period.end.isoformat() if period.end else None,
        "tz": tz_name,
    }
    store.refresh_rollup()
    bounds = _bounds(store, period)
    if bounds is None:
        return Report(period_info, by, [], [], [])
    lo, hi = bounds
    time_dims = [d for d in by if d in TIME_DIMS]
    col_dims = [d for d in by if d in COLUMN_DIMS]
    cost_expr, cur_expr, kind_expr = _cost_sql(cost)
    where, params = filters.sql()
    overlap = _ledger_cover(store, lo, hi)
    notes: list[str] = []

    select_cols = [f"u.{c}" for c in col_dims]
    raw: list[tuple[Any, ...]] = []
    segments = offset_segments(lo, hi, period.tz) if time_dims else [(lo, hi, 0)]
    for seg_lo, seg_hi, offset in segments:
        day_expr = f"(u.bucket + {offset}) / 86400" if time_dims else "NULL"
        sql = (
            f"SELECT {day_expr} AS dayno, "
            + "".join(f"{c}, " for c in select_cols)
            + f"{cur_expr} AS r_cur, {kind_expr} AS r_kind, "
            + (f"{overlap[0]} AS r_excluded, " if overlap else "0 AS r_excluded, ")
            + ", ".join(f"SUM(u.{m})" for m in METRICS)
            + f", SUM({cost_expr}), "
            + f"SUM(CASE WHEN {cost_expr} IS NULL THEN u.calls ELSE 0 END), SUM(u.calls) "
            + "FROM usage_rollup u WHERE u.bucket >= ? AND u.bucket < ?"
            + (f" AND {where}" if where else "")
            + " GROUP BY dayno"
            + "".join(f", {c}" for c in select_cols)
            + ", r_cur, r_kind, r_excluded"
        )
        extra = overlap[1] if overlap else []
        raw.extend(store.conn.execute(sql, [*extra, seg_lo, seg_hi, *params]).fetchall())

    groups: dict[tuple[Any, ...], dict[Any, list[Any]]] = {}
    ncol = len(col_dims)
    epoch = date(1970, 1, 1)
    left_out = 0
    for r in raw:
        if r[3 + ncol]:  # a log row on a day a ledger covers: counted by the ledger instead
            left_out += r[-1]  # calls: requests, or 1 per record that has no count
            continue
        dayno = r[0]
        tkey = tuple(label(epoch + timedelta(days=dayno), d) for d in time_dims) if time_dims else ()
        ckey = tuple(r[1 : 1 + ncol])
        key = _ordered_key(by, time_dims, col_dims, tkey, ckey)
        cur, kind = r[1 + ncol], r[2 + ncol]
        values = list(r[4 + ncol :])
        bucket = groups.setdefault(key, {})
        _accumulate(bucket, cur, kind, values)

    rows: list[dict[str, Any]] = []
    for key in sorted(groups, key=_sort_key):
        base = dict(zip(by, key, strict=True))
        rows.extend(_finish(base, groups[key]))
    total_bucket: dict[Any, list[Any]] = {}
    for bucket in groups.values():
        for cur, acc in bucket.items():
            _merge(total_bucket, cur, acc)
    total = _finish({}, total_bucket)
    if left_out:
        notes.append(
            f"{left_out} requests from local logs were left out on days where a provider bill "
            f"({', '.join(overlap[2])}) covers the same calls; the bill's figures are used"
        )
    return Report(period_info, by, rows, total, notes)


def _ordered_key(by, time_dims, col_dims, tkey, ckey) -> tuple[Any, ...]:
    t = dict(zip(time_dims, tkey, strict=True))
    c = dict(zip(col_dims, ckey, strict=True))
    return tuple(t[d] if d in t else c[d] for d in by)


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v if v is not None else "") for v in key)


# accumulator per currency: [metrics..., cost_nanos, unpriced, calls, kinds:set]
def _accumulate(bucket: dict[Any, list[Any]], cur: str | None, kind: str | None, values: list[Any]) -> None:
    acc = bucket.get(cur)
    if acc is None:
        acc = [None] * (len(values)) + [set()]
        bucket[cur] = acc
    for i, v in enumerate(values):
        if v is not None:
            acc[i] = v if acc[i] is None else acc[i] + v
    if kind:
        acc[-1].add(kind)


def _merge(target: dict[Any, list[Any]], cur: Any, acc: list[Any]) -> None:
    out = target.get(cur)
    if out is None:
        target[cur] = [*acc[:-1], set(acc[-1])]
        return
    for i, v in enumerate(acc[:-1]):
        if v is not None:
            out[i] = v if out[i] is None else out[i] + v
    out[-1] |= acc[-1]


def _empty_row(base: dict[str, Any]) -> dict[str, Any]:
    """The total of nothing: zero requests and tokens (known), no cost."""
    row = dict(base)
    for m in METRICS:
        row[m] = 0
    row.update(cost=None, currency=None, cost_kind=None, unpriced_requests=0)
    return row


def _finish(base: dict[str, Any], bucket: dict[Any, list[Any]]) -> list[dict[str, Any]]:
    """One row per currency; usage with no price joins the group's first currency row."""
    priced = sorted(c for c in bucket if c is not None)
    unpriced = bucket.get(None)
    if not priced:
        priced_accs: list[tuple[Any, list[Any]]] = [(None, unpriced)] if unpriced else []
    else:
        priced_accs = [(c, bucket[c]) for c in priced]
        if unpriced:
            first = [*priced_accs[0][1][:-1], set(priced_accs[0][1][-1])]
            for i, v in enumerate(unpriced[:-1]):
                if v is not None:
                    first[i] = v if first[i] is None else first[i] + v
            priced_accs[0] = (priced_accs[0][0], first)
    rows = []
    n = len(METRICS)
    for cur, acc in priced_accs:
        row = dict(base)
        for i, m in enumerate(METRICS):
            row[m] = acc[i]
        kinds = acc[-1]
        row["cost"] = from_nanos(acc[n]) if cur is not None else None
        row["currency"] = cur
        row["cost_kind"] = (next(iter(kinds)) if len(kinds) == 1 else "mixed") if kinds else None
        row["unpriced_requests"] = acc[n + 1] or 0
        rows.append(row)
    return rows


def reconcile_report(store: Store, period: Period, *, filters: Filters | None = None) -> list[dict[str, Any]]:
    """Per local day × model × currency: billed vs logged vs estimated cost, and the differences.

    ``billed`` sums ledger costs, ``logged`` the costs local logs carry, ``estimated`` the price
    table's estimate of the logged calls, each in its own currency (a log's USD figure and a CNY
    price make two rows, never one sum). ``billed_minus_estimated`` shows where estimates drift
    from bills; ``billed_minus_logged`` where a client's own figures do. ``unpriced_log_requests``
    counts logged calls with neither a cost nor a price (on the day × model's first row).
    """
    store.refresh_rollup()
    bounds = _bounds(store, period)
    if bounds is None:
        return []
    lo, hi = bounds
    where, params = (filters or Filters()).sql()
    out: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    unpriced_calls: dict[tuple[str, Any], int] = {}
    epoch = date(1970, 1, 1)

    def row_for(day: str, model: Any, cur: Any) -> dict[str, Any]:
        return out.setdefault((day, model, cur), {
            "day": day, "model": model, "currency": cur, "billed": None, "logged": None, "estimated": None,
            "billed_requests": None, "logged_requests": None, "unpriced_log_requests": 0})

    def add(row: dict[str, Any], name: str, value: Any, money: bool = True) -> None:
        if value is not None:
            row[name] = (row[name] or 0) + (from_nanos(value) if money else value)

    for seg_lo, seg_hi, offset in offset_segments(lo, hi, period.tz):
        sql = (
            f"SELECT (u.bucket + {offset}) / 86400, u.model, u.has_cost, u.currency, u.est_currency, "
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
        for dayno, model, has_cost, cur, est_cur, billed, logged, est, ledger_req, log_req, unpriced in (
            store.conn.execute(sql, [seg_lo, seg_hi, *params])
        ):
            day = (epoch + timedelta(days=dayno)).isoformat()
            if has_cost or est_cur is not None:
                # costs and call counts go with the figure the reports use (own cost, else estimate)
                row = row_for(day, model, cur if has_cost else est_cur)
                add(row, "billed", billed)
                add(row, "logged", logged)
                add(row, "billed_requests", ledger_req, money=False)
                add(row, "logged_requests", log_req, money=False)
            if est is not None and est_cur is not None:
                add(row_for(day, model, est_cur), "estimated", est)  # in the price's own currency
            if unpriced:
                unpriced_calls[(day, model)] = unpriced_calls.get((day, model), 0) + unpriced
    for (day, model), calls in unpriced_calls.items():
        keys = sorted((k for k in out if k[:2] == (day, model)), key=lambda k: k[2] or "")
        (out[keys[0]] if keys else row_for(day, model, None))["unpriced_log_requests"] += calls
    rows = []
    for key in sorted(out, key=lambda k: (k[0], k[1] or "", k[2] or "")):
        row = out[key]
        b, lg, e = row["billed"], row["logged"], row["estimated"]
        if b is None and lg is None and e is None and not row["unpriced_log_requests"]:
            continue
        row["billed_minus_logged"] = b - lg if b is not None and lg is not None else None
        row["billed_minus_estimated"] = b - e if b is not None and e is not None else None
        row["estimate_error_pct"] = (
            float(round((e - b) / b * 100, 1)) if b and e is not None else None
        )
        rows.append(row)
    return rows
