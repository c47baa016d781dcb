"""UsageRecord / QuotaSnapshot validation (DESIGN §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokenmeter import InvalidRecord, QuotaSnapshot, UsageRecord
from tokenmeter.testing import check_records

T = datetime(2026, 3, 1, tzinfo=UTC)


def bad(field: str, **kw) -> InvalidRecord:
    values = {"key": "k", "start": T, "provider": "qwen"}
    values.update(kw)
    with pytest.raises(InvalidRecord) as info:
        UsageRecord(**values)
    assert info.value.field == field, str(info.value)
    assert field in str(info.value)
    return info.value


def test_minimal_record_defaults():
    r = UsageRecord(key="k", start=T, provider="qwen")
    assert r.end == T  # an event: end defaults to start
    assert r.requests is None and r.input_tokens is None and r.cost is None  # None = not reported
    assert r.details == {}


@pytest.mark.parametrize(
    "name", ["requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
             "cache_write_tokens", "reasoning_tokens", "total_tokens"]
)
def test_negative_and_bool_counts_rejected(name):
    err = bad(name, **{name: -1})
    assert "negative" in err.message
    err = bad(name, **{name: True})
    assert "bool" in err.message
    bad(name, **{name: 1.5})


def test_zero_counts_are_fine():
    r = UsageRecord(key="k", start=T, provider="p", requests=0, input_tokens=0, output_tokens=0)
    assert r.requests == 0


def test_naive_datetimes_rejected():
    bad("start", start=datetime(2026, 3, 1))
    bad("end", end=datetime(2026, 3, 2))
    bad("start", start="2026-03-01")


def test_end_before_start():
    err = bad("end", end=T - timedelta(seconds=1))
    assert "before start" in err.message


def test_inclusive_token_subsets():
    bad("cache_read_tokens", input_tokens=10, cache_read_tokens=11)
    bad("cache_write_tokens", input_tokens=10, cache_write_tokens=11)
    bad("reasoning_tokens", output_tokens=5, reasoning_tokens=6)
    bad("cache_write_tokens", input_tokens=10, cache_read_tokens=6, cache_write_tokens=5)
    # subsets equal to the whole are fine, and unknown wholes do not block
    UsageRecord(key="k", start=T, provider="p", input_tokens=10, cache_read_tokens=10, output_tokens=3,
                reasoning_tokens=3)
    UsageRecord(key="k", start=T, provider="p", cache_read_tokens=10, reasoning_tokens=3)


def test_errors_not_more_than_requests():
    bad("errors", requests=1, errors=2)


def test_cost_rules():
    bad("currency", cost=Decimal("1"), cost_kind="billed")  # no currency
    bad("currency", cost=Decimal("1"), currency="usd", cost_kind="billed")  # not ISO upper
    bad("currency", cost=Decimal("1"), currency="DOLLAR", cost_kind="billed")
    bad("cost_kind", cost=Decimal("1"), currency="USD")  # no kind
    bad("cost_kind", cost=Decimal("1"), currency="USD", cost_kind="estimated")  # host-only kind
    bad("cost_kind", cost_kind="billed")  # kind without a cost
    bad("currency", currency="us")
    bad("cost", cost=1.5, currency="USD", cost_kind="billed")  # floats lose cents
    bad("cost", cost=Decimal("NaN"), currency="USD", cost_kind="billed")
    ok = UsageRecord(key="k", start=T, provider="p", cost=Decimal("-0.5"), currency="CNY", cost_kind="logged")
    assert ok.cost == Decimal("-0.5")  # refunds / credits may be negative
    as_int = UsageRecord(key="k", start=T, provider="p", cost=2, currency="USD", cost_kind="billed")
    assert isinstance(as_int.cost, Decimal) and as_int.cost == 2


def test_strings_and_details():
    bad("key", key="")
    bad("provider", provider="")
    bad("model", model="")
    bad("account", account=3)
    bad("details", details=[1, 2])
    bad("details", details="x")


def test_replace_validates_again():
    r = UsageRecord(key="k", start=T, provider="qwen", input_tokens=10, output_tokens=2)
    r2 = r.replace(model="m", input_tokens=20)
    assert (r2.model, r2.input_tokens, r2.output_tokens, r2.key) == ("m", 20, 2, "k")
    assert r.input_tokens == 10  # frozen original unchanged
    with pytest.raises(InvalidRecord):
        r.replace(input_tokens=-1)
    with pytest.raises(AttributeError):
        r.model = "x"  # type: ignore[misc]


def test_invalid_record_names_plugin():
    err = InvalidRecord("input_tokens", "must not be negative").with_plugin("fake")
    assert str(err) == "invalid record field 'input_tokens' (from fake): must not be negative"
    assert isinstance(err, ValueError)


def test_quota_snapshot_validation():
    s = QuotaSnapshot(provider="qwen", name="free-tier/qwen3.6-plus", unit="tokens", observed_at=T,
                      used=5, remaining=Decimal("-1"), total=Decimal("10"))
    assert s.used == Decimal(5) and isinstance(s.used, Decimal)
    assert s.remaining == Decimal(-1)  # overrun allowed on remaining only
    for kw, field in [
        ({"used": Decimal(-1)}, "used"),
        ({"total": Decimal(-1)}, "total"),
        ({"observed_at": datetime(2026, 3, 1)}, "observed_at"),
        ({"resets_at": datetime(2026, 3, 1)}, "resets_at"),
        ({"name": ""}, "name"),
        ({"unit": None}, "unit"),
        ({"details": []}, "details"),
        ({"used": 1.5}, "used"),
    ]:
        values = {"provider": "qwen", "name": "credits", "unit": "USD", "observed_at": T, **kw}
        with pytest.raises(InvalidRecord) as info:
            QuotaSnapshot(**values)
        assert info.value.field == field


def test_check_records_catches_duplicate_keys():
    a = UsageRecord(key="k", start=T, provider="p", account="a")
    check_records([a, a.replace(account="b")])
    with pytest.raises(AssertionError, match="duplicate key"):
        check_records([a, a.replace(requests=3)])
