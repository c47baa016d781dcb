"""`tokenmeter budget`, `forecast`, `dashboard`, `reconcile`."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Any

import click

from ..budgets import exit_code, format_amount
from ..output import dumps, plain_value, safe_text
from ..periods import resolve_period
from ..reports import Filters, reconcile_report
from .common import common_options, emit, format_options, get_env

LEVEL_MARK = {"ok": "ok", "warning": "WARNING", "critical": "CRITICAL"}
LOGGED_NOTE = (
    "logged = the figure the client wrote in its own log (it may use one flat rate for every model, "
    "not the provider's price); estimated = tokenmeter's price table for the same calls"
)


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
    from ..config import request_deadline
    from ..insights import budget_statuses, load_channels, notify

    env = get_env()
    zone = env.timezone(tz)
    with env.open_store() as store:
        store.refresh_rollup()
        statuses = budget_statuses(store, env.config, env.now(), zone)
        deliveries = []
        if do_notify and not dry_run and store.read_only:
            # what was sent could not be recorded, so every run would send it again
            from ..errors import StoreError

            raise StoreError(f"database {store.path} is read-only (the file or its folder is not writable): "
                             "--notify cannot record sent alerts; use --dry-run, or run it as the database's "
                             "owner", reason="read-only")
        if do_notify or dry_run:
            deliveries = notify(store, statuses, load_channels(env.config), dry_run=dry_run,
                                deadline=request_deadline(env.config))
    code = exit_code(statuses)
    if quiet:
        for s in statuses:
            click.echo("\t".join([plain_value(s.used), plain_value(s.remaining), str(s.percent)]))
    elif fmt == "json":
        click.echo(dumps({"budgets": [s.to_dict() for s in statuses], "level": ["ok", "warning", "critical"][code],
                          **({"alerts": deliveries} if (do_notify or dry_run) else {})}))
    else:
        rows = [s.to_dict() | {"used_text": format_amount(s.used, s.unit),
                               "limit_text": format_amount(s.limit, s.unit),
                               "remaining_text": format_amount(s.remaining, s.unit),
                               "percent_text": f"{s.percent}%", "level_text": LEVEL_MARK[s.level],
                               "period_text": s.period_key} for s in statuses]
        if fmt == "table":
            if not rows:
                click.echo("No budgets configured and no provider quotas known. "
                           "Add [budgets.<name>] to your config (see config.example.toml).")
            else:
                from ..output import render_table

                click.echo(render_table(
                    [{"budget": r["name"], "used": r["used_text"], "limit": r["limit_text"],
                      "left": r["remaining_text"], "percent": r["percent_text"], "level": r["level_text"],
                      "period": r["period_text"]} for r in rows],
                    ["budget", "used", "limit", "left", "percent", "level", "period"]))
        else:
            emit(rows, rows, ["name", "kind", "used", "limit", "remaining", "percent", "level", "unit"], fmt)
    _report_alerts(deliveries, fmt="quiet" if quiet else fmt)
    click.get_current_context().exit(code)


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


@click.command(name="forecast")
@click.option("--tz", metavar="ZONE", help="IANA time zone for days.")
@format_options
@common_options
def forecast_cmd(tz: str | None, fmt: str) -> None:
    """Month-end projection from the recent daily rate, and days until each budget, credit or
    quota runs out."""
    from ..insights import forecast_data

    env = get_env()
    zone = env.timezone(tz)
    with env.open_store() as store:
        store.refresh_rollup()
        data = forecast_data(store, env.config, env.now(), zone)
    if fmt == "json":
        click.echo(dumps(data))
        return
    f = data["forecast"]
    rows = [{"budget": b["name"], "left": format_amount(b["remaining"], b["unit"]),
             "per_day": format_amount(b["per_day"], b["unit"]) if b["per_day"] else "–",
             "days_left": "never at this rate" if b["days_left"] is None else f"{b['days_left']:.1f}",
             "runs_out": b["exhausted_on"] or "–"} for b in data["budgets"]]
    if fmt in ("csv", "tsv"):
        # plain numbers and a unit column, like every CSV (not the table's "500,000 tokens")
        cols = ["name", "kind", "unit", "remaining", "per_day", "days_left", "exhausted_on", "period_end"]
        emit(data, data["budgets"], cols, fmt)
        return
    cur = f["currency"] or ""
    click.echo(f"Daily rate: {f['window']['label']}.")
    if f["cost_per_day"] is not None:
        if cur:
            click.echo(f"Spend: {format_amount(f['month_to_date_cost'], cur)} so far this month, "
                       f"{format_amount(f['cost_per_day'], cur)}/day → "
                       f"{format_amount(f['projected_cost'], cur)} by {f['month']['to']}.")
        else:  # zeros here would read as "free": there is just no price for what was used
            click.echo("Spend: no priced usage (no cost from the sources, no price for the models).")
        click.echo(f"Tokens: {f['month_to_date_tokens']:,} so far, {float(f['tokens_per_day']):,.0f}/day → "
                   f"{f['projected_tokens']:,} by {f['month']['to']}.")
    else:
        click.echo("No complete day of usage yet: nothing to project from.")
    if rows:
        from ..output import render_table

        click.echo(render_table(rows, ["budget", "left", "per_day", "days_left", "runs_out"]))


def run_dashboard(*, period_name: str | None, output: str | None, open_browser: bool, quiet: bool,
                  tz: str | None = None) -> Path:
    from ..insights import dashboard_data

    env = get_env()
    zone = env.timezone(tz)
    now = env.now()
    period = resolve_period(now, zone, preset=period_name or "month")
    with env.open_store() as store:
        store.refresh_rollup()
        data = dashboard_data(store, env.config, period, now)
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
    period = resolve_period(env.now(), env.timezone(tz), preset=period_name, date_from=date_from,
                            date_to=date_to)
    with env.open_store() as store:
        store.refresh_rollup()
        rows = reconcile_report(store, period, filters=Filters(provider=provider, model=model))
    for row in rows:
        # a log's own cost beside the price table's estimate of the same calls (same currency only)
        lg, e = row["logged"], row["estimated"]
        row["logged_minus_estimated"] = lg - e if lg is not None and e is not None else None
    cols = ["day", "model", "currency", "billed", "logged", "estimated", "billed_minus_logged",
            "billed_minus_estimated", "logged_minus_estimated", "estimate_error_pct", "unpriced_log_requests"]
    if fmt == "table" and not rows:
        click.echo("Nothing to reconcile: no priced usage in this period.")
        return
    has_logged = any(r["logged"] is not None for r in rows)
    emit({"rows": rows}, rows, cols, fmt, footer=[LOGGED_NOTE] if has_logged else [])
