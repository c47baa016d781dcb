"""The dashboard's values: the input normalised (rows, currency, per-key totals, chart data) and
formatted for the page (numbers, money, percentages, escaped text). See ``dashboard.py``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html import escape
from typing import Any

__all__ = [
    "COST_KIND_HELP",
    "DASH",
    "add",
    "as_int",
    "as_str",
    "chart_data",
    "currency_of",
    "dec",
    "dec_str",
    "esc",
    "fmt_amount",
    "fmt_compact",
    "fmt_int",
    "fmt_money",
    "fmt_pct",
    "group_rows",
    "kind_badge",
    "kinds_label",
    "model_label",
    "num",
    "rows_of",
    "tokens_of",
]

COST_KIND_HELP = {
    "billed": "from the provider's bill",
    "logged": "the client log's own figure",
    "estimated": "tokens \u00d7 price table",
    "mixed": "several of these",
}
DASH = "\u2014"


def dec(value: Any) -> Decimal | None:
    """A finite ``Decimal`` from a number or decimal string; None for anything else."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def as_int(value: Any) -> int | None:
    """An int (half-up) from a number or decimal string; None for anything else."""
    number = dec(value)
    return None if number is None else int(number.quantize(Decimal(1), ROUND_HALF_UP))


def as_str(value: Any) -> str | None:
    """Text for the page: dates as ISO-8601, empty as None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text if text else None


def add(a: Any, b: Any) -> Any:
    """``a + b`` where None means unknown (unknown plus a number is the number)."""
    if b is None:
        return a
    return b if a is None else a + b


def fmt_int(value: Any) -> str:
    """``1,234`` (or a dash for unknown)."""
    number = as_int(value)
    return DASH if number is None else f"{number:,}"


def fmt_compact(value: Any) -> str:
    """``1.52M``, ``12.3k`` (or a dash for unknown)."""
    number = dec(value)
    if number is None:
        return DASH
    for size, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(number) >= size:
            scaled = number / size
            digits = 0 if abs(scaled) >= 100 else 1 if abs(scaled) >= 10 else 2
            return f"{float(scaled):.{digits}f}".rstrip("0").rstrip(".") + suffix
    return f"{int(number):,}"


def fmt_money(value: Any, currency: str | None) -> str:
    """``15.25 USD``; under 1: 4 decimals (``0.3693 USD``), under 0.01: 6 (``0.007726 USD``)."""
    number = dec(value)
    if number is None:
        return DASH
    if abs(number) >= 1 or number == 0:
        text = f"{number.quantize(Decimal('0.01')):,}"
    else:
        # small amounts keep their significant digits: 0.3693, 0.007726
        places = Decimal("0.0001") if abs(number) >= Decimal("0.01") else Decimal("0.000001")
        text = f"{number.quantize(places):f}".rstrip("0")
        if len(text.split(".")[1]) < 2:
            text = f"{number:.2f}"
    return f"{text} {currency}" if currency else text


def fmt_amount(value: Any, unit: str | None) -> str:
    """Money when ``unit`` is a currency code, else a count with its unit."""
    if unit and len(unit) == 3 and unit.isalpha() and unit.isupper():
        return fmt_money(value, unit)
    return f"{fmt_int(value)} {unit}".strip() if unit else fmt_int(value)


def fmt_pct(part: Any, whole: Any) -> str:
    """``part`` as a percentage of ``whole`` with one decimal (or a dash)."""
    p, w = dec(part), dec(whole)
    if p is None or not w:
        return DASH
    return f"{p / w * 100:.1f}%"


def esc(value: Any) -> str:
    """The value as HTML-escaped text (attributes included)."""
    return escape(as_str(value) or "", quote=True)


def kind_badge(kind: Any) -> str:
    """The cost-kind badge, its meaning in the title."""
    if not kind:
        return ""
    k = as_str(kind) or ""
    cls = k if k in COST_KIND_HELP else "none"
    return f'<span class="badge {cls}" title="{esc(COST_KIND_HELP.get(k, k))}">{esc(k)}</span>'


# -- normalising the input -------------------------------------------------------------------------


def rows_of(value: Any) -> list[Mapping[str, Any]]:
    """A list of row mappings from a row, a list of rows or nothing."""
    if not value:
        return []
    if isinstance(value, Mapping):
        return [value]
    return [r for r in value if isinstance(r, Mapping)]


def tokens_of(row: Mapping[str, Any]) -> int | None:
    """A row's total tokens (``tokens``, ``total_tokens`` or input + output)."""
    for key in ("tokens", "total_tokens"):
        if row.get(key) is not None:
            return as_int(row[key])
    i, o = as_int(row.get("input_tokens")), as_int(row.get("output_tokens"))
    return None if i is None and o is None else (i or 0) + (o or 0)


