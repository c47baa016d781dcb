"""`tokenmeter budget`: budget and quota levels, and the alerts they send."""

from __future__ import annotations

from typing import Any

import click

from .. import service
from ..budgets import SCHEMA_VERSION, BudgetStatus, exit_code, format_amount
from ..output import dumps, plain_value, render_table, safe_text
from ..render import View
from .common import common_options, format_options, get_env, show

LEVEL_MARK = {"ok": "ok", "warning": "WARNING", "critical": "CRITICAL"}


@click.command(name="budget")
@click.option("--notify", "do_notify", is_flag=True, help="Send alerts for budgets that reached a level.")
@click.option("--dry-run", is_flag=True, help="With --notify: show what would be sent, send nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Numbers only: used, remaining, percent per budget.")
@click.option("--tz", metavar="ZONE", help="IANA time zone for budget periods.")
@format_options
@common_options
def budget_cmd(do_notify: bool, dry_run: bool, quiet: bool, tz: str | None, fmt: str) -> None:
    """Budget and quota levels. Exit 0 ok, 1 warning, 2 critical (the highest level wins).

    Budgets come from `[budgets.<name>]` in the config; provider quotas (free tier, coding-plan
    windows, key limits, credits) from the latest snapshots count too.

    \b
    Examples:
      tokenmeter budget
      tokenmeter budget -q || mail -s "LLM budget" me@example.com
      tokenmeter budget --notify          # from cron: alerts once per level per period
    """
    env = get_env()
    zone = env.timezone(tz)
    with env.open_store() as store:
        statuses = service.budgets(store, env.config, env.now(), zone)
        deliveries = service.alerts(store, env.config, statuses, dry_run=dry_run) if do_notify or dry_run else None
    code = exit_code(statuses)
    show(_budget_view(statuses, code, deliveries), "quiet" if quiet else fmt)
    _report_alerts(deliveries or [], fmt="quiet" if quiet else fmt)
    click.get_current_context().exit(code)


def _budget_view(statuses: list[BudgetStatus], code: int, deliveries: list[dict[str, Any]] | None) -> View:
    rows = [s.to_dict() | {"used_text": format_amount(s.used, s.unit),
                           "limit_text": format_amount(s.limit, s.unit),
                           "remaining_text": format_amount(s.remaining, s.unit),
                           "percent_text": f"{s.percent}%", "level_text": LEVEL_MARK[s.level],
                           "period_text": s.period_key} for s in statuses]

    def table() -> list[str]:
        if not rows:
            return ["No budgets configured and no provider quotas known. "
                    "Add [budgets.<name>] to your config (see config.example.toml)."]
        return [render_table(
            [{"budget": r["name"], "used": r["used_text"], "limit": r["limit_text"],
              "left": r["remaining_text"], "percent": r["percent_text"], "level": r["level_text"],
              "period": r["period_text"]} for r in rows],
            ["budget", "used", "limit", "left", "percent", "level", "period"])]

    def quiet() -> list[str]:
        return ["\t".join([plain_value(s.used), plain_value(s.remaining), str(s.percent)]) for s in statuses]

    data = {"schema_version": SCHEMA_VERSION, "budgets": [s.to_dict() for s in statuses],
            "level": ["ok", "warning", "critical"][code],
            **({"alerts": deliveries} if deliveries is not None else {})}
    return View(data=data, rows=rows, columns=["name", "kind", "used", "limit", "remaining", "percent", "level",
                                              "unit"], table=table, quiet=quiet)


def _report_alerts(deliveries: list[dict[str, Any]], fmt: str) -> None:
    """What --notify did. Failures always go to stderr (cron mails them). The rest goes to stdout in
    table format and to stderr otherwise; JSON carries it in the document, and -q leaves out what was
    sent. The numbers, CSV and JSON on stdout stay parseable."""
    from ..insights import NO_CHANNEL

    to_err = fmt != "table"
    for d in deliveries:
        if "would_send" in d:
            if fmt != "json":  # asked for explicitly: shown even with -q (on stderr)
                click.echo(f"would send: {safe_text(d['alert'])}", err=to_err)
                click.echo(dumps(d["would_send"]) if d["would_send"] else f"  {NO_CHANNEL}", err=to_err)
            continue
        if d.get("skipped"):
            if fmt == "table":
                click.echo(safe_text(f"alert not routed: {d['alert']} ({d['skipped']})"))
            continue
        if d["sent"] and fmt not in ("json", "quiet"):
            click.echo(f"alert sent: {safe_text(d['alert'])}", err=to_err)
        elif not d["sent"]:
            click.echo(f"alert NOT sent: {safe_text(d['alert'])}", err=True)
        for x in d["deliveries"]:
            if not x["ok"]:
                click.echo(safe_text(f"  {x['channel']}: {x['error']}"), err=True)
        if d.get("error"):
            click.echo(f"  {safe_text(d['error'])}", err=True)
