"""The rates of one price entry resolved per tier (fallbacks filled in, scaled to integers)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .entries import PriceEntry, Tier

__all__ = ["Level", "levels_of"]


@dataclass(frozen=True, slots=True)
class Level:
    """Base rates or one tier, with fallbacks resolved, as integers in 10⁻¹² per 1M tokens."""

    above: int  # -1 for the base rates
    tier: Tier | None
    rates: tuple[Decimal, Decimal, Decimal, Decimal, Decimal | None]  # in, out, cache r/w, thinking
    scaled: tuple[int, int, int, int, int | None] | None  # None when a rate has > 12 decimals


def levels_of(e: PriceEntry) -> tuple[Level, ...]:
    """An entry's base rates and tiers, in ascending order."""
    out = []
    for tier in (None, *e.tiers):
        src: Tier | PriceEntry = tier if tier is not None else e
        think = tier.reasoning if tier is not None else None
        if think is None:
            think = e.reasoning
        rates = (
            src.input,
            src.output,
            src.cache_read if src.cache_read is not None else src.input,
            src.cache_write if src.cache_write is not None else src.input,
            think,
        )
        scaled = tuple(None if r is None else r.scaleb(12) for r in rates)
        exact = all(r is None or r == r.to_integral_value() for r in scaled)
        out.append(
            Level(
                above=tier.above if tier is not None else -1,
                tier=tier,
                rates=rates,
                scaled=tuple(None if r is None else int(r) for r in scaled) if exact else None,  # type: ignore[arg-type]
            )
        )
    return tuple(out)
