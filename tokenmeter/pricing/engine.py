"""The price engine: effective-dated, region-aware, tiered prices and the estimates made from them.

Rules (README "Where prices come from"; tests/test_pricing.py checks each):

* Prices are per 1,000,000 tokens, as ``Decimal``, in the entry's own currency. Nothing is ever
  converted between currencies.
* **Regions.** A record's ``provider`` label picks a region (``PROVIDER_REGIONS``): ``qwen``,
  ``qwen-intl``, ``qwen-singapore``, ``qwen-vl-singapore``, ``qwen-virginia``, ``dashscope``,
  ``dashscope-intl``, ``qwencloud``, ``alibaba`` → ``intl`` (USD); ``qwen-beijing``, ``qwen-cn``, ``qwen-china``,
  ``dashscope-cn``, ``bailian`` → ``cn`` (CNY); ``huawei-maas``, ``huawei-maas-hk`` → ``huawei-maas``
  (the international site's CN-Hong Kong list, USD); ``huawei-maas-cn`` → ``huawei-maas-cn`` (CNY, no
  bundled prices); ``openrouter`` → ``openrouter`` (no bundled prices: OpenRouter reports billed USD).
  Labels match case-insensitively. A model with no entry in that region is unpriced: there is no
  fallback to another region or currency. An unknown provider label has no region, so only overrides
  without ``provider``/``region`` can price it. An override in another currency than the record's
  region (e.g. a USD "any provider" price for a ``qwen-beijing`` record) does not apply there.
* **Dates.** The entry in force on the record's date is the one with the latest ``valid_from`` on or
  before it. A bundled model's earliest entry also prices earlier dates (tables start when a model was
  first recorded, usually after its launch); the estimate's basis then says "earliest known price".
  Config overrides apply only from their own ``from`` date (or always, without one) and beat bundled
  entries on the dates they cover; among overrides in force the latest ``from`` wins, then the most
  specific (provider, then region, then any).
* **Names.** Exact match, then case-insensitive, then the aliases listed in the table (e.g.
  ``qwen-plus-latest`` → ``qwen-plus``). No prefix or fuzzy matching. Unknown model → ``None``
  (unpriced), never 0.
* **Tiers.** The request's prompt size (input tokens, cached tokens included) picks the tier: the
  last tier with ``prompt > above`` (exactly 32,000 stays below a 32,000 boundary). That tier's rates
  apply to every token of the request. For aggregate records (``requests > 1``) the average prompt
  per request picks the tier: an approximation, exact only when the requests are of similar size.
* **Cost.** ``(input − cache_read − cache_write) × input_rate + cache_read × cache_read_rate +
  cache_write × cache_write_rate + output × output_rate``, per 1M tokens; a missing cache rate falls
  back to the tier's input rate. Thinking (pricing.md §6.2, following model-prices): when the record
  has ``reasoning_tokens > 0`` and a thinking price exists, *all* output tokens are priced at it (the
  tier's ``thinking_output``, else the entry's, else the plain output rate). Not verified against a bill.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Context, Decimal, localcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "PROVIDER_REGIONS",
    "REGIONS",
    "Estimate",
    "PriceBook",
    "PriceEntry",
    "Region",
    "Tier",
]

DATA_FILE = Path(__file__).with_name("prices.json")
PER = Decimal(1_000_000)
_UNIT = Decimal(10**18)  # scaled rates are 10⁻¹² per 1M tokens = 10⁻¹⁸ per token
_CTX = Context(prec=60)


@dataclass(frozen=True, slots=True)
class Region:
    """A price region: one currency, one price list."""

    id: str
    currency: str
    description: str


REGIONS: dict[str, Region] = {
    r.id: r
    for r in (
        Region("intl", "USD", "Alibaba Cloud Model Studio, international (Singapore) list prices"),
        Region("cn", "CNY", "Alibaba Cloud Model Studio (Bailian), China mainland (Beijing)"),
        Region("huawei-maas", "USD", "Huawei Cloud MaaS, CN-Hong Kong (international site)"),
        Region("huawei-maas-cn", "CNY", "Huawei Cloud MaaS, China site (cn-southwest-2); no bundled prices"),
        Region("openrouter", "USD", "OpenRouter (its API reports billed cost); no bundled prices"),
    )
}

PROVIDER_REGIONS: dict[str, str] = {
    "qwen": "intl",
    "qwen-intl": "intl",
    "qwen-singapore": "intl",
    "qwen-vl-singapore": "intl",  # the DashScope vision log's label (qwen-vision-usage.tsv)
    "qwen-virginia": "intl",
    "dashscope": "intl",
    "dashscope-intl": "intl",
    "qwencloud": "intl",
    "alibaba": "intl",
    "qwen-beijing": "cn",
    "qwen-cn": "cn",
    "qwen-china": "cn",
    "dashscope-cn": "cn",
    "bailian": "cn",
    "huawei-maas": "huawei-maas",
    "huawei-maas-hk": "huawei-maas",
    "huawei-maas-cn": "huawei-maas-cn",
    "openrouter": "openrouter",
}


@dataclass(frozen=True, slots=True)
class Tier:
    """Rates that replace the base rates when a request's prompt is larger than ``above`` tokens."""

    above: int
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    thinking_output: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One price of one model in one region, in force from ``valid_from`` (None = always)."""

    model: str
    currency: str
    input: Decimal
    output: Decimal
    region: str | None = None
    valid_from: date | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    thinking_output: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    aliases: tuple[str, ...] = ()
    source: str = ""
    origin: str = "bundled"  # "bundled" | "config"
    provider: str | None = None  # config overrides restricted to one provider label
    basis: str | None = None  # how valid_from was established ("documented", "models.dev commit", ...)
    note: str | None = None
    valid_until: date | None = None  # the next entry's valid_from (display only)

    @property
    def scope(self) -> str:
        """Where the entry applies: a region id, ``provider <label>`` or ``any provider``."""
        if self.provider:
            return f"provider {self.provider}"
        return self.region or "any provider"

    def tiers_text(self) -> str:
        """Tiers as one line: ``>32000: 1.8/9 cache 0.36; >128000: 3/15``."""
        parts = []
        for t in self.tiers:
            text = f">{t.above}: {_fmt(t.input)}/{_fmt(t.output)}"
            if t.cache_read is not None:
                text += f" cache {_fmt(t.cache_read)}"
            if t.cache_write is not None:
                text += f" write {_fmt(t.cache_write)}"
            if t.thinking_output is not None:
                text += f" thinking {_fmt(t.thinking_output)}"
            parts.append(text)
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated cost in the price's own currency, and the basis it was computed on."""

    cost: Decimal
    currency: str
    basis: str
    entry: PriceEntry | None = field(default=None, compare=False, repr=False)
    tier_above: int | None = None


