"""Cost estimates from the prices plugins register (``register_prices``) plus config overrides.

``PriceBook.load(overrides=config["prices"])`` builds the book once; ``book.estimate(...)`` prices one
record (``None`` = unpriced, never 0); ``book.rows()`` / ``book.lookup()`` feed ``tokenmeter prices``;
``book.basis`` is stored with every estimate so ``tokenmeter reprice`` knows which are stale.
The rules (regions, dates, tiers, cache, thinking) are documented in ``engine.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .entries import PriceEntry, PriceRegion, Tier

if TYPE_CHECKING:
    from .engine import Estimate, PriceBook
    from .overrides import parse_overrides, validate_overrides

__all__ = [
    "Estimate",
    "PriceBook",
    "PriceEntry",
    "PriceRegion",
    "Tier",
    "parse_overrides",
    "validate_overrides",
]


_LAZY = {"Estimate": "engine", "PriceBook": "engine", "parse_overrides": "overrides",
         "validate_overrides": "overrides"}


def __getattr__(name: str) -> Any:
    # the engine loads on first use: a report from stored estimates (most runs) never prices
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
