"""OpenRouter's figures: money and counts from its JSON, key limits and their resets, merged rows."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenmeter import UsageRecord, parse_time

__all__ = [
    "add_rows",
    "as_count",
    "as_money",
    "iso_time",
    "key_hash",
    "limit_figures",
    "midnight",
    "next_reset",
    "period_usage",
    "usage_details",
]


def key_hash(key: str) -> str:
    """SHA-256 hex of a key: the form OpenRouter's keys API uses as ``hash``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def as_money(value: Any, what: str) -> Decimal | None:
    """A USD amount from JSON (number or numeric string) as an exact Decimal; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} is not a number: {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"{what} is not a finite number: {value!r}")
    return amount


def as_count(value: Any, what: str) -> int | None:
    """A non-negative whole count from JSON; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} is not a count: {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} is not a count: {value!r}")
    return value


def midnight(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def next_reset(cadence: Any, now: datetime) -> datetime | None:
    """When a key limit with reset cadence ``daily``/``weekly``/``monthly`` resets next (UTC)."""
    today = now.astimezone(UTC).date()
    if cadence == "daily":
        return midnight(today + timedelta(days=1))
    if cadence == "weekly":  # OpenRouter weeks run Monday to Sunday, UTC
        return midnight(today + timedelta(days=7 - today.weekday()))
    if cadence == "monthly":
        first = today.replace(day=1)
        return midnight((first + timedelta(days=32)).replace(day=1))
    return None


def iso_time(value: Any) -> str | None:
    """An ISO-8601 time from the API, normalised to UTC text (None if absent or unreadable)."""
    when = parse_time(value)
    return when.isoformat() if when else None


def period_usage(data: Mapping[str, Any], cadence: Any) -> Decimal | None:
    """Spend counted against a key limit: the usage of the limit's current period."""
    suffix = {"daily": "_daily", "weekly": "_weekly", "monthly": "_monthly"}.get(cadence, "")
    used = as_money(data.get(f"usage{suffix}"), f"usage{suffix}")
    if used is not None and data.get("include_byok_in_limit"):
        byok = as_money(data.get(f"byok_usage{suffix}"), f"byok_usage{suffix}")
        used = used + (byok or 0)
    return used


def limit_figures(data: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(used, remaining, total) of a key's credit limit; total None means no limit."""
    total = as_money(data.get("limit"), "limit")
    remaining = as_money(data.get("limit_remaining"), "limit_remaining")
    if total is not None and remaining is not None:
        used = max(total - remaining, Decimal(0))
    else:
        used = period_usage(data, data.get("limit_reset"))
    return used, remaining, total


def usage_details(data: Mapping[str, Any]) -> dict[str, Any]:
    """The running spend figures of a key (USD as decimal strings) for ``details``."""
    out: dict[str, Any] = {}
    for prefix in ("usage", "byok_usage"):
        for suffix in ("", "_daily", "_weekly", "_monthly"):
            name = prefix + suffix
            try:
                value = as_money(data.get(name), name)
            except ValueError:
                continue
            if value is not None:
                out[name] = str(value)
    for name in ("limit_reset", "include_byok_in_limit", "disabled", "workspace_id", "is_free_tier"):
        if data.get(name) is not None:
            out[name] = data[name]
    expires = iso_time(data.get("expires_at"))
    if expires:
        out["expires_at"] = expires
    return out


def add_rows(a: UsageRecord, b: UsageRecord) -> UsageRecord:
    """Merge two /activity rows that share a key (summing counts and money)."""

    def plus(x: Any, y: Any) -> Any:
        return None if x is None or y is None else x + y  # unknown in either part: unknown in the sum

    details = dict(a.details)
    if "byok_usage_inference" in b.details:
        details["byok_usage_inference"] = str(
            Decimal(details.get("byok_usage_inference", "0")) + Decimal(b.details["byok_usage_inference"])
        )
    cost = plus(a.cost, b.cost)
    return a.replace(
        requests=plus(a.requests, b.requests),
        input_tokens=plus(a.input_tokens, b.input_tokens),
        output_tokens=plus(a.output_tokens, b.output_tokens),
        reasoning_tokens=plus(a.reasoning_tokens, b.reasoning_tokens),
        cost=cost,
        currency="USD" if cost is not None else None,
        cost_kind="billed" if cost is not None else None,
        details=details,
    )
