"""`tokenmeter prices` and `tokenmeter reprice`."""

from __future__ import annotations

import click

from .. import service
from ..output import safe_text
from ..periods import _parse_date
from ..render import View
from .common import common_options, format_options, get_env, show


@click.command(name="prices")
@click.argument("model", required=False)
@click.option("--on", "on_day", metavar="DATE", help="The price in force on this day (default today).")
@format_options
@common_options
def prices_cmd(model: str | None, on_day: str | None, fmt: str) -> None:
    """The price tokenmeter would use for MODEL (substring), and where it came from.

    Prices come from plugins (the `plugin` column names the one that registered the price) and
    from `[prices."<model>"]` tables in your config (origin `config`), which win.
    """
    env = get_env()
    day = _parse_date(on_day, "--on") if on_day else env.now().date()
    basis, rows = service.prices(env.config, model, day)
    if not rows and model:
        click.echo(safe_text(f"No price known for {model!r}: its usage is counted as unpriced. "
                             f'Add [prices."{model}"] to your config to price it.'), err=True)
    cols = [c for c in ("model", "region", "currency", "valid_from", "input", "output", "cache_read",
                        "cache_write", "thinking_output", "tiers", "origin", "plugin", "source")
            if not rows or c in rows[0]]
    show(View(data={"basis": basis, "day": day, "prices": rows}, rows=rows, columns=cols), fmt)


@click.command(name="reprice")
@common_options
def reprice_cmd() -> None:
    """Recompute estimated costs after the price table or your overrides changed."""
    env = get_env()
    with env.open_store() as store:
        changed, total = service.reprice(store, env.config)
    click.echo(f"Repriced {total} records; {changed} estimates changed.")
