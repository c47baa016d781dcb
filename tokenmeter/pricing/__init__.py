"""Cost estimates from the prices plugins register (``register_prices``) plus config overrides.

``PriceBook.load(overrides=config["prices"])`` builds the book once; ``book.estimate(...)`` prices one
record (``None`` = unpriced, never 0); ``book.rows()`` / ``book.lookup()`` feed ``tokenmeter prices``;
``book.basis`` is stored with every estimate so ``tokenmeter reprice`` knows which are stale.
The rules (regions, dates, tiers, cache, thinking) are documented in ``engine.py``.
"""

from __future__ import annotations

from .engine import Estimate, PriceBook
from .entries import PriceEntry, PriceRegion, Tier
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
