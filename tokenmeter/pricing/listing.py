"""Listing helpers of the price engine (``tokenmeter prices``): entries as flat rows."""

from __future__ import annotations

from datetime import date
from typing import Any

from .entries import PriceEntry

__all__ = ["in_force_overrides", "price_row"]


def price_row(e: PriceEntry) -> dict[str, Any]:
    """One entry as a flat row of ``tokenmeter prices``."""
    return {
        "model": e.model,
        "region": e.scope,
        "currency": e.currency,
        "valid_from": e.effective,
        "valid_until": e.valid_until,
        "input": e.input,
        "output": e.output,
        "cache_read": e.cache_read,
        "cache_write": e.cache_write,
        "thinking_output": e.reasoning,
        "tiers": e.tiers_text(),
        "aliases": ", ".join(e.aliases),
        "source": e.source,
        "origin": e.origin,
        "plugin": e.plugin,
        "note": e.note or "",
    }


def in_force_overrides(group: list[PriceEntry], day: date) -> list[PriceEntry]:
    """The overrides of one model in force on ``day``: the latest per (provider, region)."""
    latest: dict[tuple[str | None, str | None], PriceEntry] = {}
    for e in group:
        if e.effective is not None and e.effective > day:
            continue
        key = (e.provider, e.region)
        cur = latest.get(key)
        if cur is None or (e.effective or date.min) > (cur.effective or date.min):
            latest[key] = e
    return list(latest.values())
