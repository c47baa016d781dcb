"""The price engine: effective-dated, region-aware, tiered prices and the estimates made from them.

It knows no provider: every price and price region comes from plugins (``register_prices``) or from
config overrides. Rules (docs/plugins/hooks.md "register_prices"; tests/test_pricing.py checks each):

* Prices are per 1,000,000 tokens, as ``Decimal``, in the entry's own currency. Nothing is ever
  converted between currencies.
* **Regions.** A record's ``provider`` label picks one price region: the region listing the most
  specific label that covers it (``acme`` covers ``acme`` and ``acme-eu``; ``acme-cn`` beats ``acme``
  for ``acme-cn-north``). Labels match case-insensitively. A plugin entry's ``provider`` places it in
  the region listing that label, or in a region of its own named after the label. A model with no
  entry in that region is unpriced: there is no fallback to another region or currency. A label no
  region covers can be priced only by entries registered for any provider (``provider=None``) and by
  overrides without ``provider``/``region``. An override or any-provider entry in another currency
  than the record's region does not apply there.
* **Dates.** The entry in force on the record's date is the one with the latest ``effective`` on or
  before it. A registered model's earliest entry also prices earlier dates (tables start when a price
  was first recorded, usually after a model's launch); the estimate's basis then says "earliest known
  price". Config overrides apply only from their own ``from`` date (or always, without one) and beat
  registered entries on the dates they cover; among overrides in force the latest ``from`` wins, then
  the most specific (provider, then region, then any).
* **Names.** Exact match, then case-insensitive, then the entries' ``aliases``. No prefix or fuzzy
  matching. Unknown model -> ``None`` (unpriced), never 0.
* **Tiers.** The request's prompt size (input tokens, cached tokens included) picks the tier: the
  last tier with ``prompt > above`` (exactly 32,000 stays below a 32,000 boundary). That tier's rates
  apply to every token of the request. For aggregate records (``requests > 1``) the average prompt
  per request picks the tier: an approximation, exact only when the requests are of similar size.
* **Cost.** ``(input - cache_read - cache_write) x input_rate + cache_read x cache_read_rate +
  cache_write x cache_write_rate + output x output_rate``, per 1M tokens; a missing cache rate falls
  back to the tier's input rate. Thinking: when the record has ``reasoning_tokens > 0`` and a
  reasoning price exists, *all* output tokens are priced at it (the tier's ``reasoning``, else the
  entry's, else the plain output rate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from .entries import PriceEntry, PriceRegion, Tier, digest_of, most_specific
from .levels import Level, levels_of
from .listing import in_force_overrides, price_row
from .overrides import entries_digest, parse_overrides

__all__ = ["Estimate", "PriceBook", "PriceEntry", "PriceRegion", "Tier"]

PER = Decimal(1_000_000)
_UNIT = Decimal(10**18)  # scaled rates are 10^-12 per 1M tokens = 10^-18 per token
_CTX = Context(prec=60)
_NANO = Decimal(10**9)
_UNSEEN = object()  # not looked up yet (None in the memo means unpriced)


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated cost in the price's own currency, and the basis it was computed on."""

    cost: Decimal
    currency: str
    basis: str
    entry: PriceEntry | None = field(default=None, compare=False, repr=False)
    tier_above: int | None = None


def _as_day(day: date | datetime | None) -> date:
    if day is None:
        return datetime.now(UTC).date()
    if isinstance(day, datetime):
        return day.astimezone(UTC).date() if day.tzinfo is not None else day.date()
    return day


@dataclass(frozen=True, slots=True)
class _Choice:
    entry: PriceEntry
    earliest: bool  # the day precedes the entry: "earliest known price"
    alias_of: str | None  # canonical name when the record's model matched through an alias
    levels: tuple[Level, ...] = ()


