"""Which ``/activity`` days are final, as the cursor remembers them (see ``source.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

__all__ = ["cursor_state", "last_final_day"]


def last_final_day(base: date | None, fetched: set[date], oldest: date, final_limit: date) -> date | None:
    """The last day known final: contiguous fetched days from the old cursor (or the window start)."""
    day = oldest if base is None or base + timedelta(days=1) < oldest else base + timedelta(days=1)
    last = base
    while day in fetched and day <= final_limit:
        last = day
        day += timedelta(days=1)
    if base is not None and last is not None and last < base:
        return base
    return last


def cursor_state(old: Mapping[str, Any], final_through: date | None) -> dict[str, Any]:
    """The cursor to save: the old one, versioned, with the new ``final_through`` day."""
    state = dict(old)
    state["version"] = 1
    if final_through is not None:
        state["final_through"] = final_through.isoformat()
    return state
