"""`tokenmeter watch`: a report redrawn every few seconds.

Each refresh is a plain `tokenmeter report` with the same options: log sources are read from where
the last read stopped (only appended bytes), then the report is rendered. Between refreshes the
process sleeps, so a 5-second watch costs a fraction of a percent of a core on a quiet log.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from typing import Any

import click

from .common import common_options
from .report import report_options, run_report

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen (every terminal tokenmeter targets has both)


@click.command(name="watch")
@click.option("--interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True, metavar="SECONDS",
              help="Seconds between refreshes.")
@click.option("--count", type=click.IntRange(min=1), default=None, hidden=True,
              help="Stop after N refreshes (tests, scripts).")
@report_options
@common_options
def watch_cmd(interval: float, count: int | None, **kwargs: Any) -> None:
    """A live report: today by model unless told otherwise, redrawn every --interval seconds.

    Takes every `report` option. On a terminal the screen is cleared and redrawn; piped, each
    refresh is printed after the last (a table unless a format is given). Ctrl-C stops it (exit 0).

    \b
    Examples:
      tokenmeter watch
      tokenmeter watch --month --by day --interval 30
    """
    ctx = click.get_current_context()
    typed = [p for p in ("fmt", "as_json", "as_csv")
             if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
    if not typed and kwargs["fmt"] == "json":  # piped with no format asked for: tables, not JSON
        kwargs["fmt"] = "table"
    tty = sys.stdout.isatty()
    done = 0
    try:
        while True:
            started = time.monotonic()
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):  # draw the whole frame in one write: no flicker
                run_report(**kwargs)
            frame = buffer.getvalue()
            if tty:
                stamp = time.strftime("%H:%M:%S")
                frame = f"{CLEAR}tokenmeter watch · {stamp} · every {interval:g} s · Ctrl-C stops\n{frame}"
            elif done:
                frame = "\n" + frame
            sys.stdout.write(frame)
            sys.stdout.flush()
            done += 1
            if count is not None and done >= count:
                return
            # sleep, never poll: the time a refresh took comes off the wait
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:  # the way to stop a watch: a clean end, not an error
        if tty:
            sys.stdout.write("\n")
        return
