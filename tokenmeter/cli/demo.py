"""`tokenmeter demo`: a throwaway database from the installed sources' sample data."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from .. import service
from ..output import safe_text
from ..plugin_manager import get_sources
from ..render import REPORT_TABLE_COLUMNS, View, report_table
from .common import Env, common_options, format_options, say, show


@click.command(name="demo")
@click.option("--keep", type=click.Path(file_okay=False), help="Build the demo database in this folder.")
@format_options
@common_options
def demo_cmd(keep: str | None, fmt: str) -> None:
    """Build a throwaway database from the installed sources' sample data; print a report.

    Runs every installed source that offers demo data, with the real pricing: no network, no
    config, no credentials needed.
    """
    installed = get_sources()
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tokenmeter-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    # the same environment as any command, with the demo's own config and database
    env = Env(db=str(folder / "demo.db"), given=service.demo_config(installed, folder / "data", say))
    db = env.db_path
    with env.open_store() as store:
        results, report = service.demo(store, env.config, installed)
    for r in results:
        line = f"{r.source}: {r.new} new records" + (
            f", {r.skipped_lines} bad lines skipped" if r.skipped_lines else "")
        say(safe_text(line if r.status == "ok" else f"{r.source}: FAILED: {r.message}"))
    show(View(data=report.as_dict() | {"database": str(db)},
              rows=report.rows + [dict(t, provider="Total") for t in report.total],
              columns=["provider", "model", *REPORT_TABLE_COLUMNS],
              table=lambda: report_table(report)), fmt)
    say(
        f"\nDemo database: {db}\nNext:\n"
        f"  tokenmeter --db {db} --all --by day,model     explore the demo data\n"
        f"  tokenmeter --db {db} prices {_top_model(report.rows)}   see how a cost was estimated\n"
        "  cp config.example.toml \"$(dirname \"$(tokenmeter db path)\")\"/config.toml   then point it at your logs\n"
        "  tokenmeter fetch && tokenmeter --month --by model"
    )


def _top_model(rows: list[dict[str, Any]]) -> str:
    """The model with the most requests in the demo report (what `tokenmeter prices` is shown for)."""
    named = [r for r in rows if r.get("model")]
    if not named:
        return "MODEL"
    return str(max(named, key=lambda r: r.get("requests") or 0)["model"])
