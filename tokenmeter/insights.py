"""Budgets, forecasts and dashboard data computed from the store (the CLI and API call these).

The pure parts live in ``budgets``, ``forecast``, ``alerts`` and ``dashboard``; this module sums
the usage they need through the same report query the tables use, so budgets, forecasts and the
dashboard see exactly the numbers the reports show (ledger-vs-log overlap excluded once). Like the
reports they read the rollup as it is: the caller refreshes it first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from .alerts import Alert, Channel, deliver, parse_alerts, pending_alerts
from .budgets import Budget, BudgetStatus, budget_window, evaluate, parse_budgets, quota_statuses
from .config import Config
from .forecast import Forecast, exhaustion_info, forecast
from .periods import Period
from .reports import Filters, usage_report
from .store import UsageStore

__all__ = ["budget_statuses", "dashboard_data", "forecast_data", "notify"]

FORECAST_WINDOW = 7
NO_CHANNEL = "no [[alerts]] channel takes this alert (add one to the config, see config.example.toml)"


def _used(store: UsageStore, budget: Budget, window: tuple[date, date], tz: tzinfo) -> Decimal:
    f = budget.filters
    report = usage_report(
        store, Period(window[0], window[1], tz),
        filters=Filters(provider=f.get("provider"), source=f.get("source"), model=f.get("model")),
    )
    if budget.measure == "cost":
        return sum((r["cost"] for r in report.total if r["currency"] == budget.currency and r["cost"]),
                   Decimal(0))
    key = "total_tokens" if budget.measure == "tokens" else "requests"
    return Decimal(sum(r[key] or 0 for r in report.total))


def budget_statuses(store: UsageStore, config: Config, now: datetime, tz: tzinfo) -> list[BudgetStatus]:
    """Every configured budget's status, then every provider quota snapshot's."""
    statuses = []
    for budget in parse_budgets(config.budgets):
        window = budget_window(budget, now, tz)
        statuses.append(evaluate(budget, _used(store, budget, window, tz), window=window))
    # a snapshot whose window has reset since it was taken no longer says anything (exit 2 forever)
    statuses.extend(quota_statuses(store.snapshots(latest=True), now=now))
    return statuses


def _series(store: UsageStore, today: date, tz: tzinfo, filters: Filters, currency: str | None,
            days: int) -> tuple[list[tuple[date, Decimal, int, int]], str | None]:
    start = min(today.replace(day=1), today - timedelta(days=days))
    report = usage_report(store, Period(start, today, tz), by=["day"], filters=filters)
    if currency is None:
        totals = [t for t in report.total if t["currency"]]
        currency = max(totals, key=lambda t: t["cost"])["currency"] if totals else None
    series = []
    for r in report.rows:
        cost = r["cost"] if r["currency"] == currency and r["cost"] is not None else Decimal(0)
        series.append((date.fromisoformat(r["day"]), cost, r["total_tokens"] or 0, r["requests"] or 0))
    return series, currency


def _quota_filters(status: BudgetStatus) -> Filters:
    name = status.name.split(":")[-1]
    model = name.split("/", 1)[1] if name.startswith("free-tier/") else None
    return Filters(provider=status.provider, model=model)


def forecast_data(store: UsageStore, config: Config, now: datetime, tz: tzinfo,
                  statuses: Sequence[BudgetStatus] | None = None,
                  window: int = FORECAST_WINDOW) -> dict[str, Any]:
    """Month-end projection plus days until each budget and quota runs out."""
    today = now.astimezone(tz).date()
    series, currency = _series(store, today, tz, Filters(), None, window)
    overall: Forecast = forecast(series, today, window=window, currency=currency)
    if statuses is None:
        statuses = budget_statuses(store, config, now, tz)
    budgets = {b.name: b for b in parse_budgets(config.budgets)}
    out = []
    for status in statuses:
        if status.kind == "budget":
            b = budgets[status.name]
            f = b.filters
            filters = Filters(provider=f.get("provider"), source=f.get("source"), model=f.get("model"))
            measure = b.measure
            cur = b.currency
            # a one-time credit without `to` has no end (its window runs "until today"), so it
            # cannot reset or lapse before it runs out; periods and fixed `to` dates can
            end = status.period_to if b.period is not None or b.end is not None else None
        else:
            filters = _quota_filters(status)
            measure = "cost" if status.is_money else "requests" if status.unit == "requests" else "tokens"
            cur = status.unit if status.is_money else None
            end = status.resets_at.astimezone(tz).date() if status.resets_at else None
        s, _ = _series(store, today, tz, filters, cur or currency, window)
        rate = forecast(s, today, window=window, currency=cur).rate_for(measure)
        out.append(status.to_dict() | exhaustion_info(status.remaining, rate, today, end))
    return {"forecast": overall.to_dict(), "budgets": out}


def notify(store: UsageStore, statuses: Iterable[BudgetStatus], channels: Sequence[Channel], *,
           dry_run: bool = False, client: Any = None, deadline: float | None = None) -> list[dict[str, Any]]:
    """Send alerts due now (once per level per budget period); returns what happened per alert.

    A key is stored only when at least one channel delivered, so a failed run retries next time.
    ``deadline`` caps each delivery attempt (default: the request deadline).
    """
    due: list[Alert] = pending_alerts(statuses, store.alerts_sent())
    results = []
    for alert in due:
        targets = [c for c in channels if c.wants(alert)]
        if dry_run:
            from .alerts import dry_run as render

            results.append({"alert": alert.message, "would_send": render([alert], targets)})
            continue
        deliveries = [deliver(alert, c, client, deadline=deadline) for c in targets]
        ok = any(d.ok for d in deliveries)
        if ok:
            store.mark_alert_sent(*alert.key)
        result = {"alert": alert.message, "sent": ok,
                  "deliveries": [{"channel": d.channel, "ok": d.ok, "attempts": d.attempts,
                                  "error": d.error} for d in deliveries]}
        if not targets and not channels:  # --notify without any channel: say why nothing went out
            result["error"] = NO_CHANNEL
        elif not targets:  # the channels' levels/budgets filters leave it out on purpose: no failure
            result["skipped"] = f"no [[alerts]] channel takes {alert.level} alerts for '{alert.budget}'"
        results.append(result)
    return results


def load_channels(config: Config) -> list[Channel]:
    return parse_alerts(config.alerts)


def dashboard_data(store: UsageStore, config: Config, period: Period, now: datetime,
                   title: str = "tokenmeter usage") -> dict[str, Any]:
    """Everything ``render_dashboard`` shows, from the same queries as the reports."""
    tz = period.tz
    total = usage_report(store, period)
    daily = usage_report(store, period, by=["day", "model"])
    by_model = usage_report(store, period, by=["model", "provider"])
    by_provider = usage_report(store, period, by=["provider"])
    by_agent = usage_report(store, period, by=["agent"])
    by_machine = usage_report(store, period, by=["machine"])
    detail = usage_report(store, period, by=["day", "provider", "model", "agent"])
    statuses = budget_statuses(store, config, now, tz)
    fc = forecast_data(store, config, now, tz, statuses)
    summary = total.total
    # chart the period's own money: the forecast's currency (this month's) when the period has it,
    # else the period's largest (a last-month dashboard must not chart a currency it never used)
    priced = [t for t in summary if t["currency"] and t["cost"] is not None]
    currency = fc["forecast"]["currency"]
    if priced and currency not in {t["currency"] for t in priced}:
        currency = max(priced, key=lambda t: t["cost"])["currency"]
    return {
        "title": title,
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds"),
        "period": {**total.as_dict()["period"], "label": period.name},
        "currency": currency,
        "summary": summary if len(summary) != 1 else summary[0],
        "daily": daily.rows,
        "by_model": by_model.rows,
        "by_provider": by_provider.rows,
        "by_agent": by_agent.rows,
        "by_machine": by_machine.rows,
        "budgets": fc["budgets"],
        "forecast": fc["forecast"],
        "rows": detail.rows,
        "notes": total.notes,
    }
