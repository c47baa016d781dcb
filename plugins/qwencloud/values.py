"""Numbers, days and months as the ``qwencloud`` CLI prints them, and settings range checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenmeter import ConfigError

__all__ = ["add_months", "as_decimal", "as_int", "check_range", "last_day", "month_ranges", "num", "zone"]


def check_range(name: str, value: Any, low: float, high: float) -> None:
    # a ValueError here becomes a ConfigError naming the config table
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def zone(name: str) -> tzinfo:
    """The billing time zone by IANA name (empty or UTC: UTC)."""
    if not name or name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"[sources.qwencloud] billing_timezone {name!r} is not an IANA zone") from exc


def last_day(end: datetime, tz: tzinfo) -> date:
    """The last day a window ending at ``end`` covers (an end at midnight excludes that day)."""
    local = end.astimezone(tz)
    if local.time() == datetime.min.time():
        return local.date() - timedelta(days=1)
    return local.date()


def add_months(day: date, n: int) -> date:
    """The first day of the month ``n`` months after ``day``'s."""
    index = day.year * 12 + day.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_ranges(first: date, last: date) -> Iterator[tuple[date, date]]:
    """``(first day, last day)`` per calendar month between ``first`` and ``last``."""
    lo = first
    while lo <= last:
        next_month = add_months(lo.replace(day=1), 1)
        hi = min(last, next_month - timedelta(days=1))
        yield lo, hi
        lo = next_month


def as_decimal(value: Any) -> Decimal | None:
    """A finite ``Decimal`` from a JSON number or decimal string; None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    return None


def as_int(value: Any) -> int | None:
    """A non-negative whole number from a JSON number or string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    dec = as_decimal(value)
    if dec is None or dec < 0 or dec != dec.to_integral_value():
        return None
    return int(dec)


def num(value: Any) -> float | int | None:
    """A JSON-friendly number for details (used_pct…)."""
    dec = as_decimal(value)
    if dec is None:
        return None
    return int(dec) if dec == dec.to_integral_value() else float(dec)
