"""`tokenmeter dashboard` (also `tokenmeter --dashboard`): one offline HTML file."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from .. import service
from ..output import safe_text
from .common import common_options, get_env


def run_dashboard(*, period_name: str | None, output: str | None, open_browser: bool, quiet: bool,
                  tz: str | None = None) -> Path:
    env = get_env()
    zone = env.timezone(tz)
    now = env.now()
    period = service.period(env.config, now, preset=period_name or "month", tz=tz)
    with env.open_store() as store:
        data = service.dashboard(store, env.config, period, now)
    from ..dashboard import render_dashboard

    html = render_dashboard(data)
    if output:
        path = Path(output).expanduser()
    else:
        from ..config import data_dir, private_dir

        path = private_dir(data_dir()) / "reports" / f"dashboard-{now.astimezone(zone):%Y%m%d}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    if not quiet:
        click.echo(f"Wrote {safe_text(path)}")
    if open_browser:
        webbrowser.open(path.resolve().as_uri())
    return path


@click.command(name="dashboard")
@click.option("--period", "period_name", metavar="NAME", default="month", show_default=True,
              help="today, yesterday, week, month, last-month, quarter, year, all or YYYY-MM.")
@click.option("--output", "-o", metavar="PATH", help="HTML file to write (default: data dir/reports/).")
@click.option("--open", "open_browser", is_flag=True, help="Open it in the browser.")
@click.option("--tz", metavar="ZONE", help="IANA time zone for days.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing.")
@common_options
def dashboard_cmd(period_name: str, output: str | None, open_browser: bool, tz: str | None, quiet: bool) -> None:
    """Write one self-contained HTML dashboard that works offline (no request of any kind)."""
    run_dashboard(period_name=period_name, output=output, open_browser=open_browser, quiet=quiet, tz=tz)
