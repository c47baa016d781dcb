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
from typing import Any

from .errors import ConfigError
from .periods import Period, label
from .store import from_nanos
from .store.base import COST_MODES, Filters, UsageStore

__all__ = ["DIMENSIONS", "ORDERS", "SCHEMA_VERSION", "Filters", "Report", "reconcile_report", "usage_report"]

TIME_DIMS = ("day", "week", "month", "quarter")
COLUMN_DIMS = ("model", "provider", "source", "account", "project", "agent", "machine", "session")
ORDERS = ("asc", "desc")
DIMENSIONS = TIME_DIMS + COLUMN_DIMS
METRICS = (
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens",
)


# the version of the report JSON (schemas/report.schema.json): bumped only when a key is removed or
# changes meaning; new keys may appear within a version
SCHEMA_VERSION = 1


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
        out = {"schema_version": SCHEMA_VERSION, "period": self.period, "group_by": self.group_by,
               "rows": self.rows, "total": total}
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


def _bounds(store: UsageStore, period: Period) -> tuple[int, int] | None:
    lo, hi = period.bounds()
    if lo is None or hi is None:
        span = store.usage_span()
        if span is None:
            return None
        lo = span[0] if lo is None else lo
        hi = span[1] + 1 if hi is None else hi
    return (lo, hi) if hi > lo else None


LEDGER_MAX_SPAN = 32 * 86400  # a ledger record longer than this (a monthly bill) covers nothing


def _ledger_cover(store: UsageStore, lo: int, hi: int) -> dict[str, list[tuple[int, int]]]:
    """Per ledger provider, the merged intervals its bills cover in ``[lo, hi)`` (empty: none).

    A ledger bucket (start < end) covers its interval; an event-like ledger record (start == end)
    covers its UTC day. The report leaves out log rows of that provider (same label, or the label
    followed by ``-``: ``acme-eu`` under ``acme``) inside them.
    """
    if not store.has_usage(lo, hi, "log"):
        return {}
    spans: dict[str, list[tuple[int, int]]] = {}
    for provider, a, b in store.ledger_spans(lo, hi, LEDGER_MAX_SPAN):
        if b > lo:
            spans.setdefault(provider, []).append((a, b))
    cover: dict[str, list[tuple[int, int]]] = {}
    for provider, intervals in sorted(spans.items()):
        merged: list[list[int]] = []
        for a, b in sorted(intervals):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        cover[provider] = [(a, b) for a, b in merged]
    return cover


def usage_report(
    store: UsageStore,
    period: Period,
    *,
    by: Sequence[str] = (),
    filters: Filters | None = None,
    cost: str = "auto",
    order: str = "asc",
) -> Report:
    """Aggregate usage over ``period`` grouped by ``by`` (see module docstring for the rules).

    Rows are sorted by their groups; ``order="desc"`` puts the first grouping's values last-first
    (newest day first), keeping the order of the rows inside each.

    Reads the report rollup as it is: refresh it first (``store.refresh_rollup()``) after writes.
    """
    if cost not in COST_MODES:
        raise ConfigError(f"--cost {cost!r}: use auto, billed or estimated")
    if order not in ORDERS:
        raise ConfigError(f"--order {order!r}: use asc or desc")
    by = list(by)
    filters = filters or Filters()
    tz_name = getattr(period.tz, "key", None) or str(period.tz)
    period_info = {
        "from": period.start.isoformat() if period.start else None,
        "to": period.end.isoformat() if period.end else None,
        "tz": tz_name,
    }
    bounds = _bounds(store, period)
    if bounds is None:
        return Report(period_info, by, [], [], [])
    lo, hi = bounds
    time_dims = [d for d in by if d in TIME_DIMS]
    col_dims = [d for d in by if d in COLUMN_DIMS]
    cover = _ledger_cover(store, lo, hi)
    notes: list[str] = []
    totals = store.usage_totals(lo, hi, tz=period.tz if time_dims else None, columns=col_dims, cost=cost,
                                filters=filters, exclude=cover)

    groups: dict[tuple[Any, ...], dict[Any, list[Any]]] = {}
    left_out = 0
    for t in totals:
        if t.excluded:  # a log row on a day a ledger covers: counted by the ledger instead
            left_out += t.calls or 0  # calls: requests, or 1 per record that has no count
            continue
        tkey = tuple(label(t.day, d) for d in time_dims) if t.day is not None else ()
        key = _ordered_key(by, time_dims, col_dims, tkey, t.columns)
        _accumulate(groups.setdefault(key, {}), t.currency, t.cost_kind, t.sums())

    rows: list[dict[str, Any]] = []
    keys = sorted(groups, key=_sort_key)
    if order == "desc" and by:
        keys.sort(key=lambda k: _sort_key(k[:1]), reverse=True)  # stable: inner order kept
        keys.sort(key=lambda k: k[0] is None)  # what no source named stays last, as in asc
    for key in keys:
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
            f"({', '.join(cover)}) covers the same calls; the bill's figures are used"
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


def reconcile_report(store: UsageStore, period: Period, *, filters: Filters | None = None) -> list[dict[str, Any]]:
    """Per local day × model × currency: billed vs logged vs estimated cost, and the differences.

    ``billed`` sums ledger costs, ``logged`` the costs local logs carry, ``estimated`` the price
    table's estimate of the logged calls, each in its own currency (a log's USD figure and a CNY
    price make two rows, never one sum). ``billed_minus_estimated`` shows where estimates drift
    from bills; ``billed_minus_logged`` where a client's own figures do. ``unpriced_log_requests``
    counts logged calls with neither a cost nor a price (on the day × model's first row). Reads
    the rollup as it is (see ``usage_report``).
    """
    bounds = _bounds(store, period)
    if bounds is None:
        return []
    lo, hi = bounds
    out: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    unpriced_calls: dict[tuple[str, Any], int] = {}

    def row_for(day: str, model: Any, cur: Any) -> dict[str, Any]:
        return out.setdefault((day, model, cur), {
            "day": day, "model": model, "currency": cur, "billed": None, "logged": None, "estimated": None,
            "billed_requests": None, "logged_requests": None, "unpriced_log_requests": 0})

    def add(row: dict[str, Any], name: str, value: Any, money: bool = True) -> None:
        if value is not None:
            row[name] = (row[name] or 0) + (from_nanos(value) if money else value)

    for t in store.reconcile_totals(lo, hi, tz=period.tz, filters=filters or Filters()):
        day, model, has_cost, cur, est_cur = t.day.isoformat(), t.model, t.has_cost, t.currency, t.est_currency
        billed, logged, est, unpriced = t.billed_nanos, t.logged_nanos, t.est_nanos, t.unpriced_log_calls
        ledger_req, log_req = t.ledger_requests, t.log_requests
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
