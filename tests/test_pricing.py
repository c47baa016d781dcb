"""The pricing engine with the built-in plugins' prices: regions, dates, tiers, cache, thinking, overrides."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tokenmeter.errors import ConfigError
from tokenmeter.pricing import PriceBook, PriceEntry, validate_overrides

ROOT = Path(__file__).resolve().parent.parent
TABLES = {  # the built-in plugins' price tables, by the regions they hold
    ROOT / "plugins" / "alibaba_prices" / "prices.json": {"intl": "USD", "cn": "CNY"},
    ROOT / "plugins" / "huawei_maas" / "prices.json": {"huawei-maas": "USD"},
}

DAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.load()


def est(book: PriceBook, model: str = "qwen3-coder-plus", provider: str = "qwen", day: date = DAY, **tokens):
    return book.estimate(model=model, provider=provider, day=day, **tokens)


# ---- the worked example and tiers -----------------------------------------------------------------


def test_worked_example_is_priced_at_the_32k_128k_tier(book):
    e = est(book, input_tokens=50_000, output_tokens=2_000)
    assert e.cost == Decimal("0.108")  # 50k × $1.8 + 2k × $9 per 1M
    assert e.currency == "USD"
    assert e.tier_above == 32_000
    assert e.basis.startswith(f"alibaba-prices {book.version}: qwen3-coder-plus intl from ")
    assert e.basis.endswith("tier >32000")


def test_exactly_32000_input_tokens_stays_in_the_lower_tier(book):
    lower = est(book, input_tokens=32_000, output_tokens=2_000)
    assert lower.cost == Decimal("0.042")  # 32k × $1 + 2k × $5
    assert lower.tier_above is None
    upper = est(book, input_tokens=32_001, output_tokens=2_000)
    assert upper.cost == Decimal("0.0756018")  # 32,001 × $1.8 + 2k × $9
    assert upper.tier_above == 32_000


@pytest.mark.parametrize(
    ("tokens", "above", "cost"),
    [
        (128_000, 32_000, "0.2484"),  # 128k × 1.8 + 2k × 9
        (128_001, 128_000, "0.414003"),  # × 3 and × 15
        (256_001, 256_000, "1.656006"),  # × 6 and × 60
    ],
)
def test_all_four_qwen3_coder_plus_bands(book, tokens, above, cost):
    e = est(book, input_tokens=tokens, output_tokens=2_000)
    assert (e.tier_above, e.cost) == (above, Decimal(cost))


def test_cache_reads_count_toward_the_tier_and_are_priced_at_the_cache_rate(book):
    # pricing.md §3: 10k uncached × 1.8 + 40k cached × 0.36 + 2k × 9 (per 1M) = $0.0504
    e = est(book, input_tokens=50_000, cache_read_tokens=40_000, output_tokens=2_000)
    assert e.cost == Decimal("0.0504")
    assert e.tier_above == 32_000


def test_cache_writes_are_priced_at_the_cache_write_rate(book):
    e = est(book, input_tokens=50_000, cache_write_tokens=10_000, output_tokens=2_000)
    assert e.cost == Decimal("0.1125")  # 40k × 1.8 + 10k × 2.25 + 2k × 9


def test_missing_cache_prices_fall_back_to_the_input_price(book):
    e = est(
        book,
        model="qwq-plus",
        input_tokens=10_000,
        cache_read_tokens=4_000,
        cache_write_tokens=1_000,
        output_tokens=1_000,
    )
    assert e.cost == Decimal("0.0104")  # 10k × 0.8 + 1k × 2.4: no cache prices for qwq-plus


def test_aggregate_records_choose_the_tier_from_the_average_prompt(book):
    two = est(book, input_tokens=70_000, output_tokens=2_000, requests=2)  # 35k per request
    assert two.tier_above == 32_000
    assert two.cost == Decimal("0.144")
    assert "average of 2 requests" in two.basis
    three = est(book, input_tokens=70_000, output_tokens=2_000, requests=3)  # 23,333 per request
    assert three.tier_above is None
    assert three.cost == Decimal("0.08")


def test_thinking_output_price_applies_when_the_record_has_reasoning_tokens(book):
    plain = est(book, model="qwen-plus", input_tokens=10_000, output_tokens=1_000)
    thinking = est(book, model="qwen-plus", input_tokens=10_000, output_tokens=1_000, reasoning_tokens=600)
    assert plain.cost == Decimal("0.0052")  # 10k × 0.4 + 1k × 1.2
    assert thinking.cost == Decimal("0.008")  # all 1k output at the thinking price 4
    assert thinking.basis.endswith("thinking output")
    zero = est(book, model="qwen-plus", input_tokens=10_000, output_tokens=1_000, reasoning_tokens=0)
    assert zero.cost == plain.cost
    long = est(book, model="qwen-plus", input_tokens=300_000, output_tokens=1_000, reasoning_tokens=5)
    assert long.cost == Decimal("0.372")  # >256k tier: 300k × 1.2 + 1k × 12 (tier thinking price)


def test_thinking_is_ignored_where_the_model_has_no_thinking_price(book):
    a = est(book, input_tokens=1_000, output_tokens=1_000)
    b = est(book, input_tokens=1_000, output_tokens=1_000, reasoning_tokens=900)
    assert a.cost == b.cost == Decimal("0.006")


# ---- regions ----------------------------------------------------------------------------------------


def test_qwen_beijing_is_priced_in_cny_from_the_china_table(book):
    e = est(book, provider="qwen-beijing", input_tokens=50_000, output_tokens=2_000)
    assert e.cost == Decimal("0.348")  # ¥6 / ¥24 per 1M in the 32k–128k band (pricing.md §3)
    assert e.currency == "CNY"
    assert " cn from " in e.basis


@pytest.mark.parametrize("provider", ["qwen", "qwen-singapore", "qwen-virginia", "QWEN", "dashscope-intl",
                                      "qwen-vl-singapore"])  # the DashScope vision log's label
def test_international_labels_share_the_usd_table(book, provider):
    e = est(book, provider=provider, input_tokens=50_000, output_tokens=2_000)
    assert (e.cost, e.currency) == (Decimal("0.108"), "USD")


@pytest.mark.parametrize("provider", ["qwen-cn", "dashscope-cn", "qwen-beijing"])
def test_china_labels_use_cny(book, provider):
    assert est(book, provider=provider, input_tokens=1, output_tokens=0).currency == "CNY"


def test_no_silent_fallback_to_another_region_or_currency(book):
    # qwen3.6-plus has an international price but no bundled China-mainland price
    assert est(book, model="qwen3.6-plus", provider="qwen", input_tokens=1_000, output_tokens=1) is not None
    assert (
        est(book, model="qwen3.6-plus", provider="qwen-beijing", input_tokens=1_000, output_tokens=1) is None
    )
    # unknown provider labels have no region; OpenRouter has no bundled prices
    assert est(book, provider="some-proxy", input_tokens=1_000, output_tokens=1) is None
    assert est(book, provider="openrouter", input_tokens=1_000, output_tokens=1) is None


def test_huawei_maas_prices_are_converted_from_per_1k(book):
    e = est(book, model="Qwen3-32B", provider="huawei-maas", input_tokens=5_000, output_tokens=2_000)
    assert e.cost == Decimal("0.003506")  # $0.000270 / $0.001078 per 1K
    assert e.currency == "USD"
    assert est(
        book, model="deepseek-v3.1", provider="huawei-maas", input_tokens=3_000_000, output_tokens=7_000_000
    ).cost == Decimal("12.936")  # the price page's own example
    assert book.estimate(model=None, provider="huawei-maas", day=DAY, input_tokens=5, output_tokens=5) is None


def test_regions_come_from_the_plugins(book):
    assert {r: (book.regions[r].currency, book.regions[r].plugin) for r in book.regions} == {
        "intl": ("USD", "alibaba-prices"), "cn": ("CNY", "alibaba-prices"),
        "huawei-maas": ("USD", "huawei-maas"), "huawei-maas-cn": ("CNY", "huawei-maas"),
        "openrouter": ("USD", "openrouter"),
    }
    # the most specific label wins; a label extending a known one with "-" shares its region
    assert [book.region_for(p) for p in ("qwen-cn-north", "qwen-new-region", "dashscope-cn", "huawei-maas-cn",
                                         "huawei-maas-hk", "qwenx", "")] == [
        "cn", "intl", "cn", "huawei-maas-cn", "huawei-maas", None, None]


# ---- names ------------------------------------------------------------------------------------------


def test_unknown_model_is_unpriced_never_zero(book):
    assert est(book, model="qwen-coder-plus", input_tokens=1_000, output_tokens=1_000) is None
    assert est(book, model="qwen3-vl-max", input_tokens=1_000, output_tokens=1_000) is None
    assert est(book, model="", input_tokens=1_000, output_tokens=1_000) is None
    assert est(book) is None  # no token counts at all


def test_zero_tokens_of_a_known_model_cost_zero(book):
    assert est(book, input_tokens=0, output_tokens=0).cost == Decimal(0)


def test_name_matching_is_exact_then_case_insensitive_then_aliases_without_guessing(book):
    assert est(book, model="QWEN3-Coder-Plus", input_tokens=50_000, output_tokens=2_000).cost == Decimal(
        "0.108"
    )
    alias = est(book, model="qwen-plus-latest", input_tokens=10_000, output_tokens=1_000)
    assert alias.cost == Decimal("0.0052")
    assert "as alias qwen-plus-latest" in alias.basis
    for guess in ("qwen3-coder-plus-preview", "qwen/qwen3-coder-plus", "qwen3-coder", "coder-model"):
        assert est(book, model=guess, input_tokens=1_000, output_tokens=1) is None


def test_every_model_and_alias_in_the_tsv_sample_is_priced(book, samples):
    expected = json.loads((samples / "dashscope" / "qwen-usage.tsv.expected.json").read_text())
    day = date.fromisoformat(expected["args"]["start"])
    for model, price in expected["prices_usd_per_million"].items():
        # 1,000 tokens, so no context tier applies: cost × 1000 is the base price per 1M
        e = est(book, model=model, provider="qwen-singapore", day=day, input_tokens=1_000, output_tokens=0)
        assert (e.cost * 1000, e.currency) == (Decimal(str(price["input"])), "USD"), model
        out = est(book, model=model, provider="qwen-singapore", day=day, input_tokens=0, output_tokens=1_000)
        assert out.cost * 1000 == Decimal(str(price["output"])), model
        cn = est(book, model=model, provider="qwen-beijing", day=day, input_tokens=1, output_tokens=1)
        assert cn.currency == "CNY", model


# ---- dates ------------------------------------------------------------------------------------------


def test_bundled_history_prices_each_day_at_the_price_then_in_force(book):
    # deepseek-v4-flash-0731 on DashScope intl: $0.2/$0.4, then $0.44/$1.32 from 2026-08-16 (documented)
    before = est(
        book,
        model="deepseek-v4-flash-0731",
        day=date(2026, 8, 15),
        input_tokens=1_000_000,
        output_tokens=1_000_000,
    )
    after = est(
        book,
        model="deepseek-v4-flash-0731",
        day=date(2026, 8, 16),
        input_tokens=1_000_000,
        output_tokens=1_000_000,
    )
    assert (before.cost, after.cost) == (Decimal("0.6"), Decimal("1.76"))
    assert "from 2026-08-16" in after.basis


def test_days_before_the_first_record_use_the_earliest_known_price(book):
    e = est(book, day=date(2025, 7, 22), input_tokens=50_000, output_tokens=2_000)
    assert e.cost == Decimal("0.108")
    assert "(earliest known price)" in e.basis


def test_datetimes_are_taken_as_their_utc_day(book):
    at = datetime(2026, 8, 16, 1, 0, tzinfo=UTC)
    e = book.estimate(
        model="deepseek-v4-flash-0731", provider="qwen", day=at, input_tokens=1_000_000, output_tokens=0
    )
    assert e.cost == Decimal("0.44")


def test_mid_month_override_prices_earlier_days_at_the_old_price(book):
    new = PriceBook.load(
        overrides={"qwen3-coder-plus": {"from": date(2026, 3, 15), "input": 2, "output": 10}}
    )
    old_day = new.estimate(
        model="qwen3-coder-plus",
        provider="qwen",
        day=date(2026, 3, 14),
        input_tokens=10_000,
        output_tokens=1_000,
    )
    new_day = new.estimate(
        model="qwen3-coder-plus",
        provider="qwen",
        day=date(2026, 3, 15),
        input_tokens=10_000,
        output_tokens=1_000,
    )
    assert old_day.cost == Decimal("0.015")  # registered $1 / $5
    assert old_day.basis.startswith("alibaba-prices ")
    assert new_day.cost == Decimal("0.03")  # override $2 / $10
    assert new_day.basis == "config: qwen3-coder-plus any provider from 2026-03-15"


def test_dated_override_list_for_a_model_unknown_to_the_table():
    book = PriceBook.load(
        overrides={
            "my-model": [
                {"input": "1", "output": "2"},
                {"from": "2026-03-16", "input": "3", "output": "4"},
            ]
        }
    )

    def cost(day):
        return book.estimate(
            model="my-model", provider="anything", day=day, input_tokens=1_000_000, output_tokens=1_000_000
        ).cost

    assert cost(date(2026, 3, 1)) == Decimal(3)
    assert cost(date(2026, 3, 15)) == Decimal(3)
    assert cost(date(2026, 3, 16)) == Decimal(7)
    assert cost(date(2026, 3, 31)) == Decimal(7)


def test_override_from_a_date_does_not_price_earlier_days_of_an_unknown_model():
    book = PriceBook.load(overrides={"my-model": {"from": date(2026, 3, 15), "input": 1, "output": 1}})
    assert (
        book.estimate(model="my-model", provider="x", day=date(2026, 3, 14), input_tokens=5, output_tokens=5)
        is None
    )


# ---- overrides --------------------------------------------------------------------------------------


def test_overrides_beat_bundled_prices():
    book = PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 2, "source": "our contract"}})
    e = book.estimate(
        model="qwen-max", provider="qwen", day=DAY, input_tokens=1_000_000, output_tokens=1_000_000
    )
    assert (e.cost, e.currency) == (Decimal(3), "USD")
    assert e.basis == "config: qwen-max any provider"
    assert e.entry.source == "our contract"
    # the override of the canonical model also covers its alias
    alias = book.estimate(
        model="qwen-max-latest", provider="qwen", day=DAY, input_tokens=1_000_000, output_tokens=0
    )
    assert alias.cost == Decimal(1)


def test_provider_and_region_scoped_overrides():
    book = PriceBook.load(
        overrides={
            "qwen-max": [
                {
                    "provider": "qwen-beijing",
                    "input": 2,
                    "output": 8,
                },  # currency defaults to the region's: CNY
                {
                    "region": "intl",
                    "input": 1,
                    "output": 4,
                    "tiers": [{"above": 1000, "input": 10, "output": 40}],
                },
            ]
        }
    )

    def at(provider, tokens=1_000):
        return book.estimate(
            model="qwen-max", provider=provider, day=DAY, input_tokens=tokens, output_tokens=0
        )

    assert (at("qwen-beijing").cost, at("qwen-beijing").currency) == (Decimal("0.002"), "CNY")
    assert at("qwen-cn").entry.origin == "plugin"  # another China label: the registered CNY price
    assert (at("qwen").cost, at("qwen").currency) == (Decimal("0.001"), "USD")
    assert at("qwen", 1_001).cost == Decimal("0.01001")  # override tier
    assert at("openrouter") is None


def test_override_with_float_prices_is_exact():
    book = PriceBook.load(overrides={"m": {"input": 0.1, "output": 0.2}})
    e = book.estimate(model="m", provider="p", day=DAY, input_tokens=3, output_tokens=0)
    assert e.cost == Decimal("3E-7")
    assert str(e.cost) == "3E-7"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"qwen-max": {"input": "abc", "output": 1}}, 'prices."qwen-max".input: expected a number'),
        ({"qwen-max": {"input": True, "output": 1}}, 'prices."qwen-max".input: expected a number'),
        ({"qwen-max": {"input": 1, "output": -1}}, 'prices."qwen-max".output: must not be negative'),
        ({"qwen-max": {"input": 1}}, 'prices."qwen-max".output: required'),
        ({"qwen-max": {"input": 1, "output": 1, "inptu": 2}}, 'prices."qwen-max".inptu: unknown key'),
        ({"qwen-max": {"input": 1, "output": 1, "from": "March"}}, 'prices."qwen-max".from: expected a date'),
        (
            {"qwen-max": {"input": 1, "output": 1, "currency": "dollars"}},
            'prices."qwen-max".currency: expected',
        ),
        (
            {"qwen-max": {"input": 1, "output": 1, "region": "eu"}},
            "prices.\"qwen-max\".region: unknown region 'eu'",
        ),
        (
            {"qwen-max": {"input": 1, "output": 1, "region": "cn", "provider": "qwen"}},
            'prices."qwen-max".region: set provider or region, not both',
        ),
        (
            {"qwen-max": {"input": 1, "output": 1, "tiers": [{"above": "32k", "input": 1, "output": 1}]}},
            'prices."qwen-max".tiers[0].above: expected a whole number',
        ),
        (
            {"qwen-max": {"input": 1, "output": 1, "tiers": [{"above": 32000, "input": 1}]}},
            'prices."qwen-max".tiers[0].output: required',
        ),
        (
            {
                "qwen-max": {
                    "input": 1,
                    "output": 1,
                    "tiers": [{"above": 32000, "input": 1, "output": 1, "x": 1}],
                }
            },
            'prices."qwen-max".tiers[0].x: unknown key',
        ),
        (
            {
                "qwen-max": {
                    "input": 1,
                    "output": 1,
                    "tiers": [{"above": 9, "input": 1, "output": 1}, {"above": 9, "input": 2, "output": 2}],
                }
            },
            'prices."qwen-max".tiers[1].above: tiers must be in increasing order',
        ),
        (
            {"qwen-max": {"input": 1, "output": 1, "tiers": [{"above": 9, "input": "x", "output": 1}]}},
            'prices."qwen-max".tiers[0].input: expected a number',
        ),
        (
            {"qwen-max": [{"input": 1, "output": 1}, {"input": 2, "output": 2}]},
            'prices."qwen-max"[1]: duplicates prices."qwen-max"[0]',
        ),
        (
            {"qwen-max": [{"input": 1, "output": "NaN"}]},
            'prices."qwen-max"[0].output: expected a finite number',
        ),
        ({"qwen-max": 1.6}, 'prices."qwen-max": expected a table of prices'),
        (
            {"qwen-max": {"input": 1, "output": 1, "from": datetime(2026, 3, 1, 12)}},
            'prices."qwen-max".from: expected a date',
        ),
    ],
)
def test_override_validation_names_the_exact_key(table, message):
    with pytest.raises(ConfigError) as info:
        validate_overrides(table)
    assert str(info.value).startswith(message)
    with pytest.raises(ConfigError):
        PriceBook.load(overrides=table)


def test_valid_overrides_pass_validation():
    validate_overrides(None)
    validate_overrides({})
    validate_overrides(
        {
            "qwen-max": {
                "input": 1.6,
                "output": "6.4",
                "cache_read": 0,
                "currency": "usd",
                "from": date(2026, 1, 1),
                "provider": "qwen",
                "thinking_output": 8,
            }
        }
    )


# ---- basis, listing, data -----------------------------------------------------------------------------


def test_basis_names_the_data_version_and_changes_with_overrides(book):
    assert book.basis == f"plugins {book.version}"
    a = PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 2}})
    b = PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 3}})
    assert a.basis.startswith(f"plugins {book.version}+config ")
    assert a.basis != b.basis
    assert a.basis == PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 2}}).basis


def test_rows_for_the_prices_command(book):
    rows = book.rows("qwen3-coder-plus", day=DAY)
    intl = next(r for r in rows if r["model"] == "qwen3-coder-plus" and r["region"] == "intl")
    assert intl["currency"] == "USD"
    assert (intl["input"], intl["output"], intl["cache_read"]) == (Decimal(1), Decimal(5), Decimal("0.2"))
    assert intl["tiers"].startswith(">32000: 1.8/9 cache 0.36")
    assert (intl["origin"], intl["plugin"]) == ("plugin", "alibaba-prices")
    assert intl["source"].startswith("https://")
    assert set(intl) >= {
        "model",
        "region",
        "currency",
        "valid_from",
        "input",
        "output",
        "cache_read",
        "cache_write",
        "thinking_output",
        "tiers",
        "source",
        "origin",
        "plugin",
    }
    assert any(r["region"] == "cn" and r["currency"] == "CNY" for r in rows)
    # aliases match the filter; history lists every dated entry
    assert [r["model"] for r in book.rows("qwen-turbo-latest", day=DAY)] == ["qwen-turbo", "qwen-turbo"]
    assert len(book.rows("deepseek-v4-flash-0731", history=True)) == 2
    assert len(book.rows("deepseek-v4-flash-0731", day=DAY)) == 1
    config = PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 2}}).rows("qwen-max", day=DAY)
    assert [(r["origin"], r["plugin"]) for r in config][0] == ("config", None)


def test_lookup_shows_the_price_that_would_be_used(book):
    [entry] = book.lookup("qwen3-coder-plus", provider="qwen-beijing", day=DAY)
    assert isinstance(entry, PriceEntry)
    assert (entry.region, entry.currency, entry.input) == ("cn", "CNY", Decimal(4))
    assert {e.region for e in book.lookup("qwen-plus-latest", day=DAY)} == {"intl", "cn"}
    assert book.lookup("no-such-model") == []
    overridden = PriceBook.load(overrides={"qwen-max": {"region": "cn", "input": 1, "output": 2}})
    by_region = {e.region: e.origin for e in overridden.lookup("qwen-max", day=DAY)}
    assert by_region == {"cn": "config", "intl": "plugin"}


@pytest.mark.parametrize("path", list(TABLES))
def test_plugin_price_tables_are_complete_and_sourced(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == 1 and data["basis"]
    currencies = TABLES[path]
    for raw in data["entries"]:
        assert raw["region"] in currencies, raw
        assert raw["currency"] == currencies[raw["region"]], raw
        date.fromisoformat(raw["effective"])
        assert raw["source"].startswith("https://"), raw
        for key in ("input", "output", "cache_read", "cache_write", "reasoning"):
            if key in raw:
                assert isinstance(raw[key], str) and Decimal(raw[key]) >= 0, raw
        aboves = [t["above"] for t in raw.get("tiers", [])]
        assert aboves == sorted(set(aboves)), raw
    if "intl" not in currencies:
        return
    assert any("MIT License" in n and "Permission is hereby granted" in n for n in data["notices"])
    have = {(e["region"], e["model"]) for e in data["entries"]}
    for model in (
        "qwen3-coder-plus",
        "qwen3-coder-flash",
        "qwen-plus",
        "qwen-max",
        "qwen-turbo",
        "qwen-flash",
        "qwq-plus",
        "qwen3.5-plus",
        "qwen3-max",
        "qwen3-vl-plus",
    ):
        assert ("intl", model) in have and ("cn", model) in have, model


def test_estimates_are_exact_decimals(book):
    total = sum(
        (est(book, model="qwen-flash", input_tokens=1, output_tokens=1).cost for _ in range(1_000)),
        Decimal(0),
    )
    assert total == Decimal("0.00045")  # 1,000 × ($0.05 + $0.4) per 1M, no float drift
    assert isinstance(est(book, input_tokens=1, output_tokens=1).cost, Decimal)


def test_estimate_record_uses_the_records_fields_and_utc_day(book):
    from tokenmeter import UsageRecord

    rec = UsageRecord(
        key="k1",
        start=datetime(2026, 11, 20, 23, 30, tzinfo=UTC),
        provider="qwen",
        model="qwen3-coder-plus",
        requests=1,
        input_tokens=50_000,
        cache_read_tokens=40_000,
        output_tokens=2_000,
    )
    assert book.estimate_record(rec).cost == Decimal("0.0504")
    assert book.estimate_record(rec.replace(model=None)) is None


def test_prices_with_many_decimals_stay_exact():
    book = PriceBook.load(overrides={"m": {"input": "0.0000000000001", "output": "1.0000000000001"}})
    e = book.estimate(model="m", provider="p", day=DAY, input_tokens=7, output_tokens=3)
    assert e.cost == Decimal("0.000003000000000001")  # (7 × 1e-13 + 3 × 1.0000000000001) / 1M


CONFIG_EXAMPLE = """
[prices."qwen-max"]
input = 1.6
output = 6.4
cache_read = 0.32
source = "our contract"

