"""`tokenmeter quota`: the latest quota snapshots."""

from __future__ import annotations

import click

from .. import service
from ..render import View
from .common import common_options, format_options, get_env, show


@click.command(name="quota")
@format_options
@common_options
def quota_cmd(fmt: str) -> None:
    """Latest quota snapshots: free tiers, coding-plan windows, credits, key limits."""
    env = get_env()
    with env.open_store() as store:
        rows = service.quota_rows(store)
    cols = ["provider", "name", "unit", "used", "remaining", "total", "used_pct", "resets_at", "observed_at"]
    data = [{c: r.get(c) for c in ["source", "account", *cols, "details"]} for r in rows]
    show(View(data=data, rows=data, columns=cols,
              empty="No quota snapshots yet. Run `tokenmeter fetch` with a provider that reports quotas."), fmt)
