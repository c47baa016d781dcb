"""Rendering rows as table (tabulate), JSON, CSV, TSV or bare numbers."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tabulate import tabulate

__all__ = ["FORMATS", "csv_cell", "dumps", "render_csv", "render_table", "safe_text", "to_jsonable"]

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


# OWASP "CSV Injection": spreadsheets run a cell starting with one of these as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One CSV/TSV cell: numbers stay plain numbers (``-1.5``); text a spreadsheet would run as a
    formula (model names and paths come from logs and APIs) gets a leading ``'``."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return plain_value(value)
    text = plain_value(value)
    if not isinstance(text, str):
        text = str(text)  # what the csv writer would write anyway
    return "'" + text if text.startswith(FORMULA_START) else text


def render_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, delimiter: str = ",") -> str:
    """CSV/TSV with a header row and plain numbers (no thousands separators, no currency signs);
    every cell goes through ``csv_cell``."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    # the csv module leaves a lone CR unquoted when lines end in LF, and readers then split the row
    quoted = csv.writer(buf, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for cells in ([csv_cell(c) for c in columns], *([csv_cell(r.get(c)) for c in columns] for r in rows)):
        (quoted if any(isinstance(c, str) and "\r" in c for c in cells) else writer).writerow(cells)
    return buf.getvalue()


# C0 controls (ESC, BEL, CR, TAB, newline…), DEL, C1 controls (8-bit CSI/OSC) and the bidi
# overrides/isolates that make text display in another order than it is stored
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: Any) -> str:
    """One line of text for a terminal: control characters shown as ``\\x1b``-style escapes, so a
    model name or path from outside cannot move the cursor, retitle the window or hide text.
    Printable Unicode (Chinese model names…) is kept as it is."""
    return _CONTROL.sub(_escape, str(text))


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
    headers = [safe_text(HEADERS.get(c, c.replace("_", " ").capitalize())) for c in columns]
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
        body.append([safe_text(cell) for cell in line])
    align = ["right" if c in HEADERS and c != "cost_kind" else "left" for c in columns]
    return tabulate(body, headers=headers, tablefmt=tablefmt, colalign=align, disable_numparse=True)