[prices."my-finetune"]
input = "0.5"
output = "2"
region = "cn"
tiers = [{above = 32000, input = 1, output = 4, cache_read = 0.2}]

[[prices."qwen3-coder-plus"]]
provider = "qwen"
from = 2026-03-15
input = 1.5
output = 7.5
tiers = [{above = 32000, input = 2.5, output = 12}]
"""


def test_the_documented_toml_example_loads():
    import tomllib

    table = tomllib.loads(CONFIG_EXAMPLE)["prices"]
    validate_overrides(table)
    book = PriceBook.load(overrides=table)
    e = book.estimate(
        model="qwen3-coder-plus",
        provider="qwen",
        day=date(2026, 3, 20),
        input_tokens=50_000,
        output_tokens=2_000,
    )
    assert e.cost == Decimal("0.149")  # 50k × 2.5 + 2k × 12
    assert e.basis == "config: qwen3-coder-plus provider qwen from 2026-03-15, tier >32000"
    ft = book.estimate(
        model="my-finetune",
        provider="qwen-beijing",
        day=DAY,
        input_tokens=40_000,
        cache_read_tokens=30_000,
        output_tokens=1_000,
    )
    assert (ft.cost, ft.currency) == (Decimal("0.02"), "CNY")  # 10k × 1 + 30k × 0.2 + 1k × 4


# ---- currencies never mixed with regions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"region": "cn", "currency": "USD"}, 'prices."qwen-max".currency: "USD" does not match region cn (CNY)'),
        (
            {"provider": "qwen-beijing", "currency": "usd"},
            'prices."qwen-max".currency: "usd" does not match region cn (CNY) of provider qwen-beijing',
        ),
    ],
)
def test_override_currency_must_match_its_region(entry, message):
    with pytest.raises(ConfigError) as info:
        validate_overrides({"qwen-max": {"input": 1, "output": 2, **entry}})
    assert str(info.value).startswith(message)


def test_an_override_never_prices_a_region_of_another_currency():
    usd = PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 2}})  # USD, any provider

    def at(book, provider):
        return book.estimate(
            model="qwen-max", provider=provider, day=DAY, input_tokens=1_000_000, output_tokens=0
        )

    assert (at(usd, "qwen").cost, at(usd, "qwen").currency) == (Decimal(1), "USD")
    assert (at(usd, "some-proxy").cost, at(usd, "some-proxy").currency) == (Decimal(1), "USD")
    china = at(usd, "qwen-beijing")  # a CNY region keeps its CNY price, never a USD one
    assert (china.cost, china.currency, china.entry.origin) == (Decimal("2.4"), "CNY", "plugin")
    cny = PriceBook.load(overrides={"qwen-max": {"input": 1, "output": 2, "currency": "CNY"}})
    assert (at(cny, "qwen-beijing").currency, at(cny, "qwen-beijing").entry.origin) == ("CNY", "config")
    assert (at(cny, "qwen").currency, at(cny, "qwen").entry.origin) == ("USD", "plugin")


# ---- registered prices (the register_prices contract) --------------------------------------------


def test_price_entry_coerces_and_validates_what_plugins_pass():
    from tokenmeter import Tier

    e = PriceEntry(model="m", provider="acme", currency="usd", input="0.50", output=2, effective="2026-01-01",
                   tiers=[{"above": 1000, "input": "1", "output": "4", "reasoning": "5"}])
    assert (e.input, e.output, e.currency, e.effective) == (Decimal("0.50"), Decimal(2), "USD", date(2026, 1, 1))
    assert e.tiers == (Tier(above=1000, input=Decimal(1), output=Decimal(4), reasoning=Decimal(5)),)
    for bad, message in [
        ({"input": 0.1}, "input must be a str, int or Decimal"),  # floats are not exact
        ({"input": "-1"}, "input must be a finite number >= 0"),
        ({"currency": "dollars"}, "currency must be an ISO 4217 code"),
        ({"effective": "March"}, "effective must be a date"),
        ({"provider": ""}, "provider must be a non-empty label or None"),
        ({"tiers": [{"above": 9, "input": 1, "output": 1}, {"above": 5, "input": 1, "output": 1}]},
         "tiers must be in increasing order"),
    ]:
        with pytest.raises(ValueError, match=message):
            PriceEntry(**{"model": "m", "provider": "acme", "currency": "USD", "input": "1", "output": "1", **bad})


def test_registered_any_provider_prices_keep_to_their_currency():
    from tokenmeter import PriceRegion

    book = PriceBook(
        [PriceEntry(model="open-1", provider=None, currency="USD", input="1", output="1"),
         PriceEntry(model="open-1", provider="acme", currency="USD", input="2", output="2"),
         PriceEntry(model="other", provider="acme-cn", currency="CNY", input="3", output="3")],
        regions=[PriceRegion(id="acme-china", currency="CNY", providers=("acme-cn",))],
    )

    def cost(provider):
        e = book.estimate(model="open-1", provider=provider, day=DAY, input_tokens=1_000_000, output_tokens=0)
        return e and (e.cost, e.currency, e.entry.scope)

    assert cost("acme") == (Decimal(2), "USD", "acme")  # its own region's price first
    assert cost("acme-us") == (Decimal(2), "USD", "acme")  # "acme" covers "acme-us"
    assert cost("unknown-proxy") == (Decimal(1), "USD", "any provider")
    assert cost("acme-cn") is None  # a USD price never prices the CNY region
    assert cost("acme-cn-north") is None  # the most specific label wins: still the CNY region
    assert book.region_for("ACME-CN-north") == "acme-china"
