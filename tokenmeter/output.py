"""Rendering rows as table (tabulate), JSON, CSV, TSV or bare numbers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tabulate import tabulate

__all__ = ["FORMATS", "dumps", "render_csv", "render_table", "to_jsonable"]

FORMATS = ("table", "json", "csv", "tsv")

COST_KIND_NOTE = (
    "cost kinds: billed = the provider's bill, logged = the client's own log, "
    "estimated = tokenmeter's price table; '?' = no known price (counted in 'unpriced')"
)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != 0 else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)


def plain_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != 0 else "0"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    return value


def render_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, delimiter: str = ",") -> str:
    """CSV/TSV with a header row and plain numbers (no thousands separators, no currency signs)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([plain_value(row.get(c)) for c in columns])
    return buf.getvalue()


def fmt_int(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}"


def fmt_money(value: Decimal | None, currency: str | None) -> str:
    """``1,234.5 USD`` style: up to 6 decimals (LLM calls cost fractions of a cent), at least 2."""
    if value is None or currency is None:
        return "?"
    text = f"{value:,.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')} {currency}"


HEADERS = {
    "requests": "Requests",
    "input_tokens": "Input",
    "output_tokens": "Output",
    "cache_read_tokens": "Cache read",
    "cache_write_tokens": "Cache write",
    "reasoning_tokens": "Reasoning",
    "total_tokens": "Total tokens",
    "cost": "Cost",
    "cost_kind": "Kind",
    "unpriced_requests": "Unpriced",
}


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, tablefmt: str = "simple") -> str:
    headers = [HEADERS.get(c, c.replace("_", " ").capitalize()) for c in columns]
    body = []
    for row in rows:
        line = []
        for c in columns:
            v = row.get(c)
            if c == "cost":
                line.append(fmt_money(v, row.get("currency")))
            elif c == "unpriced_requests":
                line.append(fmt_int(v) if v else "")
            elif isinstance(v, int) and not isinstance(v, bool):
                line.append(fmt_int(v))
            elif isinstance(v, Decimal):
                line.append(plain_value(v))
            elif v is None:
                line.append("–" if c in HEADERS else "")
            else:
                line.append(str(v))
        body.append(line)
    align = ["right" if c in HEADERS and c != "cost_kind" else "left" for c in columns]
    return tabulate(body, headers=headers, tablefmt=tablefmt, colalign=align, disable_numparse=True)
