"""Figures from a ShowStatistics answer (counts, tokens in thousands) and the times sent to it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from tokenmeter import ProviderResponseError

from .settings import SOURCE_ID

__all__ = ["as_count", "epoch_ms", "local_time", "thousands"]


def as_count(data: Mapping[str, Any], name: str) -> int | None:
    """A whole, non-negative count from the answer; ``ProviderResponseError`` for anything else."""
    value = data.get(name)
    if value is None:
        return None
    try:
        number = Decimal(value) if not isinstance(value, bool) else Decimal("NaN")
    except (InvalidOperation, TypeError, ValueError):
        number = Decimal("NaN")
    if not number.is_finite() or number < 0 or number != number.to_integral_value():
        raise ProviderResponseError(
            f"huawei-maas: unexpected {name} = {value!r} in the ShowStatistics answer", source=SOURCE_ID
        )
    return int(number)


def thousands(data: Mapping[str, Any], name: str) -> int | None:
    """Tokens are reported in thousands as doubles: ×1000, rounded half up."""
    value = data.get(name)
    if value is None:
        return None
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite() or number < 0:
        raise ProviderResponseError(
            f"huawei-maas: unexpected {name} = {value!r} in the ShowStatistics answer", source=SOURCE_ID
        )
    return int((number * 1000).to_integral_value(rounding=ROUND_HALF_UP))


def local_time(value: datetime, tz: tzinfo) -> datetime:
    """``value`` in ``tz`` (a naive time is taken as already local)."""
    return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, as the API's time fields take them."""
    return round(value.timestamp() * 1000)
