"""User price overrides from config: ``[prices."<model>"]`` tables, validated strictly.

Shape (per 1M tokens, like registered prices)::

    [prices."acme-large"]               # one price for this model
    input = 1.6                         # required
    output = 6.4                        # required
    cache_read = 0.32                   # optional; default: the input price
    cache_write = 2.0                   # optional; default: the input price
    thinking_output = 8                 # optional; output price when the record has reasoning tokens
    currency = "USD"                    # optional; default: the region's currency (must match it), else USD
    provider = "acme-eu"                # optional: only records with this provider label
    region = "eu"                       # optional (instead of provider): a price region plugins registered
    from = 2026-03-15                   # optional: in force from this date (default: always)
    source = "contract 2026"            # optional: shown by `tokenmeter prices`
    tiers = [{above = 32000, input = 1.8, output = 9, cache_read = 0.36}]

    [[prices."acme-small"]]             # or several dated / per-region prices as an array of tables
    from = 2026-03-15
    input = 1.5
    output = 7.5

Numbers may be TOML integers or floats, or decimal strings ("1.8") for exactness.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import ConfigError
from .entries import PriceEntry, PriceRegion, Tier, digest_of, region_of

__all__ = ["entries_digest", "overrides_digest", "parse_overrides", "validate_overrides"]

PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "thinking_output")
ENTRY_KEYS = (*PRICE_KEYS, "currency", "provider", "region", "from", "tiers", "source")
TIER_KEYS = ("above", *PRICE_KEYS)
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_FIELD = {"thinking_output": "reasoning"}  # config key -> PriceEntry/Tier field, where they differ
_FIELD.update({k: k for k in PRICE_KEYS if k not in _FIELD})


def _err(path: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def _number(path: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise _err(path, f"expected a number, got {type(value).__name__} {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise _err(path, f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise _err(path, f"expected a finite number, got {value!r}")
    if number < 0:
        raise _err(path, f"must not be negative, got {value!r}")
    return number


def _day(path: str, value: Any) -> date:
    if isinstance(value, datetime):
        raise _err(path, f"expected a date such as 2026-03-15 (no time), got {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _err(path, f"expected a date such as 2026-03-15, got {value!r}")


def _check_keys(path: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise _err(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _tiers(path: str, value: Any) -> tuple[Tier, ...]:
    if not isinstance(value, list | tuple):
        raise _err(path, "expected a list of tables like [{above = 32000, input = 1.8, output = 9}]")
    tiers: list[Tier] = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(raw, Mapping):
            raise _err(where, "expected a table like {above = 32000, input = 1.8, output = 9}")
        _check_keys(where, raw, TIER_KEYS)
        for key in ("above", "input", "output"):
            if key not in raw:
                raise _err(f"{where}.{key}", "required")
        above = raw["above"]
        if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
            raise _err(f"{where}.above", f"expected a whole number of prompt tokens > 0, got {above!r}")
        if tiers and above <= tiers[-1].above:
            raise _err(f"{where}.above", f"tiers must be in increasing order of above ({above} after "
                                         f"{tiers[-1].above})")
        prices = {_FIELD[k]: _number(f"{where}.{k}", raw[k]) for k in PRICE_KEYS if k in raw}
        tiers.append(Tier(above=above, **prices))
    return tuple(tiers)


def _entry(model: str, path: str, raw: Any, regions: Mapping[str, PriceRegion]) -> PriceEntry:
    if not isinstance(raw, Mapping):
        raise _err(path, f'expected a table of prices ([prices."{model}"] with input and output)')
    _check_keys(path, raw, ENTRY_KEYS)
    for key in ("input", "output"):
        if key not in raw:
            raise _err(f"{path}.{key}", "required (price per 1M tokens)")
    prices = {_FIELD[k]: _number(f"{path}.{k}", raw[k]) for k in PRICE_KEYS if k in raw}
    provider = raw.get("provider")
    region = raw.get("region")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        raise _err(f"{path}.provider", f'expected a provider label such as "acme-eu", got {provider!r}')
    if region is not None:
        if provider is not None:
            raise _err(f"{path}.region", "set provider or region, not both")
        if region not in regions:
            raise _err(f"{path}.region", f"unknown region {region!r} (known: {', '.join(sorted(regions)) or 'none'}; "
                                          "plugins register them: see `tokenmeter plugins`)")
    implied = regions[region] if region is not None else region_of(provider, regions)
    currency = raw.get("currency", implied.currency if implied else "USD")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise _err(f"{path}.currency", f"expected a 3-letter currency code such as \"USD\", got {currency!r}")
    if implied and currency.upper() != implied.currency:  # a region has one currency, never mixed
        of = f" of provider {provider}" if region is None else ""
        raise _err(f"{path}.currency", f'"{currency}" does not match region {implied.id} '
                                       f"({implied.currency}){of}; drop currency or change the scope")
    valid_from = _day(f"{path}.from", raw["from"]) if "from" in raw else None
    source = raw.get("source", "config")
    if not isinstance(source, str):
        raise _err(f"{path}.source", f"expected a string, got {source!r}")
    tiers = _tiers(f"{path}.tiers", raw["tiers"]) if "tiers" in raw else ()
    return PriceEntry(
        model=model,
        currency=currency.upper(),
        region=region,
        provider=provider.strip() if provider else None,
        effective=valid_from,
        tiers=tiers,
        source=source,
        origin="config",
        **prices,
    )


def parse_overrides(
    table: Mapping[str, Any] | None, *, regions: Iterable[PriceRegion] | None = None
) -> list[PriceEntry]:
    """Validate the config's ``prices`` table and return its entries (raises ``ConfigError``).

    ``regions`` are the price regions a ``region`` key may name and whose currency a ``provider``
    implies; by default the installed plugins' regions.
    """
    if table is None:
        return []
    if regions is None:  # config validation: the regions of the installed plugins
        from ..plugin_manager import get_prices

        regions = get_prices()[1]
    by_id = {r.id: r for r in regions}
    if not isinstance(table, Mapping):
        raise _err("prices", 'expected a table of models, e.g. [prices."acme-large"]')
    entries: list[PriceEntry] = []
    for model, value in table.items():
        if not isinstance(model, str) or not model.strip():
            raise _err("prices", f"model names must be non-empty strings, got {model!r}")
        base = f'prices."{model}"'
        if isinstance(value, list | tuple):
            if not value:
                raise _err(base, "empty list; give at least one table with input and output")
            group = [_entry(model, f"{base}[{i}]", raw, by_id) for i, raw in enumerate(value)]
            seen: dict[tuple[Any, ...], int] = {}
            for i, e in enumerate(group):
                key = (e.provider and e.provider.lower(), e.region, e.effective)
                if key in seen:
                    raise _err(f"{base}[{i}]",
                               f"duplicates {base}[{seen[key]}] (same provider/region and from)")
                seen[key] = i
            entries.extend(group)
        else:
            entries.append(_entry(model, base, value, by_id))
    return entries


def validate_overrides(table: Mapping[str, Any] | None, *, regions: Iterable[PriceRegion] | None = None) -> None:
    """Raise ``ConfigError`` naming the exact key when the ``prices`` table is invalid."""
    parse_overrides(table, regions=regions)


def overrides_digest(table: Mapping[str, Any] | None, *, regions: Iterable[PriceRegion] | None = None) -> str | None:
    """A short hash of the overrides, so stored estimates can tell which prices they used."""
    if not table:
        return None
    return entries_digest(parse_overrides(table, regions=regions))


def entries_digest(entries: Iterable[PriceEntry]) -> str:
    """A short hash of parsed override entries (their rates, scopes and dates)."""
    return digest_of(
        [
            [e.model, e.provider, e.region, e.currency, e.effective, *(getattr(e, _FIELD[k]) for k in PRICE_KEYS),
             [[t.above, *(getattr(t, _FIELD[k]) for k in PRICE_KEYS)] for t in e.tiers]]
            for e in entries
        ]
    )
