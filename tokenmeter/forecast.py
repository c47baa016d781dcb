"""Month-end projections and days-until-exhausted, from a daily series. Pure and deterministic.

The daily rate is the mean over the last ``window`` complete days before ``today`` (default 7),
or over fewer days when the history is shorter; days missing from the series count as zero use.
The projection is what was used in the month up to yesterday plus the rate for every day left
(today included), and never less than what the month has already used (today's partial day
included). ``Forecast.window_label`` says which window was used, for the output.

Money stays ``Decimal``; rates are rounded to nano-units (10^-9, the database's precision).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["DailyPoint", "Forecast", "days_until_exhausted", "exhaustion_date", "exhaustion_info", "forecast"]

NANO = Decimal("0.000000001")
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class DailyPoint:
    """One day's totals (cost in one currency; None = not priced, counted as zero)."""

    date: date
    cost: Decimal = Decimal(0)
    tokens: int = 0
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Forecast:
    """A month-end projection. ``*_per_day`` are None when no complete day is known yet."""

    today: date
    currency: str | None
    window_from: date | None
    window_to: date | None
    window_days: int
    cost_per_day: Decimal | None
    tokens_per_day: Decimal | None
    requests_per_day: Decimal | None
    month_from: date
    month_to: date
    days_left: int  # today included
    month_to_date_cost: Decimal
    month_to_date_tokens: int
    projected_cost: Decimal | None
    projected_tokens: int | None

    @property
    def window_label(self) -> str:
        """``last 7 complete days (2026-03-08..2026-03-14)``: which days the rate comes from."""
        if not self.window_days or self.window_from is None or self.window_to is None:
            return "no complete day of usage yet"
        if self.window_days == 1:
            return f"last complete day ({self.window_to.isoformat()})"
        span = f"{self.window_from.isoformat()}..{self.window_to.isoformat()}"
        return f"last {self.window_days} complete days ({span})"

    def rate_for(self, measure: str) -> Decimal | None:
        """The daily rate for a budget's measure: ``cost``, ``tokens`` or ``requests``."""
        return {"cost": self.cost_per_day, "tokens": self.tokens_per_day,
                "requests": self.requests_per_day}[measure]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (Decimals as strings, dates ISO)."""

        def s(v: Any) -> Any:
            return _plain(v) if isinstance(v, Decimal) else v

        return {
            "today": self.today.isoformat(),
            "currency": self.currency,
            "window": {
                "from": self.window_from.isoformat() if self.window_from else None,
                "to": self.window_to.isoformat() if self.window_to else None,
                "days": self.window_days,
                "label": self.window_label,
            },
            "cost_per_day": s(self.cost_per_day),
            "tokens_per_day": s(self.tokens_per_day),
            "requests_per_day": s(self.requests_per_day),
            "month": {"from": self.month_from.isoformat(), "to": self.month_to.isoformat()},
            "days_left": self.days_left,
            "month_to_date_cost": s(self.month_to_date_cost),
            "month_to_date_tokens": self.month_to_date_tokens,
            "projected_cost": s(self.projected_cost),
            "projected_tokens": self.projected_tokens,
        }


def _plain(value: Decimal) -> str:
    """A decimal string without exponent notation (``str`` turns 0.0000001 into ``1.00E-7``)."""
    return format(value, "f")


def _point(item: Any) -> DailyPoint:
    if isinstance(item, DailyPoint):
        return item
    if isinstance(item, Mapping):
        day, cost, tokens, requests = (item.get(k) for k in ("date", "cost", "tokens", "requests"))
    else:
        day, cost, tokens, *rest = item
        requests = rest[0] if rest else None
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return DailyPoint(
        date=day,
        cost=Decimal(str(cost)) if cost is not None else Decimal(0),
        tokens=int(tokens or 0),
        requests=int(requests or 0),
    )


def forecast(
    series: Iterable[Any],
    today: date,
    *,
    window: int = 7,
    currency: str | None = None,
) -> Forecast:
    """Project the month of ``today`` from a daily series.

    ``series`` items: ``(date, cost, tokens)`` or ``(date, cost, tokens, requests)`` tuples,
    mappings with those keys, or ``DailyPoint``; several entries for one day are added up.
    """
    days: dict[date, DailyPoint] = {}
    for item in series:
        p = _point(item)
        if p.date in days:
            q = days[p.date]
            p = DailyPoint(p.date, q.cost + p.cost, q.tokens + p.tokens, q.requests + p.requests)
        days[p.date] = p

    window_to = today - timedelta(days=1)
    first = min(days) if days else today
    window_from = max(today - timedelta(days=window), first)
    n = (window_to - window_from).days + 1 if window_from <= window_to else 0
    in_window = [p for d, p in days.items() if window_from <= d <= window_to] if n else []
    if n:
        cost_rate = (sum((p.cost for p in in_window), Decimal(0)) / n).quantize(NANO, ROUND_HALF_UP)
        token_rate = (Decimal(sum(p.tokens for p in in_window)) / n).quantize(HUNDREDTH, ROUND_HALF_UP)
        request_rate = (Decimal(sum(p.requests for p in in_window)) / n).quantize(HUNDREDTH, ROUND_HALF_UP)
    else:
        cost_rate = token_rate = request_rate = None

    month_from = today.replace(day=1)
    month_to = (month_from + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    days_left = (month_to - today).days + 1
    month = [p for d, p in days.items() if month_from <= d <= today]
    mtd_cost = sum((p.cost for p in month), Decimal(0))
    mtd_tokens = sum(p.tokens for p in month)
    before_cost = sum((p.cost for p in month if p.date < today), Decimal(0))
    before_tokens = sum(p.tokens for p in month if p.date < today)

    projected_cost = projected_tokens = None
    if cost_rate is not None and token_rate is not None:
        projected_cost = max(before_cost + cost_rate * days_left, mtd_cost).quantize(NANO, ROUND_HALF_UP)
        projected_tokens = max(
            int((before_tokens + token_rate * days_left).quantize(Decimal(1), ROUND_HALF_UP)), mtd_tokens
        )
    return Forecast(
        today=today,
        currency=currency,
        window_from=window_from if n else None,
        window_to=window_to if n else None,
        window_days=n,
        cost_per_day=cost_rate,
        tokens_per_day=token_rate,
        requests_per_day=request_rate,
        month_from=month_from,
        month_to=month_to,
        days_left=days_left,
        month_to_date_cost=mtd_cost,
        month_to_date_tokens=mtd_tokens,
        projected_cost=projected_cost,
        projected_tokens=projected_tokens,
    )


def days_until_exhausted(
    remaining: Decimal | int | float, daily_rate: Decimal | int | float | None
) -> float | None:
    """Days until ``remaining`` is used up at ``daily_rate``: 0.0 when already exhausted, None when
    the rate is unknown or zero (never, at the current rate)."""
    remaining = Decimal(str(remaining))
    if remaining <= 0:
        return 0.0
    if daily_rate is None or Decimal(str(daily_rate)) <= 0:
        return None
    return float(remaining / Decimal(str(daily_rate)))


def exhaustion_date(today: date, days: float | None) -> date | None:
    """The calendar day on which a budget with ``days`` left runs out (today counts as day 0);
    None when unknown or past the calendar's end (a 70M credit at a few tokens a day)."""
    if days is None or days >= (date.max - today).days + 1:
        return None
    return today + timedelta(days=int(days))


def exhaustion_info(
    remaining: Decimal | int | float | str,
    daily_rate: Decimal | int | float | None,
    today: date,
    period_end: date | None = None,
) -> dict[str, Any]:
    """``{"per_day", "days_left", "exhausted_on", "before_period_end"}`` for one budget status.

    Merge it into ``BudgetStatus.to_dict()`` for the dashboard and ``tokenmeter forecast --json``.
    ``period_end`` (a periodic budget's last day) makes ``before_period_end`` say whether the
    budget runs out before it resets; it is None without one.
    """
    days = days_until_exhausted(Decimal(str(remaining)), daily_rate)
    when = exhaustion_date(today, days)
    before = None
    if period_end is not None:
        before = when is not None and when <= period_end
    return {
        "per_day": None if daily_rate is None else _plain(Decimal(str(daily_rate))),
        "days_left": None if days is None else round(days, 2),
        "exhausted_on": when.isoformat() if when else None,
        "period_end": period_end.isoformat() if period_end else None,
        "before_period_end": before,
    }