class PriceBook:
    """Registered prices + config overrides; answers "what did this usage cost?"."""

    def __init__(
        self,
        entries: Iterable[PriceEntry],
        *,
        regions: Iterable[PriceRegion] = (),
        overrides: Iterable[PriceEntry] = (),
        overrides_digest: str | None = None,
    ) -> None:
        self._digest = overrides_digest
        self.regions: dict[str, PriceRegion] = {}
        self._label_region: dict[str, str] = {}  # lower-case provider label -> region id
        for r in regions:
            self._add_region(r)
        entries = list(entries)
        for e in entries:  # a label no region lists forms its own region, in its entries' currency
            if e.provider is not None and e.provider.lower() not in self._label_region:
                self._add_region(PriceRegion(id=e.provider, currency=e.currency, providers=(e.provider,),
                                             plugin=e.plugin))
        series: dict[tuple[str, str], list[PriceEntry]] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        for e in entries:
            rid = self._label_region[e.provider.lower()] if e.provider is not None else ""
            if rid and e.currency != self.regions[rid].currency:
                raise ValueError(f"price of {e.model} for {e.provider} is in {e.currency}, but region {rid} "
                                 f"is priced in {self.regions[rid].currency}")
            series.setdefault((rid, e.model.lower()), []).append(replace(e, region=rid or None))
        # "" holds the any-provider entries: one chain per model, like a region without labels
        self._registered = {k: _chain(v) for k, v in series.items()}
        for (region, name), chain in self._registered.items():
            for e in chain:
                for alias in e.aliases:
                    self._aliases[(region, alias.lower())] = name
        self.version = digest_of([
            sorted((r.id, r.currency, sorted(p.lower() for p in r.providers)) for r in self.regions.values()),
            [[_entry_key(e) for e in chain] for _, chain in sorted(self._registered.items())],
        ])
        self._overrides: dict[str, list[PriceEntry]] = {}
        for e in overrides:
            self._overrides.setdefault(e.model, []).append(e)
        self._overrides_lower: dict[str, list[PriceEntry]] = {}
        for name, group in self._overrides.items():
            self._overrides_lower.setdefault(name.lower(), []).extend(group)
        self._region_memo: dict[str, str | None] = {}
        self._memo: dict[tuple[str, str | None, date], _Choice | None] = {}
        self._basis_memo: dict[tuple[Any, ...], str] = {}

    def _add_region(self, region: PriceRegion) -> None:
        if region.id in self.regions:
            raise ValueError(f"price region {region.id!r} is defined twice")
        for label in region.providers:
            taken = self._label_region.get(label.lower())
            if taken is not None:
                raise ValueError(f"provider label {label!r} is in price regions {taken!r} and {region.id!r}")
            self._label_region[label.lower()] = region.id
        self.regions[region.id] = region

    # ---- construction ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        registered: tuple[Iterable[PriceEntry], Iterable[PriceRegion]] | None = None,
    ) -> PriceBook:
        """The prices plugins registered (or ``registered``) plus ``[prices]`` overrides from config.

        ``registered`` is ``(entries, regions)``; by default they come from the installed plugins'
        ``register_prices`` hooks. Overrides are validated here (``ConfigError`` naming the key).
        """
        if registered is None:
            # imported here: the engine itself works on any entries, with no plugin machinery
            from ..plugin_manager import get_prices

            registered = get_prices()
        entries, regions = list(registered[0]), list(registered[1])
        parsed = parse_overrides(overrides, regions=regions) if overrides else []
        return cls(
            entries,
            regions=regions,
            overrides=parsed,
            overrides_digest=entries_digest(parsed) if overrides else None,
        )

    # ---- identity -------------------------------------------------------------------------------

    @property
    def basis(self) -> str:
        """Version of the price data, stored with each estimate (changes when prices or overrides do)."""
        label = f"plugins {self.version}"
        return f"{label}+config {self._digest}" if self._digest else label

    def region_for(self, provider: str | None) -> str | None:
        """The price region id of a provider label, or None when no region covers it."""
        if not provider:
            return None
        key = provider.lower()
        if key not in self._region_memo:
            best = most_specific(key, self._label_region)
            self._region_memo[key] = self._label_region[best] if best is not None else None
        return self._region_memo[key]

    # ---- selection ------------------------------------------------------------------------------

    def _registered_chain(self, model: str, region: str) -> tuple[list[PriceEntry], str | None] | None:
        lower = model.lower()
        chain = self._registered.get((region, lower))
        if chain:
            return chain, None
        canonical = self._aliases.get((region, lower))
        if canonical is not None:
            return self._registered[(region, canonical)], canonical
        return None

    def _override_group(self, model: str, region: str | None) -> tuple[list[PriceEntry], str | None]:
        group = self._overrides.get(model) or self._overrides_lower.get(model.lower())
        if group:
            return group, None
        # an override of the canonical model also covers its aliases in this region
        regions = [region] if region else sorted({r for r, _ in self._registered})
        for r in regions:
            canonical = self._aliases.get((r, model.lower()))
            if canonical is not None and canonical in self._overrides_lower:
                return self._overrides_lower[canonical], canonical
        return [], None

    def _select(self, model: str, provider: str | None, region: str | None, day: date) -> _Choice | None:
        group, alias_of = self._override_group(model, region)
        currency = self.regions[region].currency if region in self.regions else None
        best: tuple[tuple[date, int], PriceEntry] | None = None
        for e in group:
            if currency is not None and e.currency != currency:
                continue  # e.g. a USD "any provider" override never prices a CNY region
            if e.provider is not None:
                if provider is None or e.provider.lower() != provider.lower():
                    continue
                specificity = 2
            elif e.region is not None:
                if e.region != region:
                    continue
                specificity = 1
            else:
                specificity = 0
            if e.effective is not None and e.effective > day:
                continue
            key = (e.effective or date.min, specificity)
            if best is None or key > best[0]:
                best = (key, e)
        if best is not None:
            return _Choice(best[1], False, alias_of, levels_of(best[1]))
        found = self._registered_chain(model, region) if region is not None else None
        if found is None:
            found = self._registered_chain(model, "")  # entries registered for any provider
            if found is not None and currency is not None and found[0][0].currency != currency:
                return None
        if found is None:
            return None
        chain, alias_of = found
        chosen = None
        for e in chain:
            if e.effective is None or e.effective <= day:
                chosen = e
        if chosen is None:
            return _Choice(chain[0], True, alias_of, levels_of(chain[0]))
        return _Choice(chosen, False, alias_of, levels_of(chosen))

    # ---- estimates ------------------------------------------------------------------------------

    def estimate(
        self,
        model: str | None,
        provider: str | None = None,
        day: date | datetime | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        requests: int | None = 1,
    ) -> Estimate | None:
        """Estimated cost of one record (inclusive token fields, as in ``UsageRecord``), or None.

        None means unpriced: no model, no known price for it in the provider's region on that day,
        or no token counts at all.
        """
        if not model or (input_tokens is None and output_tokens is None):
            return None
        d = _as_day(day)
        key = (model, provider, d)
        if key not in self._memo:
            self._memo[key] = self._select(model, provider, self.region_for(provider), d)
        choice = self._memo[key]
        if choice is None:
            return None
        e = choice.entry
        cr = cache_read_tokens or 0
        cw = cache_write_tokens or 0
        inp = max(input_tokens or 0, cr + cw)  # input is inclusive of cache tokens
        out = output_tokens or 0
        n = requests if requests and requests > 0 else 1
        levels = choice.levels
        level = levels[0]
        for candidate in levels[1:]:  # tiers ascend; prompt per request > above  <=>  inp > above × n
            if inp > candidate.above * n:
                level = candidate
            else:
                break
        thinking = bool(reasoning_tokens) and level.rates[4] is not None
        if level.scaled is not None:
            r_in, r_out, r_cr, r_cw, r_think = level.scaled
            total = (inp - cr - cw) * r_in + cr * r_cr + cw * r_cw + out * (r_think if thinking else r_out)
            cost = _CTX.divide(Decimal(total), _UNIT)
        else:
            d_in, d_out, d_cr, d_cw, d_think = level.rates
            with localcontext(_CTX):
                rate_out = d_think if thinking else d_out
                cost = ((inp - cr - cw) * d_in + cr * d_cr + cw * d_cw + out * rate_out) / PER
        bkey = (key, level.above, thinking, n if level.tier is not None and n > 1 else 1)
        basis = self._basis_memo.get(bkey)
        if basis is None:
            basis = self._basis_memo[bkey] = self._basis_text(e, choice, level.tier, thinking, n, model)
        return Estimate(
            cost=cost,
            currency=e.currency,
            basis=basis,
            entry=e,
            tier_above=level.tier.above if level.tier is not None else None,
        )

    def estimate_nanos(
        self,
        model: str | None,
        provider: str | None,
        day: date,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None,
        cache_write_tokens: int | None,
        reasoning_tokens: int | None,
        requests: int | None = 1,
    ) -> tuple[int, str, str] | None:
        """``estimate`` as ``(cost in 10⁻⁹ of the currency, currency, basis)``, or None: the same
        figures (the cost rounded half-even to nanos, as the store keeps it), in integer arithmetic
        for the bulk path of a big ingest. ``day`` is a UTC ``date``."""
        if not model or (input_tokens is None and output_tokens is None):
            return None
        key = (model, provider, day)
        choice = self._memo.get(key, _UNSEEN)
        if choice is _UNSEEN:
            choice = self._memo[key] = self._select(model, provider, self.region_for(provider), day)
        if choice is None:
            return None
        cr = cache_read_tokens or 0
        cw = cache_write_tokens or 0
        inp = max(input_tokens or 0, cr + cw)
        n = requests if requests and requests > 0 else 1
        levels = choice.levels
        level = levels[0]
        for candidate in levels[1:]:  # the same tier choice as estimate()
            if inp > candidate.above * n:
                level = candidate
            else:
                break
        thinking = bool(reasoning_tokens) and level.rates[4] is not None
        total = None
        if level.scaled is not None:
            r_in, r_out, r_cr, r_cw, r_think = level.scaled
            total = (inp - cr - cw) * r_in + cr * r_cr + cw * r_cw + (output_tokens or 0) * (
                r_think if thinking else r_out)
        # estimate()'s Decimal figure is exact up to 27 digits; beyond, or with rates finer than
        # 10⁻¹², take it as it is (rare: the same figure by construction)
        if total is None or abs(total) >= 10**27:
            est = self.estimate(model, provider, day, input_tokens, output_tokens, cache_read_tokens,
                                cache_write_tokens, reasoning_tokens, requests)
            assert est is not None
            return int((est.cost * _NANO).to_integral_value(rounding=ROUND_HALF_EVEN)), est.currency, est.basis
        nanos, rest = divmod(total, 10**9)  # 10⁻¹⁸ units -> nanos, rounded half-even
        if rest > 500_000_000 or (rest == 500_000_000 and nanos & 1):
            nanos += 1
        bkey = (key, level.above, thinking, n if level.tier is not None and n > 1 else 1)
        basis = self._basis_memo.get(bkey)
        if basis is None:
            basis = self._basis_memo[bkey] = self._basis_text(choice.entry, choice, level.tier, thinking, n, model)
        return nanos, choice.entry.currency, basis

    def estimate_record(self, record: Any, day: date | datetime | None = None) -> Estimate | None:
        """``estimate`` for a ``UsageRecord``; the day defaults to the UTC date of ``record.start``."""
        return self.estimate(
            model=record.model,
            provider=record.provider,
            day=day if day is not None else record.start,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cache_read_tokens=record.cache_read_tokens,
            cache_write_tokens=record.cache_write_tokens,
            reasoning_tokens=record.reasoning_tokens,
            requests=record.requests,
        )

    def _basis_text(
        self, e: PriceEntry, choice: _Choice, tier: Tier | None, thinking: bool, n: int, model: str
    ) -> str:
        head = "config" if e.origin == "config" else f"{e.plugin or 'plugin'} {self.version}"
        text = f"{head}: {e.model} {e.scope}"
        if e.effective is not None:
            text += f" from {e.effective.isoformat()}"
        if choice.earliest:
            text += " (earliest known price)"
        if choice.alias_of is not None:
            text += f", as alias {model}"
        if tier is not None:
            text += f", tier >{tier.above}"
            if n > 1:
                text += f" (average of {n} requests)"
        if thinking:
            text += ", thinking output"
        return text

    # ---- listing (`tokenmeter prices`) ----------------------------------------------------------

    def lookup(
        self, model: str, provider: str | None = None, day: date | datetime | None = None
    ) -> list[PriceEntry]:
        """The entries that would price ``model`` on ``day`` (default today).

        With ``provider``: the one entry used for that provider (or ``[]`` when unpriced).
        Without: one per region that has a price (config overrides first), plus provider-specific
        overrides.
        """
        d = _as_day(day)
        if provider is not None:
            choice = self._select(model, provider, self.region_for(provider), d)
            return [choice.entry] if choice else []
        found: list[PriceEntry] = []
        group, _ = self._override_group(model, None)
        for e in group:
            if e.provider is not None and (e.effective is None or e.effective <= d):
                choice = self._select(model, e.provider, self.region_for(e.provider), d)
                if choice and choice.entry not in found:
                    found.append(choice.entry)
        generic = self._select(model, None, None, d)
        if generic and generic.entry not in found:
            found.append(generic.entry)
        for region in sorted({r for r, _ in self._registered if r} | {e.region for e in group if e.region}):
            choice = self._select(model, None, region, d)
            if choice and choice.entry not in found:
                found.append(choice.entry)
        return found

    def entries(self) -> list[PriceEntry]:
        """Every entry: config overrides first, then the registered ones (sorted)."""
        out = [e for group in self._overrides.values() for e in group]
        for key in sorted(self._registered):
            out.extend(self._registered[key])
        return out

    def rows(
        self, model_filter: str | None = None, day: date | datetime | None = None, *, history: bool = False
    ) -> list[dict[str, Any]]:
        """Flat rows for ``tokenmeter prices``: the entries in force on ``day`` (default today).

        ``model_filter`` is a case-insensitive substring of the model name or one of its aliases.
        ``history=True`` lists every dated entry instead.
        """
        d = _as_day(day)
        needle = model_filter.lower() if model_filter else None
        picked: list[PriceEntry] = []
        for group in self._overrides.values():
            picked.extend(group if history else in_force_overrides(group, d))
        for chain in (self._registered[k] for k in sorted(self._registered)):
            if history:
                picked.extend(chain)
            else:
                current = [e for e in chain if e.effective is None or e.effective <= d]
                picked.append(current[-1] if current else chain[0])
        if needle:
            picked = [e for e in picked if needle in " ".join((e.model, *e.aliases)).lower()]
        picked.sort(key=lambda e: (e.model.lower(), e.origin != "config", e.scope, e.effective or date.min))
        return [price_row(e) for e in picked]


def _chain(entries: list[PriceEntry]) -> list[PriceEntry]:
    """Sort one model's entries by date and fill in each one's ``valid_until``."""
    ordered = sorted(entries, key=lambda e: e.effective or date.min)
    out = []
    for i, e in enumerate(ordered):
        nxt = ordered[i + 1].effective if i + 1 < len(ordered) else None
        out.append(replace(e, valid_until=nxt))
    return out


def _entry_key(e: PriceEntry) -> list[Any]:
    """What identifies a registered price for the book's version (its rates, dates and names)."""
    return [e.model, e.provider, e.region, e.currency, e.effective, e.input, e.output, e.cache_read,
            e.cache_write, e.reasoning, [[t.above, t.input, t.output, t.cache_read, t.cache_write, t.reasoning]
                                         for t in e.tiers], sorted(e.aliases)]
