"""`tokenmeter report` (also the bare `tokenmeter [OPTIONS]` form)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..output import COST_KIND_NOTE, dumps, plain_value, safe_text
from ..periods import resolve_period
from ..reports import Filters, parse_group_by, usage_report
from .common import common_options, emit, format_options, get_env

PRESET_FLAGS = ("today", "yesterday", "week", "month", "last-month", "quarter", "year", "all")
ROW_METRICS = [
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
    "total_tokens", "cost", "cost_kind", "unpriced_requests",
]
CSV_METRICS = [
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens", "cost", "currency", "cost_kind", "unpriced_requests",
]


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
        click.option("--from", "--since", "date_from", metavar="DATE", help="First day, YYYY-MM-DD (inclusive)."),
        click.option("--to", "--until", "date_to", metavar="DATE", help="Last day, YYYY-MM-DD (inclusive)."),
        click.option("--days", type=int, metavar="N", help="The last N days, today included."),
        click.option("--provider", metavar="P", help="Only providers containing P (case-insensitive)."),
        click.option("--source", metavar="S", help="Only sources containing S."),
        click.option("--model", metavar="M", help="Only models containing M."),
        click.option("--project", metavar="DIR", help="Only projects containing DIR."),
        click.option("--agent", metavar="NAME",
                     help="Only agents containing NAME (e.g. main, general-purpose, Explore)."),
        click.option("--by", "group_by", metavar="DIMS",
                     help="Group by any of day,week,month,quarter,model,provider,source,account,project,agent "
                          "(default: model for one day, else day; 'none' for the total only)."),
        click.option("--tz", metavar="ZONE", help="IANA time zone for days (default: config, else system)."),
        click.option("--cost", "cost_mode", type=click.Choice(["auto", "billed", "estimated"]),
                     default="auto", show_default=True,
                     help="auto: the source's own cost, else the estimate; or force one kind."),
        click.option("-q", "--quiet", is_flag=True, help="Numbers only: total tokens, cost, requests."),
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


def default_group_by(period: Any) -> list[str]:
    """Without --by: one day is broken down by model, a longer period by day."""
    return ["model"] if period.start is not None and period.start == period.end else ["day"]


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
    group_by: str | None,
    tz: str | None,
    cost_mode: str,
    quiet: bool,
    offline: bool,
    refresh: bool,
) -> None:
    env = get_env()
    zone = env.timezone(tz)
    period = resolve_period(env.now(), zone, preset=period_name or preset, date_from=date_from,
                            date_to=date_to, days=days)
    by = parse_group_by(group_by) if group_by is not None else default_group_by(period)
    with env.open_store() as store:
        if not offline:
            from .refresh import refresh_before_report

            refresh_before_report(env, store, everything=refresh)
        store.refresh_rollup()
        report = usage_report(
            store, period, by=by, filters=Filters(provider, source, model, project, agent), cost=cost_mode
        )
    if quiet:
        # nothing recorded is a known zero; a figure no source reported is unknown: '?', never 0
        totals = report.total or [{"total_tokens": 0, "cost": None, "requests": 0}]
        for row in totals:
            numbers = ["?" if row[k] is None else str(plain_value(row[k]))
                       for k in ("total_tokens", "cost", "requests")]
            click.echo("\t".join(numbers + ([row["currency"]] if len(totals) > 1 else [])))
        return
    if fmt == "json":
        click.echo(dumps(report.as_dict()))
        return
    if fmt in ("csv", "tsv"):
        emit(None, report.rows, [*by, *CSV_METRICS], fmt)
        return
    period_text = (
        f"{report.period['from'] or 'start'} to {report.period['to'] or 'now'} ({report.period['tz']})"
    )
    click.echo(f"Usage {period_text}")
    # a dimension nobody reported (a record without model, project or agent) shows as "-"
    rows = [{**r, **{d: "-" for d in by if r.get(d) is None}} for r in report.rows]
    totals = [dict(t, **{by[0]: "Total"}) if by else dict(t) for t in report.total]
    if not by:
        rows = totals
        totals = []
    if not rows:
        click.echo("No usage recorded for this period.")
        return
    columns = [*by, *ROW_METRICS]
    from ..output import render_table

    text = render_table(rows + totals, columns)
    if totals:
        lines = text.splitlines()
        sep = lines[1]
        lines.insert(len(lines) - len(totals), sep)
        text = "\n".join(lines)
    click.echo(text)
    for note in report.notes:
        click.echo(f"note: {safe_text(note)}")  # names sources and providers
    if sys.stdout.isatty():
        click.echo(COST_KIND_NOTE)


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
