"""Rendering rows as table (tabulate), JSON, CSV, TSV or bare numbers."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "FORMATS", "csv_cell", "dumps", "fit_table", "money_column", "render_csv", "render_table", "safe_text",
    "to_jsonable",
]

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


def dumps(value: Any, *, ensure_ascii: bool = False) -> str:
    """Indented JSON; decimals as exact strings, dates as ISO-8601, text as UTF-8 unless ``ensure_ascii``."""
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=ensure_ascii)


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


def money_places(amounts: Iterable[Decimal]) -> int:
    """Decimals for one currency in one column: enough to show each amount's first two significant
    digits (LLM calls cost fractions of a cent) but no more than any amount has; at least 2, at most 6."""
    places = 2
    for a in amounts:
        if a:
            a = abs(a).normalize()
            places = max(places, min(6, 1 - a.adjusted(), -int(a.as_tuple().exponent)))
    return places


def money_column(cells: Sequence[tuple[Decimal | None, str | None]]) -> list[str]:
    """A column of ``(amount, currency)`` as ``1,234.500 USD`` cells: one number of decimals per
    currency, fractions padded so that right-aligned cells line up on the decimal point."""
    per_currency: dict[str, list[Decimal]] = {}
    for amount, currency in cells:
        if amount is not None and currency is not None:
            per_currency.setdefault(currency, []).append(Decimal(amount))
    places = {c: money_places(v) for c, v in per_currency.items()}
    widest = max(places.values(), default=2)
    out = []
    for amount, currency in cells:
        if amount is None or currency is None:
            out.append("?")
            continue
        p = places[currency]
        out.append(f"{Decimal(amount):,.{p}f}{' ' * (widest - p)} {currency}")
    return out


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


def _cells(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[list[str]]:
    """Every row's cells as terminal-safe text: counts with thousands separators, money per column."""
    body = []
    for row in rows:
        line = []
        for c in columns:
            v = row.get(c)
            if c == "cost":
                line.append("")  # filled in per column below
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
    if "cost" in columns:
        i = list(columns).index("cost")
        for line, money in zip(body, money_column([(r.get("cost"), r.get("currency")) for r in rows]), strict=True):
            line[i] = safe_text(money)  # a currency code comes from outside too
    return body


def _header(column: str, headers: dict[str, str]) -> str:
    return safe_text(headers.get(column, column.replace("_", " ").capitalize()))


def _tabulate(body: list[list[str]], headers: list[str], columns: Sequence[str], tablefmt: str) -> str:
    from tabulate import tabulate  # here, not at the top: `statusline` runs often and draws no table

    align = ["right" if (c in HEADERS or c == "cache_reason") and c != "cost_kind" else "left" for c in columns]
    return tabulate(body, headers=headers, tablefmt=tablefmt, colalign=align, disable_numparse=True)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, tablefmt: str = "simple") -> str:
    return _tabulate(_cells(rows, columns), [_header(c, HEADERS) for c in columns], columns, tablefmt)


# The narrow report layout, as ccusage narrows its tables: short headers and kinds, cache reads and
# reasoning in one column, then columns dropped from the least useful on.
SHORT_HEADERS = {**HEADERS, "requests": "Reqs", "cache_reason": "Cache/Reason", "total_tokens": "Total"}
SHORT_KINDS = {"estimated": "est", "logged": "log", "billed": "bill", "mixed": "mix"}
DROP_ORDER = ("cache_reason", "total_tokens", "requests", "output_tokens")
WIDE_METRICS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                "reasoning_tokens", "total_tokens", "cost", "cost_kind", "unpriced_requests")
MIN_NAME = 12  # a name column is never cut below this


def _widths(body: list[list[str]], headers: list[str]) -> list[int]:
    # tabulate's "simple" format: a column is as wide as its widest cell or its header plus 2
    return [max([len(h) + 2] + [len(line[i]) for line in body]) for i, h in enumerate(headers)]


def _fits(body: list[list[str]], headers: list[str], width: int) -> bool:
    return sum(_widths(body, headers)) + 2 * (len(headers) - 1) <= width  # two spaces between columns


def _cut(text: str, n: int, keep_end: bool) -> str:
    if len(text) <= n:
        return text
    return "…" + text[len(text) - n + 1:] if keep_end else text[:n - 1] + "…"


def fit_table(rows: Sequence[dict[str, Any]], dims: Sequence[str], *, width: int | None,
              wide: bool = False) -> tuple[str, list[str]]:
    """A report table (``dims`` then the figures) within ``width`` columns, and the headers of the
    columns it left out to get there. ``wide`` (or no width) shows every figure."""
    if wide or width is None:
        return render_table(rows, [*dims, *WIDE_METRICS]), []
    unpriced = ["unpriced_requests"] if any(r.get("unpriced_requests") for r in rows) else []
    columns = [*dims, "requests", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
               "total_tokens", "cost", "cost_kind", *unpriced]
    body = _cells(rows, columns)
    headers = [_header(c, HEADERS) for c in columns]
    if _fits(body, headers, width):
        return _tabulate(body, headers, columns, "simple"), []
    narrow = []
    for row, line in zip(rows, body, strict=True):
        cells = dict(zip(columns, line, strict=True))
        cache, reason = cells.pop("cache_read_tokens"), cells.pop("reasoning_tokens")
        cells["cache_reason"] = cache if cache == reason == "–" else f"{cache}/{reason}"
        cells["cost_kind"] = SHORT_KINDS.get(str(row.get("cost_kind")), cells["cost_kind"])
        narrow.append(cells)
    columns = [c if c != "cache_read_tokens" else "cache_reason" for c in columns if c != "reasoning_tokens"]
    hidden: list[str] = []
    for drop in (None, *DROP_ORDER):
        if drop is not None:
            columns.remove(drop)
            hidden.append(SHORT_HEADERS[drop])
        body = [[cells[c] for c in columns] for cells in narrow]
        headers = [_header(c, SHORT_HEADERS) for c in columns]
        if _fits(body, headers, width):
            break
    else:
        # still too wide: cut the longest names (a path keeps its end, where it differs)
        for i in sorted(range(len(dims)), key=lambda i: -max(len(line[i]) for line in body)):
            widths = _widths(body, headers)
            excess = sum(widths) + 2 * (len(widths) - 1) - width
            if excess <= 0:
                break
            n = max(MIN_NAME, len(headers[i]) + 2, widths[i] - excess)
            for line in body:
                line[i] = _cut(line[i], n, keep_end=dims[i] == "project")
    return _tabulate(body, headers, columns, "simple"), hidden
