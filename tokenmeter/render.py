"""The one place output formats are chosen: a command describes its data as a ``View``, ``render``
turns it into the text for ``-q``, ``--json``, ``--csv``, ``--tsv`` or the table.

The cell-level rules (``csv_cell`` against spreadsheet formulas, ``safe_text`` against terminal
escapes, number and money formats) live in ``output``; every path here goes through them.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .output import (
    COST_KIND_NOTE,
    dumps,
    fit_table,
    plain_value,
    render_csv,
    render_table,
    safe_text,
    to_jsonable,
)
from .reports import METRICS, Report

__all__ = [
    "REPORT_COLUMNS", "REPORT_TABLE_COLUMNS", "View", "error_view", "render", "report_table", "report_view",
    "terminal_width",
]

# A report's figures, in order: CSV, TSV and the API's export_csv carry them all. The table shows
# the currency inside the Cost column and narrows itself to the terminal (``output.fit_table``).
REPORT_COLUMNS = (*METRICS, "cost", "currency", "cost_kind", "unpriced_requests")
REPORT_TABLE_COLUMNS = tuple(c for c in REPORT_COLUMNS if c not in ("cache_write_tokens", "currency"))


@dataclass
class View:
    """What a command shows, in every format it offers.

    ``data`` is the JSON document; ``rows`` and ``columns`` the CSV/TSV (and, unless ``table`` is
    given, the table, followed by ``footer`` lines, or ``empty`` when there are no rows);
    ``table`` and ``quiet`` return a command's own lines for those formats.
    """

    data: Any = None
    rows: Sequence[dict[str, Any]] = ()
    columns: Sequence[str] = ()
    table: Callable[[], list[str]] | None = None
    quiet: Callable[[], list[str]] | None = None
    empty: str = "No data."
    footer: Sequence[str] = ()
    ascii_json: bool = False  # `tokenmeter plugins` has always escaped non-ASCII
    one_line_json: bool = False  # error documents: one line on stderr, like the plain message


def render(view: View, fmt: str) -> str:
    """The text to print for ``fmt`` (``quiet``, ``json``, ``csv``, ``tsv`` or ``table``)."""
    if fmt == "json" and view.one_line_json:
        return json.dumps(to_jsonable(view.data), ensure_ascii=view.ascii_json) + "\n"
    if fmt == "json":
        return dumps(view.data, ensure_ascii=view.ascii_json) + "\n"
    if fmt in ("csv", "tsv"):
        return render_csv(view.rows, view.columns, delimiter="," if fmt == "csv" else "\t")
    if fmt == "quiet" and view.quiet is not None:
        lines = view.quiet()
    elif view.table is not None:
        lines = view.table()
    else:
        lines = [render_table(view.rows, view.columns) if view.rows else view.empty]
        lines += [safe_text(line) for line in view.footer]
    return "".join(line + "\n" for line in lines)


def terminal_width() -> int:
    """The terminal's width in columns: ``COLUMNS`` if set, else the terminal's, else 80."""
    import shutil  # only tables ask: shutil pulls in the compression modules

    return shutil.get_terminal_size().columns


def report_table(report: Report, *, tty: bool = False, wide: bool = False, width: int | None = None) -> list[str]:
    """A report's table lines within ``width`` columns (default: the terminal's); ``wide`` shows
    every column whatever the width, ``tty`` adds the cost-kind legend."""
    width = terminal_width() if width is None else width
    by = report.group_by
    p = report.period
    lines = [f"Usage {p['from'] or 'start'} to {p['to'] or 'now'} ({p['tz']})"]
    # a dimension nobody reported (a record without model, project or agent) shows as "-"
    body = [{**r, **{d: "-" for d in by if r.get(d) is None}} for r in report.rows]
    totals = [dict(t, **{by[0]: "Total"}) if by else dict(t) for t in report.total]
    if not by:
        body, totals = totals, []
    if not body:
        return [*lines, "No usage recorded for this period."]
    text, hidden = fit_table(body + totals, by, width=width, wide=wide)
    if totals:  # a rule above the total rows
        split = text.splitlines()
        split.insert(len(split) - len(totals), split[1])
        text = "\n".join(split)
    lines.append(text)
    notes = [f"note: {safe_text(note)}" for note in report.notes]  # notes name sources and providers
    if hidden:
        notes.append(f"{', '.join(hidden)} left out to fit {width} columns; --wide shows all")
    if tty:
        notes.append(COST_KIND_NOTE)
    for note in notes:  # prose wraps to the terminal; the table is already narrow enough
        lines += textwrap.wrap(note, max(width, 40), subsequent_indent="  ") if not wide else [note]
    return lines


def report_view(report: Report, *, tty: bool = False, wide: bool = False, width: int | None = None) -> View:
    """A usage report in every format; the table fits ``width`` (default: the terminal) unless
    ``wide``; ``tty`` adds the cost-kind legend under the table."""
    by = report.group_by
    rows = report.rows if by else report.total  # with no grouping the rows are the totals

    def quiet() -> list[str]:
        # nothing recorded is a known zero; a figure no source reported is unknown: '?', never 0
        totals = report.total or [{"total_tokens": 0, "cost": None, "requests": 0}]
        lines = []
        for row in totals:
            numbers = ["?" if row[k] is None else str(plain_value(row[k]))
                       for k in ("total_tokens", "cost", "requests")]
            lines.append("\t".join(numbers + ([row["currency"]] if len(totals) > 1 else [])))
        return lines

    def table() -> list[str]:
        return report_table(report, tty=tty, wide=wide, width=width)

    return View(data=report.as_dict(), rows=rows, columns=[*by, *REPORT_COLUMNS], table=table, quiet=quiet)


def error_view(code: str, message: str, exit_code: int, *, prefix: str = "Error: ") -> View:
    """A failed command: ``{"error": {"code", "message", "exit_code"}}`` (a provider CLI's shape) as JSON
    (JSON escapes control characters itself), else one line made safe for the terminal (messages may
    quote names from logs and APIs)."""
    return View(data={"error": {"code": code, "message": message, "exit_code": exit_code}},
                table=lambda: [prefix + safe_text(message)], one_line_json=True)
