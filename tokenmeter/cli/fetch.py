"""`tokenmeter fetch`: pull from sources into the database."""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta
from typing import Any

import click

from .. import service
from ..errors import UsageError
from ..fetch import SourceResult, exit_code_for
from ..output import safe_text
from ..periods import _parse_date
from ..plugin_manager import get_sources
from ..render import View
from ..sources import SourceContext, Window
from .common import common_options, format_options, get_env, show


class _TTYProgress:
    def __init__(self) -> None:
        self.width = 0

    def __call__(self, ctx: SourceContext) -> None:
        p = ctx.progress
        if p.total:
            pct = min(100, int(100 * p.done / p.total))
            bar = "#" * (pct // 5)
            text = f"{ctx.source_id}: [{bar:<20}] {pct:3d}% {p.description}"
        else:
            text = f"{ctx.source_id}: {p.done:,} {p.description}"
        text = safe_text(text)  # a plugin's description may name files from outside
        sys.stderr.write("\r" + text[:100].ljust(self.width))
        sys.stderr.flush()
        self.width = len(text[:100])

    def clear(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def _window(env: Any, date_from: str | None, date_to: str | None) -> Window:
    tz = env.config.timezone
    now = env.now()
    end = now
    try:
        if date_to:
            d = _parse_date(date_to, "--to")
            end = min(now, datetime.combine(d + timedelta(days=1), time(0), tz))
        start = None
        if date_from:
            start = datetime.combine(_parse_date(date_from, "--from"), time(0), tz)
            start.timestamp()  # a zone offset can push the first day out of range
    except (OverflowError, ValueError):
        raise UsageError(f"--from/--to: dates must lie between {date.min + timedelta(days=1)} and "
                         f"{date.max - timedelta(days=1)}") from None
    if start is not None and start >= end:
        raise UsageError(f"--from {date_from} is not before --to / now")
    return Window(start=start, end=end)


def _summary_line(r: SourceResult) -> str:
    if r.status == "skipped":
        return f"{r.source}: skipped ({r.message})"
    if r.status == "error":
        return f"{r.source}: FAILED: {r.message.removeprefix(r.source + ': ')}"
    parts = [f"{r.new} new", f"{r.updated} updated"]
    if r.snapshots:
        parts.append(f"{r.snapshots} snapshots")
    if r.skipped_lines:
        parts.append(f"{r.skipped_lines} lines skipped")
    if r.unrecognised:
        parts.append(f"{r.unrecognised} with unrecognised usage")
    return f"{r.source}: " + ", ".join(parts) + f" in {r.seconds:.2f}s"


@click.command(name="fetch")
@click.argument("sources", nargs=-1)
@click.option("--from", "--since", "date_from", metavar="DATE", help="Fetch from this day (YYYY-MM-DD).")
@click.option("--to", "--until", "date_to", metavar="DATE", help="Fetch up to this day (inclusive).")
@format_options
@common_options
def fetch_cmd(sources: tuple[str, ...], date_from: str | None, date_to: str | None, fmt: str) -> None:
    """Pull usage from sources into the database.

    With no SOURCE, runs every installed source that is enabled and has what it needs (its logs
    exist, its credentials are set); the others are listed as skipped. A source named here runs
    even without a config table. Exit 6 when some sources failed (the rest is stored).

    \b
    Examples:
      tokenmeter fetch
      tokenmeter fetch SOURCE --from 2026-03-01
    """
    env = get_env()
    installed = get_sources()
    for sid in env.config.sources:
        if sid not in installed:
            click.echo(f"tokenmeter: warning: [sources.{safe_text(sid)}] in the config matches no installed "
                       f"source (installed: {', '.join(installed) or 'none'})", err=True)
    window = _window(env, date_from, date_to) if (date_from or date_to) else None
    progress = _TTYProgress() if sys.stderr.isatty() and fmt == "table" else None

    def on_result(r: SourceResult) -> None:
        if progress:
            progress.clear()
        if fmt == "table":
            stream_err = r.status == "error"
            # messages, file names and skipped lines come from outside: no raw control characters
            click.echo(safe_text(_summary_line(r)), err=stream_err)
            for example in r.skip_examples:
                click.echo(f"  skipped {safe_text(example)}")
            for example in r.unrecognised_examples:
                click.echo(f"  unrecognised usage (not counted; please report) at {safe_text(example)}",
                           err=True)
            for w in r.warnings:
                click.echo(f"  warning: {safe_text(w)}", err=True)
            if r.status == "error" and env.debug and r.traceback:
                click.echo(r.traceback, err=True)
        elif r.status == "error":
            # stdout is for the document; cron mails stderr, so the reason goes there too
            click.echo(safe_text(_summary_line(r)), err=True)

    with env.open_store() as store:
        results = service.fetch(store, env.config, sources, installed, window=window,
                                on_progress=progress, on_result=on_result)
    code = exit_code_for(results)
    cols = ["source", "status", "new", "updated", "unchanged", "snapshots", "skipped_lines", "seconds", "message"]
    rows = [r.as_dict() for r in results]
    # the table was printed source by source as each finished (on_result)
    show(View(data={"sources": rows, "exit_code": code}, rows=rows, columns=cols,
              table=lambda: [] if results else ["No sources installed. See `tokenmeter plugins`."]), fmt)
    if code:
        click.get_current_context().exit(code)
