"""`tokenmeter report` (also the bare `tokenmeter [OPTIONS]` form)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from .. import service
from ..render import report_view
from ..reports import Filters
from .common import common_options, format_options, get_env, say, show

PRESET_FLAGS = ("today", "yesterday", "week", "month", "last-month", "quarter", "year", "all")


def report_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The period, filter, grouping and output options of a usage report."""
    opts = [
        click.option("--today", "p_today", is_flag=True, help="Today (the default)."),
        click.option("--yesterday", "p_yesterday", is_flag=True, help="Yesterday."),
        click.option("--week", "p_week", is_flag=True, help="This ISO week, Monday to Sunday."),
        click.option("--month", "p_month", is_flag=True, help="This calendar month."),
        click.option("--last-month", "p_last_month", is_flag=True, help="The previous calendar month."),
        click.option("--quarter", "p_quarter", is_flag=True, help="This calendar quarter."),
        click.option("--year", "p_year", is_flag=True, help="This calendar year."),
        click.option("--all", "p_all", is_flag=True, help="Everything in the database."),
        click.option("--period", "period_name", metavar="NAME",
                     help="today, yesterday, week, month, last-month, quarter, year, all or YYYY-MM."),
        click.option("--from", "-s", "--since", "date_from", metavar="DATE",
                     help="First day, YYYY-MM-DD or YYYYMMDD (inclusive)."),
        click.option("--to", "-u", "--until", "date_to", metavar="DATE",
                     help="Last day, YYYY-MM-DD or YYYYMMDD (inclusive)."),
        click.option("--days", type=int, metavar="N", help="The last N days, today included."),
        click.option("--provider", metavar="P", help="Only providers containing P (case-insensitive)."),
        click.option("--source", metavar="S", help="Only sources containing S."),
        click.option("--model", metavar="M", help="Only models containing M."),
        click.option("--project", metavar="DIR", help="Only projects containing DIR."),
        click.option("--agent", metavar="NAME",
                     help="Only agents containing NAME (e.g. main, general-purpose, Explore)."),
        click.option("--machine", metavar="NAME",
                     help="Only machines whose name contains NAME (a team hub's [tokenmeter] machine_name)."),
        click.option("--by", "group_by", metavar="DIMS",
                     help="Group by any of day,week,month,quarter,model,provider,source,account,project,agent,"
                          "machine,session (default: model for one day, else day; 'none' for the total only)."),
        click.option("-b", "--breakdown", is_flag=True, help="Split each group per model (adds model to --by)."),
        click.option("--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True,
                     help="Row order of the first grouping (desc: newest day first)."),
        click.option("-z", "--tz", metavar="ZONE", help="IANA time zone for days (default: config, else system)."),
        click.option("--cost", "cost_mode", type=click.Choice(["auto", "billed", "estimated"]),
                     default="auto", show_default=True,
                     help="auto: the source's own cost, else the estimate; or force one kind."),
        click.option("-q", "--quiet", is_flag=True, help="Numbers only: total tokens, cost, requests."),
        click.option("--wide", is_flag=True,
                     help="Every column, however wide (the table otherwise fits the terminal)."),
        click.option("--offline", is_flag=True, help="Read the database only; refresh nothing."),
        click.option("--refresh", is_flag=True, help="Fetch from every source (ledgers too) first."),
    ]
    @functools.wraps(f)
    def one_period(*args: Any, **kwargs: Any) -> Any:
        # one way of naming the period: `--today --month` or `--days 7 --from X` is a usage error,
        # not a silent pick
        chosen = [name for name in PRESET_FLAGS if kwargs.pop("p_" + name.replace("-", "_"))]
        if kwargs.get("period_name"):
            chosen.append("period " + kwargs["period_name"])
        if kwargs.get("days") is not None:
            chosen.append("days")
        if kwargs.get("date_from") or kwargs.get("date_to"):
            chosen.append("from/to")
        if len(chosen) > 1:
            given = ", ".join("--" + c.split()[0] for c in chosen)
            raise click.UsageError(f"choose one period: {given} conflict")
        kwargs["preset"] = next((c for c in chosen if c in PRESET_FLAGS), None)
        return f(*args, **kwargs)

    g: Callable[..., Any] = one_period
    for opt in reversed(opts):
        g = opt(g)
    return format_options(g)


def run_report(
    *,
    fmt: str,
    preset: str | None,
    period_name: str | None,
    date_from: str | None,
    date_to: str | None,
    days: int | None,
    provider: str | None,
    source: str | None,
    model: str | None,
    project: str | None,
    agent: str | None,
    machine: str | None,
    group_by: str | None,
    breakdown: bool,
    order: str,
    tz: str | None,
    cost_mode: str,
    quiet: bool,
    offline: bool,
    refresh: bool,
    wide: bool = False,
) -> None:
    env = get_env()
    query = service.report_query(
        env.config, env.now(), preset=period_name or preset, date_from=date_from, date_to=date_to, days=days,
        by=group_by, filters=Filters(provider, source, model, project, agent, machine), tz=tz, cost=cost_mode,
        breakdown=breakdown, order=order,
    )
    with env.open_store() as store:
        report = service.report(store, env.config, query, say=say,
                                refresh="none" if offline else "all" if refresh else "logs")
    show(report_view(report, tty=sys.stdout.isatty(), wide=wide), "quiet" if quiet else fmt)


@click.command(name="report")
@report_options
@common_options
def report_cmd(**kwargs: Any) -> None:
    """Usage and cost for a period, grouped and filtered.

    \b
    Examples:
      tokenmeter report --month --by day,model
      tokenmeter report --provider acme --today --json
      tokenmeter report --from 2026-03-01 --to 2026-03-31 --csv > march.csv
    """
    run_report(**kwargs)


# ccusage's commands: `report` with the grouping fixed. Like ccusage they cover all the data unless a
# period is given, and `--by` adds dimensions after their own (`daily --by provider` = day,provider).
ALIASES = {
    "daily": ("day", "Usage and cost per day (ccusage's `daily`): `report --by day`."),
    "weekly": ("week", "Usage and cost per ISO week, labelled by its Monday: `report --by week`."),
    "monthly": ("month", "Usage and cost per calendar month: `report --by month`."),
    "session": ("session", "Usage and cost per coding-agent session (the client's session id): `report --by session`."),
}


def _alias_cmd(name: str, dim: str, summary: str) -> click.Command:
    def command(**kwargs: Any) -> None:
        if not (kwargs["preset"] or kwargs["period_name"] or kwargs["days"] is not None
                or kwargs["date_from"] or kwargs["date_to"]):
            kwargs["preset"] = "all"
        extra = kwargs["group_by"]
        kwargs["group_by"] = dim + ("," + extra if extra else "")
        run_report(**kwargs)

    command.__doc__ = f"""{summary}

    All the data unless a period is given; every `report` option works, and --by adds dimensions.

    \b
    Examples:
      tokenmeter {name} --since 20261001 --until 20261031 --json
      tokenmeter {name} -b --order desc       # per model inside each {dim}, last first
    """
    return click.command(name=name)(report_options(common_options(command)))


alias_cmds = [_alias_cmd(name, dim, summary) for name, (dim, summary) in ALIASES.items()]