def _fmt(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def _as_day(day: date | datetime | None) -> date:
    if day is None:
        return datetime.now(UTC).date()
    if isinstance(day, datetime):
        return day.astimezone(UTC).date() if day.tzinfo is not None else day.date()
    return day


@dataclass(frozen=True, slots=True)
class _Level:
    """Base rates or one tier, with fallbacks resolved, as integers in 10⁻¹² per 1M tokens."""

    above: int  # -1 for the base rates
    tier: Tier | None
    rates: tuple[Decimal, Decimal, Decimal, Decimal, Decimal | None]  # in, out, cache r/w, thinking
    scaled: tuple[int, int, int, int, int | None] | None  # None when a rate has > 12 decimals


def _levels(e: PriceEntry) -> tuple[_Level, ...]:
    out = []
    for tier in (None, *e.tiers):
        src: Tier | PriceEntry = tier if tier is not None else e
        think = tier.thinking_output if tier is not None else None
        if think is None:
            think = e.thinking_output
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
            _Level(
                above=tier.above if tier is not None else -1,
                tier=tier,
                rates=rates,
                scaled=tuple(None if r is None else int(r) for r in scaled) if exact else None,  # type: ignore[arg-type]
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Choice:
    entry: PriceEntry
    earliest: bool  # the day precedes the entry: "earliest known price"
    alias_of: str | None  # canonical name when the record's model matched through an alias
    levels: tuple[_Level, ...] = ()


class PriceBook:
    """Bundled price table + config overrides; answers "what did this usage cost?"."""

    def __init__(
        self,
        entries: Iterable[PriceEntry],
        *,
        version: str,
        data_basis: str = "",
        overrides: Iterable[PriceEntry] = (),
        overrides_digest: str | None = None,
        provider_regions: Mapping[str, str] | None = None,
    ) -> None:
        self.version = version
        self.data_basis = data_basis
        self._digest = overrides_digest
        self._regions = {k.lower(): v for k, v in PROVIDER_REGIONS.items()}
        if provider_regions:
            self._regions.update({k.lower(): v for k, v in provider_regions.items()})
        series: dict[tuple[str, str], list[PriceEntry]] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        for e in entries:
            if e.region is None:
                raise ValueError(f"bundled entry {e.model} has no region")
            series.setdefault((e.region, e.model.lower()), []).append(e)
        self._bundled = {k: _chain(v) for k, v in series.items()}
        for (region, name), chain in self._bundled.items():
            for e in chain:
                for alias in e.aliases:
                    self._aliases[(region, alias.lower())] = name
        self._overrides: dict[str, list[PriceEntry]] = {}
        for e in overrides:
            self._overrides.setdefault(e.model, []).append(e)
        self._overrides_lower: dict[str, list[PriceEntry]] = {}
        for name, group in self._overrides.items():
            self._overrides_lower.setdefault(name.lower(), []).extend(group)
        self._memo: dict[tuple[str, str | None, date], _Choice | None] = {}
        self._basis_memo: dict[tuple[Any, ...], str] = {}

    # ---- construction ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        path: Path | None = None,
        provider_regions: Mapping[str, str] | None = None,
    ) -> PriceBook:
        """The bundled table (or ``path``) plus ``[prices]`` overrides from config (validated here)."""
        from .overrides import overrides_digest, parse_overrides

        data = _read_table(str(path or DATA_FILE))
        entries = [_entry_from_json(e) for e in data["entries"]]
        parsed = parse_overrides(overrides) if overrides else []
        return cls(
            entries,
            version=data["version"],
            data_basis=data.get("basis", ""),
            overrides=parsed,
            overrides_digest=overrides_digest(overrides) if overrides else None,
            provider_regions=provider_regions,
        )

    # ---- identity -------------------------------------------------------------------------------

    @property
    def basis(self) -> str:
        """Version of the price data, stored with each estimate (changes when table or overrides do)."""
        label = f"bundled {self.version}"
        return f"{label}+config {self._digest}" if self._digest else label

    def region_for(self, provider: str | None) -> str | None:
        """The price region of a provider label, or None when the label is not known."""
        if not provider:
            return None
        return self._regions.get(provider.lower())

    # ---- selection ------------------------------------------------------------------------------

    def _bundled_chain(self, model: str, region: str) -> tuple[list[PriceEntry], str | None] | None:
        lower = model.lower()
        chain = self._bundled.get((region, lower))
        if chain:
            return chain, None
        canonical = self._aliases.get((region, lower))
        if canonical is not None:
            return self._bundled[(region, canonical)], canonical
        return None

    def _override_group(self, model: str, region: str | None) -> tuple[list[PriceEntry], str | None]:
        group = self._overrides.get(model) or self._overrides_lower.get(model.lower())
        if group:
            return group, None
        # an override of the canonical model also covers its aliases in this region
        regions = [region] if region else sorted({r for r, _ in self._bundled})
        for r in regions:
            canonical = self._aliases.get((r, model.lower()))
            if canonical is not None and canonical in self._overrides_lower:
                return self._overrides_lower[canonical], canonical
        return [], None

    def _select(self, model: str, provider: str | None, region: str | None, day: date) -> _Choice | None:
        group, alias_of = self._override_group(model, region)
        currency = REGIONS[region].currency if region in REGIONS else None
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
            if e.valid_from is not None and e.valid_from > day:
                continue
            key = (e.valid_from or date.min, specificity)
            if best is None or key > best[0]:
                best = (key, e)
        if best is not None:
            return _Choice(best[1], False, alias_of, _levels(best[1]))
        if region is None:
            return None
        found = self._bundled_chain(model, region)
        if found is None:
            return None
        chain, alias_of = found
        chosen = None
        for e in chain:
            if e.valid_from is None or e.valid_from <= day:
                chosen = e
        if chosen is None:
            return _Choice(chain[0], True, alias_of, _levels(chain[0]))
        return _Choice(chosen, False, alias_of, _levels(chosen))

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
        head = f"bundled {self.version}" if e.origin == "bundled" else "config"
        text = f"{head}: {e.model} {e.scope}"
        if e.valid_from is not None:
            text += f" from {e.valid_from.isoformat()}"
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
            if e.provider is not None and (e.valid_from is None or e.valid_from <= d):
                choice = self._select(model, e.provider, self.region_for(e.provider), d)
                if choice and choice.entry not in found:
                    found.append(choice.entry)
        generic = self._select(model, None, None, d)
        if generic and generic.entry not in found:
            found.append(generic.entry)
        for region in sorted({r for r, _ in self._bundled} | {e.region for e in group if e.region}):
            choice = self._select(model, None, region, d)
            if choice and choice.entry not in found:
                found.append(choice.entry)
        return found

    def entries(self) -> list[PriceEntry]:
        """Every entry: config overrides first, then the bundled table (sorted)."""
        out = [e for group in self._overrides.values() for e in group]
        for key in sorted(self._bundled):
            out.extend(self._bundled[key])
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
            picked.extend(group if history else _in_force_overrides(group, d))
        for chain in (self._bundled[k] for k in sorted(self._bundled)):
            if history:
                picked.extend(chain)
            else:
                current = [e for e in chain if e.valid_from is None or e.valid_from <= d]
                picked.append(current[-1] if current else chain[0])
        if needle:
            picked = [e for e in picked if needle in " ".join((e.model, *e.aliases)).lower()]
        picked.sort(key=lambda e: (e.model.lower(), e.origin != "config", e.scope, e.valid_from or date.min))
        return [_row(e) for e in picked]


def _row(e: PriceEntry) -> dict[str, Any]:
    return {
        "model": e.model,
        "region": e.scope,
        "currency": e.currency,
        "valid_from": e.valid_from,
        "valid_until": e.valid_until,
        "input": e.input,
        "output": e.output,
        "cache_read": e.cache_read,
        "cache_write": e.cache_write,
        "thinking_output": e.thinking_output,
        "tiers": e.tiers_text(),
        "aliases": ", ".join(e.aliases),
        "source": e.source,
        "origin": e.origin,
        "note": e.note or "",
    }


def _in_force_overrides(group: list[PriceEntry], day: date) -> list[PriceEntry]:
    latest: dict[tuple[str | None, str | None], PriceEntry] = {}
    for e in group:
        if e.valid_from is not None and e.valid_from > day:
            continue
        key = (e.provider, e.region)
        cur = latest.get(key)
        if cur is None or (e.valid_from or date.min) > (cur.valid_from or date.min):
            latest[key] = e
    return list(latest.values())


def _chain(entries: list[PriceEntry]) -> list[PriceEntry]:
    """Sort one model's entries by date and fill in each one's ``valid_until``."""
    ordered = sorted(entries, key=lambda e: e.valid_from or date.min)
    out = []
    for i, e in enumerate(ordered):
        nxt = ordered[i + 1].valid_from if i + 1 < len(ordered) else None
        out.append(replace(e, valid_until=nxt))
    return out


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _entry_from_json(raw: Mapping[str, Any]) -> PriceEntry:
    tiers = tuple(
        Tier(
            above=int(t["above"]),
            input=Decimal(t["input"]),
            output=Decimal(t["output"]),
            cache_read=_dec(t.get("cache_read")),
            cache_write=_dec(t.get("cache_write")),
            thinking_output=_dec(t.get("thinking_output")),
        )
        for t in raw.get("tiers", ())
    )
    return PriceEntry(
        model=raw["model"],
        region=raw["region"],
        currency=raw["currency"],
        valid_from=date.fromisoformat(raw["valid_from"]) if raw.get("valid_from") else None,
        input=Decimal(raw["input"]),
        output=Decimal(raw["output"]),
        cache_read=_dec(raw.get("cache_read")),
        cache_write=_dec(raw.get("cache_write")),
        thinking_output=_dec(raw.get("thinking_output")),
        tiers=tiers,
        aliases=tuple(raw.get("aliases", ())),
        source=raw.get("source", ""),
        origin="bundled",
        basis=raw.get("basis"),
        note=raw.get("note"),
    )


@lru_cache(maxsize=4)
def _read_table(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if data.get("schema") != 1:
        raise ValueError(f"{path}: unsupported price table schema {data.get('schema')!r}")
    return data


def digest_of(obj: Any) -> str:
    """A short stable hash of JSON-able data (used for the overrides part of ``PriceBook.basis``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]
