"""`tokenmeter forecast`: month-end projection and when budgets run out."""

from __future__ import annotations

from typing import Any

import click

from .. import service
from ..budgets import format_amount
from ..output import render_table
from ..render import View
from .common import common_options, format_options, get_env, show


@click.command(name="forecast")
@click.option("--tz", metavar="ZONE", help="IANA time zone for days.")
@format_options
@common_options
def forecast_cmd(tz: str | None, fmt: str) -> None:
    """Month-end projection from the recent daily rate, and days until each budget, credit or
    quota runs out."""
    env = get_env()
    zone = env.timezone(tz)
    with env.open_store() as store:
        data = service.forecast(store, env.config, env.now(), zone)
    show(_forecast_view(data), fmt)


def _forecast_view(data: dict[str, Any]) -> View:
    def table() -> list[str]:
        f = data["forecast"]
        cur = f["currency"] or ""
        lines = [f"Daily rate: {f['window']['label']}."]
        if f["cost_per_day"] is not None:
            if cur:
                lines.append(f"Spend: {format_amount(f['month_to_date_cost'], cur)} so far this month, "
                             f"{format_amount(f['cost_per_day'], cur)}/day → "
                             f"{format_amount(f['projected_cost'], cur)} by {f['month']['to']}.")
            else:  # zeros here would read as "free": there is just no price for what was used
                lines.append("Spend: no priced usage (no cost from the sources, no price for the models).")
            lines.append(f"Tokens: {f['month_to_date_tokens']:,} so far, {float(f['tokens_per_day']):,.0f}/day → "
                         f"{f['projected_tokens']:,} by {f['month']['to']}.")
        else:
            lines.append("No complete day of usage yet: nothing to project from.")
        rows = [{"budget": b["name"], "left": format_amount(b["remaining"], b["unit"]),
                 "per_day": format_amount(b["per_day"], b["unit"]) if b["per_day"] else "–",
                 "days_left": "never at this rate" if b["days_left"] is None else f"{b['days_left']:.1f}",
                 "runs_out": b["exhausted_on"] or "–"} for b in data["budgets"]]
        if rows:
            lines.append(render_table(rows, ["budget", "left", "per_day", "days_left", "runs_out"]))
        return lines

    # CSV: plain numbers and a unit column, like every CSV (not the table's "500,000 tokens")
    cols = ["name", "kind", "unit", "remaining", "per_day", "days_left", "exhausted_on", "period_end"]
    return View(data=data, rows=data["budgets"], columns=cols, table=table)