def kinds_label(kinds: set[str]) -> str | None:
    """The one cost kind of a set, ``mixed`` for several, None for none."""
    return (next(iter(kinds)) if len(kinds) == 1 else "mixed") if kinds else None


def currency_of(data: Mapping[str, Any]) -> str | None:
    """The currency charted: the data's own, else the first a row names."""
    if data.get("currency"):
        return str(data["currency"])
    for key in ("summary", "daily", "by_model", "rows"):
        for row in rows_of(data.get(key)):
            if row.get("currency"):
                return str(row["currency"])
    return None


def group_rows(rows: Iterable[Mapping[str, Any]], key: Any, currency: str | None) -> list[dict[str, Any]]:
    """Add up rows per key; cost only where the row is in the dashboard's currency."""
    out: dict[Any, dict[str, Any]] = {}
    for row in rows:
        k = key(row)
        acc = out.setdefault(k, {"key": k, "cost": None, "input": None, "output": None, "total": None,
                                 "requests": None, "unpriced": None, "kinds": set(), "by_kind": {},
                                 "other_cost": False})
        cost = dec(row.get("cost"))
        if cost is not None and (not currency or not row.get("currency") or row.get("currency") == currency):
            acc["cost"] = add(acc["cost"], cost)
            kind = str(row.get("cost_kind") or "none")
            acc["by_kind"][kind] = add(acc["by_kind"].get(kind), cost)
            if row.get("cost_kind"):
                acc["kinds"].add(str(row["cost_kind"]))
        elif cost is not None:
            acc["other_cost"] = True
        acc["input"] = add(acc["input"], as_int(row.get("input_tokens")))
        acc["output"] = add(acc["output"], as_int(row.get("output_tokens")))
        acc["total"] = add(acc["total"], tokens_of(row))
        acc["requests"] = add(acc["requests"], as_int(row.get("requests")))
        acc["unpriced"] = add(acc["unpriced"], as_int(row.get("unpriced_requests")))
    return list(out.values())


def num(value: Decimal | int | None) -> float | int | None:
    """A JSON number for the charts."""
    return None if value is None else float(value) if isinstance(value, Decimal) else value


def dec_str(value: Decimal | None) -> str | None:
    """A Decimal as plain text (no exponent)."""
    return None if value is None else format(value, "f")


def model_label(key: tuple[str, str | None], served: Mapping[str, int]) -> str:
    """A model's name in the legends and bars: ``model (provider)`` when several providers serve it,
    so its bars and slices cannot be told apart by name alone."""
    model, provider = key
    return f"{model} ({provider})" if provider and served.get(model, 0) > 1 else model


def chart_data(data: Mapping[str, Any], currency: str | None) -> dict[str, Any]:
    """The JSON the chart script draws: daily, per-model and per-provider totals."""
    daily = group_rows(rows_of(data.get("daily")), lambda r: as_str(r.get("date") or r.get("day")), currency)
    daily = sorted((d for d in daily if d["key"]), key=lambda d: d["key"])
    by_model = group_rows(rows_of(data.get("by_model")),
                      lambda r: (as_str(r.get("model")) or "(no model)", as_str(r.get("provider"))), currency)
    by_provider = group_rows(rows_of(data.get("by_provider")), lambda r: as_str(r.get("provider")) or "(none)",
                         currency)

    served: dict[str, int] = {}  # how many providers serve each model
    for g in by_model:
        served[g["key"][0]] = served.get(g["key"][0], 0) + 1

    def item(g: dict[str, Any], label: str, provider: str | None = None) -> dict[str, Any]:
        return {"label": label, "provider": provider, "cost": num(g["cost"]),
                "cost_s": dec_str(g["cost"]), "cost_kind": kinds_label(g["kinds"]),
                "tokens": g["total"] or 0, "requests": g["requests"]}

    return {
        "currency": currency,
        "daily": [{"date": d["key"], "cost": num(d["cost"]), "cost_s": dec_str(d["cost"]),
                   "cost_kind": kinds_label(d["kinds"]),
                   "by_kind": {k: {"v": num(v), "s": dec_str(v)} for k, v in d["by_kind"].items()},
                   "input": d["input"], "output": d["output"], "total": d["total"], "requests": d["requests"],
                   "unpriced": d["unpriced"]} for d in daily],
        "by_model": [item(g, model_label(g["key"], served), g["key"][1]) for g in by_model],
        "by_provider": [item(g, g["key"]) for g in by_provider],
    }
