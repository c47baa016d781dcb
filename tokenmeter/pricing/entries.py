"""What plugins register through ``register_prices``: dated prices and the price regions they form.

``PriceEntry`` and ``PriceRegion`` are public (``tokenmeter.PriceEntry``, ``tokenmeter.PriceRegion``).
Prices are per 1,000,000 tokens, as ``Decimal``, in the entry's own currency; nothing is converted.
This module imports nothing else from ``tokenmeter.pricing``, so the engine and the config
overrides can both build on it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["PriceEntry", "PriceRegion", "Tier", "covers", "digest_of"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
RATE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning")


def _rate(owner: str, name: str, value: Any, required: bool = False) -> Decimal | None:
    if value is None:
        if required:
            raise ValueError(f"{owner}: {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        # floats are refused: 0.1 is not exactly one tenth, and prices must sum exactly
        raise ValueError(f"{owner}: {name} must be a str, int or Decimal, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{owner}: {name} is not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return number


def _set_rates(obj: Any, owner: str) -> None:
    for name in RATE_FIELDS:
        value = _rate(owner, name, getattr(obj, name), required=name in ("input", "output"))
        object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    """Rates that replace the base rates when a request's prompt is larger than ``above`` tokens."""

    above: int
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def __post_init__(self) -> None:
        if isinstance(self.above, bool) or not isinstance(self.above, int) or self.above <= 0:
            raise ValueError(f"tier above={self.above!r}: expected a whole number of prompt tokens > 0")
        _set_rates(self, f"tier >{self.above}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceEntry:
    """One model's price for one provider label, in force from ``effective``.

    Plugins set the first eleven fields (rates may be given as ``str``, ``int`` or ``Decimal``;
    ``effective`` as a ``date`` or ``"YYYY-MM-DD"``; ``tiers`` as ``Tier`` objects or mappings).
    ``provider`` applies to that label and to labels that extend it with ``-`` (``"acme"`` covers
    ``"acme-eu"``); ``None`` means any provider. ``region``, ``plugin``, ``origin`` and
    ``valid_until`` are filled in by tokenmeter.
    """

    model: str
    provider: str | None
    currency: str
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None  # output rate when the record has reasoning tokens
    tiers: tuple[Tier, ...] = ()
    effective: date | None = None  # None: always
    source: str = ""
    aliases: tuple[str, ...] = ()  # other model ids priced the same (e.g. "-latest" names)
    note: str | None = None
    region: str | None = None  # the price region it belongs to (set by tokenmeter; config: scope)
    plugin: str | None = None  # the plugin that registered it (set by tokenmeter)
    origin: str = "plugin"  # "plugin" | "config"
    valid_until: date | None = field(default=None, compare=False)  # the next entry's date (display only)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"PriceEntry model must be a non-empty string, got {self.model!r}")
        owner = f"price of {self.model}"
        if self.provider is not None and (not isinstance(self.provider, str) or not self.provider.strip()):
            raise ValueError(f"{owner}: provider must be a non-empty label or None, got {self.provider!r}")
        currency = self.currency.upper() if isinstance(self.currency, str) else self.currency
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError(f"{owner}: currency must be an ISO 4217 code such as 'USD', got {self.currency!r}")
        object.__setattr__(self, "currency", currency)
        _set_rates(self, owner)
        if isinstance(self.effective, str):
            try:
                object.__setattr__(self, "effective", date.fromisoformat(self.effective))
            except ValueError:
                raise ValueError(f"{owner}: effective must be a date such as 2026-01-01, "
                                 f"got {self.effective!r}") from None
        elif self.effective is not None and not isinstance(self.effective, date):
            raise ValueError(f"{owner}: effective must be a date, got {self.effective!r}")
        tiers = tuple(t if isinstance(t, Tier) else Tier(**t) for t in (self.tiers or ()))
        aboves = [t.above for t in tiers]
        if aboves != sorted(set(aboves)):
            raise ValueError(f"{owner}: tiers must be in increasing order of above, got {aboves}")
        object.__setattr__(self, "tiers", tiers)
        object.__setattr__(self, "aliases", tuple(self.aliases or ()))

    @property
    def scope(self) -> str:
        """Where the entry applies: a region id, ``provider <label>`` or ``any provider``."""
        if self.region:
            return self.region
        return f"provider {self.provider}" if self.provider else "any provider"

    def tiers_text(self) -> str:
        """Tiers as one line: ``>32000: 1.8/9 cache 0.36; >128000: 3/15``."""
        parts = []
        for t in self.tiers:
            text = f">{t.above}: {_fmt(t.input)}/{_fmt(t.output)}"
            if t.cache_read is not None:
                text += f" cache {_fmt(t.cache_read)}"
            if t.cache_write is not None:
                text += f" write {_fmt(t.cache_write)}"
            if t.reasoning is not None:
                text += f" thinking {_fmt(t.reasoning)}"
            parts.append(text)
        return "; ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRegion:
    """A price list: one currency, and the provider labels whose records it prices.

    A record whose provider label is covered by a region (the most specific label wins:
    ``"acme-cn"`` beats ``"acme"`` for ``"acme-cn-north"``) is priced only from that region's
    entries, never from another region's. Entries join a region through their ``provider``.
    A label that no region lists forms a region of its own, named after it.
    """

    id: str
    currency: str
    providers: tuple[str, ...]
    description: str = ""
    plugin: str | None = None  # set by tokenmeter

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise ValueError(f"PriceRegion id must be a non-empty string, got {self.id!r}")
        currency = self.currency.upper() if isinstance(self.currency, str) else self.currency
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise ValueError(f"region {self.id}: currency must be an ISO 4217 code, got {self.currency!r}")
        object.__setattr__(self, "currency", currency)
        labels = (self.providers,) if isinstance(self.providers, str) else tuple(self.providers)
        if not labels or not all(isinstance(p, str) and p.strip() for p in labels):
            raise ValueError(f"region {self.id}: providers must be non-empty labels, got {self.providers!r}")
        object.__setattr__(self, "providers", labels)


def covers(provider: str, label: str) -> bool:
    """Whether a price for ``provider`` applies to records labelled ``label`` (case-insensitive)."""
    p, lab = provider.lower(), label.lower()
    return lab == p or lab.startswith(p + "-")


def most_specific(label: str, providers: Iterable[str]) -> str | None:
    """The longest of ``providers`` that covers ``label``, or None."""
    best = None
    for p in providers:
        if covers(p, label) and (best is None or len(p) > len(best)):
            best = p
    return best


def region_of(label: str | None, regions: Mapping[str, PriceRegion]) -> PriceRegion | None:
    """The region that prices records labelled ``label`` (most specific provider label wins)."""
    if not label:
        return None
    owner = {p.lower(): r for r in regions.values() for p in r.providers}
    best = most_specific(label, owner)
    return owner[best] if best is not None else None


def _fmt(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def digest_of(obj: Any) -> str:
    """A short stable hash of JSON-able data (price versions and the config-overrides digest)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]
