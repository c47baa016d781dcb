"""`tokenmeter reconcile`: billed vs logged vs estimated cost."""

from __future__ import annotations

import click

from .. import service
from ..render import View
from ..reports import Filters
from .common import common_options, format_options, get_env, show

LOGGED_NOTE = (
    "logged = the figure the client wrote in its own log (it may use one flat rate for every model, "
    "not the provider's price); estimated = tokenmeter's price table for the same calls"
)


@click.command(name="reconcile")
@click.option("--period", "period_name", metavar="NAME", default="month", show_default=True,
              help="today, yesterday, week, month, last-month, quarter, year, all or YYYY-MM.")
@click.option("--from", "date_from", metavar="DATE", help="First day (YYYY-MM-DD).")
@click.option("--to", "date_to", metavar="DATE", help="Last day (YYYY-MM-DD).")
@click.option("--provider", metavar="P", help="Only providers containing P.")
@click.option("--model", metavar="M", help="Only models containing M.")
@click.option("--tz", metavar="ZONE", help="IANA time zone for days.")
@format_options
@common_options
def reconcile_cmd(period_name: str, date_from: str | None, date_to: str | None, provider: str | None,
                  model: str | None, tz: str | None, fmt: str) -> None:
    """Billed vs logged vs estimated cost per day × model, and where they differ."""
    env = get_env()
    period = service.period(env.config, env.now(), preset=period_name, date_from=date_from, date_to=date_to, tz=tz)
    with env.open_store() as store:
        rows = service.reconcile(store, env.config, period, Filters(provider=provider, model=model))
    cols = ["day", "model", "currency", "billed", "logged", "estimated", "billed_minus_logged",
            "billed_minus_estimated", "logged_minus_estimated", "estimate_error_pct", "unpriced_log_requests"]
    has_logged = any(r["logged"] is not None for r in rows)
    show(View(data={"rows": rows}, rows=rows, columns=cols, footer=[LOGGED_NOTE] if has_logged else [],
              empty="Nothing to reconcile: no priced usage in this period."), fmt)
