from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tokenmeter import ConfigError, QuotaSnapshot
from tokenmeter.budgets import (
    Budget,
    budget_window,
    evaluate,
    exit_code,
    format_amount,
    parse_budgets,
    period_key,
    quota_statuses,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # a Sunday


def test_parse_token_and_money_budgets_with_defaults():
    test, money = parse_budgets({
        "test": {"limit": 1_000_000, "unit": "tokens"},
        "monthly": {"limit": 25, "currency": "usd", "period": "week", "model": "Qwen", "warn": 0.6,
                    "critical": 0.9},
    })
    assert test == Budget(name="test", limit=Decimal(1_000_000), unit="tokens", period="month")
    assert (test.warn, test.critical, test.measure, test.unit_label) == (Decimal("0.5"), Decimal("0.8"),
                                                                         "tokens", "tokens")
    assert money.currency == "USD" and money.measure == "cost" and money.period == "week"
    assert (money.warn, money.critical) == (Decimal("0.6"), Decimal("0.9"))
    assert money.filters == {"model": "Qwen"}
    assert money.matches(provider="qwen", model="qwen3-coder-plus")
    assert not money.matches(provider="qwen", model="glm-4")
    assert not money.matches(provider="qwen", model=None)


def test_parse_fixed_window_credit():
    (credit,) = parse_budgets({"welcome": {"limit": 70_000_000, "unit": "tokens", "from": date(2026, 2, 1),
                                           "to": "2026-12-31", "provider": "qwen"}})
    assert (credit.period, credit.start, credit.end) == (None, date(2026, 2, 1), date(2026, 12, 31))
    assert budget_window(credit, NOW) == (date(2026, 2, 1), date(2026, 12, 31))
    assert period_key(credit, budget_window(credit, NOW)) == "2026-02-01..2026-12-31"
    status = evaluate(credit, 56_000_000, window=budget_window(credit, NOW))
    assert (status.percent, status.level) == (Decimal("80.00"), "critical")
    assert status.remaining == 14_000_000
    # open-ended: runs until today, and its key does not move from day to day
    (open_credit,) = parse_budgets({"c": {"limit": 5, "currency": "USD", "from": "2026-03-01"}})
    assert budget_window(open_credit, NOW) == (date(2026, 3, 1), date(2026, 3, 15))
    assert evaluate(open_credit, 1, window=budget_window(open_credit, NOW)).period_key == "2026-03-01.."


@pytest.mark.parametrize(
    ("used", "percent", "level", "code"),
    [(490_000, "49.00", "ok", 0), (499_999, "49.99", "ok", 0), (500_000, "50.00", "warning", 1),
     (790_000, "79.00", "warning", 1), (800_000, "80.00", "critical", 2),
     (1_000_000, "100.00", "critical", 2), (1_200_000, "120.00", "critical", 2)],
)
def test_token_budget_levels_and_exit_codes(used, percent, level, code):
    (budget,) = parse_budgets({"test": {"limit": 1_000_000, "unit": "tokens"}})
    status = evaluate(budget, used, window=budget_window(budget, NOW))
    assert (str(status.percent), status.level, exit_code([status])) == (percent, level, code)
    assert status.remaining == 1_000_000 - used
    assert status.period_key == "2026-03-01..2026-03-31"


@pytest.mark.parametrize(
    ("used", "level"),
    [("4.90", "ok"), ("5.00", "warning"), ("7.90", "warning"), ("8.00", "critical"), ("10", "critical")],
)
def test_money_budget_levels(used, level):
    (budget,) = parse_budgets({"spend": {"limit": "10.00", "currency": "USD"}})
    status = evaluate(budget, Decimal(used))
    assert status.level == level and status.unit == "USD" and status.is_money


def test_exit_code_highest_level_wins():
    (b,) = parse_budgets({"b": {"limit": 100, "unit": "requests"}})
    ok, warn, crit = (evaluate(b, n) for n in (10, 60, 90))
    assert exit_code([]) == 0
    assert exit_code([ok, ok]) == 0
    assert exit_code([ok, warn]) == 1
    assert exit_code([warn, crit, ok]) == 2


def test_windows_in_a_zone():
    def window(period, now=NOW, tz="UTC"):
        (b,) = parse_budgets({"b": {"limit": 1, "unit": "tokens", "period": period}})
        return budget_window(b, now, tz)

    assert window("day") == (date(2026, 3, 15), date(2026, 3, 15))
    assert window("week") == (date(2026, 3, 9), date(2026, 3, 15))  # ISO week: Monday..Sunday
    assert window("month") == (date(2026, 3, 1), date(2026, 3, 31))
    assert window("quarter") == (date(2026, 1, 1), date(2026, 3, 31))
    assert window("year") == (date(2026, 1, 1), date(2026, 12, 31))
    assert window("month", datetime(2026, 12, 10, tzinfo=UTC)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert window("quarter", datetime(2026, 11, 2, tzinfo=UTC)) == (date(2026, 10, 1), date(2026, 12, 31))
    # 23:30 UTC on Sunday is already Monday in Tokyo: a new week there
    late = datetime(2026, 3, 15, 23, 30, tzinfo=UTC)
    assert window("week", late, "Asia/Tokyo") == (date(2026, 3, 16), date(2026, 3, 22))
    assert window("month", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "Asia/Tokyo")[0] == date(2026, 4, 1)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"limit": 1, "unit": "tokens", "warn": 1.5}, "budgets.test.warn: must be between 0 and 1"),
        ({"limit": 1, "unit": "tokens", "critical": 0}, "budgets.test.critical: must be between 0 and 1"),
        ({"limit": 1, "unit": "tokens", "warn": 0.9, "critical": 0.8}, "budgets.test.critical: must be gr"),
        ({"unit": "tokens"}, "budgets.test.limit: missing"),
        ({"limit": -5, "unit": "tokens"}, "budgets.test.limit: must be greater than 0"),
        ({"limit": "lots", "unit": "tokens"}, "budgets.test.limit: expected a number"),
        ({"limit": True, "unit": "tokens"}, "budgets.test.limit: expected a number"),
        ({"limit": 1}, "budgets.test.unit: missing"),
        ({"limit": 1, "unit": "USD"}, 'for money use currency = "..." instead'),
        ({"limit": 1, "unit": "tokens", "currency": "USD"}, "budgets.test.unit: set either currency"),
        ({"limit": 1, "currency": "dollars"}, "budgets.test.currency: expected an ISO 4217 code"),
        ({"limit": 1, "unit": "tokens", "period": "fortnight"}, "budgets.test.period: must be one of day"),
        ({"limit": 1, "unit": "tokens", "period": "month", "from": "2026-01-01"}, "budgets.test.period: set"),
        ({"limit": 1, "unit": "tokens", "to": "2026-01-01"}, "budgets.test.from: missing"),
        ({"limit": 1, "unit": "tokens", "from": "yesterday"}, "budgets.test.from: expected a date"),
        ({"limit": 1, "unit": "tokens", "from": "2026-02-01", "to": "2026-01-01"}, "budgets.test.to: must"),
        ({"limit": 1, "unit": "tokens", "modle": "qwen"}, "budgets.test.modle: unknown key"),
        ({"limit": 1, "unit": "tokens", "model": ""}, "budgets.test.model: expected a non-empty string"),
    ],
)
def test_config_errors_name_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        parse_budgets({"test": table})
    assert message in str(info.value)
    assert info.value.exit_code == 4


def test_budgets_must_be_tables():
    with pytest.raises(ConfigError, match=r"budgets.test: expected a table"):
        parse_budgets({"test": 5})
    assert parse_budgets(None) == [] == parse_budgets({})


def test_quota_snapshots_become_statuses():
    resets = datetime(2026, 3, 15, 17, 0, 12, tzinfo=UTC)
    snaps = [
        QuotaSnapshot(provider="qwen", name="free-tier/qwen3.6-plus", unit="tokens", observed_at=NOW,
                      used=Decimal(600_000), remaining=Decimal(400_000), total=Decimal(1_000_000)),
        {"provider": "qwen", "account": "main", "name": "coding-plan/per_5h", "unit": "requests",
         "used": None, "remaining": "150", "total": "1200", "resets_at": resets.isoformat()},
        {"provider": "openrouter", "name": "credits", "unit": "USD", "used": "4.5", "remaining": "0.5",
         "total": None},
        {"provider": "openrouter", "name": "balance-only", "unit": "USD", "remaining": "3"},  # skipped
    ]
    free, plan, credits = quota_statuses(snaps)
    assert (free.name, free.level, free.percent, free.kind) == ("qwen:free-tier/qwen3.6-plus", "warning",
                                                                Decimal("60.00"), "quota")
    assert free.period_key == "total 1000000"
    assert (plan.name, plan.used, plan.level, plan.percent) == ("qwen:main:coding-plan/per_5h", Decimal(1050),
                                                                "critical", Decimal("87.50"))
    assert plan.period_key == "resets 2026-03-15T17" and plan.resets_at == resets
    assert (credits.limit, credits.level, credits.unit) == (Decimal(5), "critical", "USD")
    assert exit_code([free]) == 1 and exit_code([free, plan]) == 2


def test_status_to_dict_is_json_ready():
    (b,) = parse_budgets({"test": {"limit": 1_000_000, "unit": "tokens"}})
    d = evaluate(b, 812_000, window=budget_window(b, NOW)).to_dict()
    assert d == {
        "name": "test", "kind": "budget", "provider": None, "used": "812000", "limit": "1000000",
        "remaining": "188000", "percent": "81.20", "level": "critical", "unit": "tokens", "warn": "0.5",
        "critical": "0.8",
        "period": {"from": "2026-03-01", "to": "2026-03-31", "key": "2026-03-01..2026-03-31"},
        "resets_at": None,
    }


def test_format_amount():
    assert format_amount(Decimal(812000), "tokens") == "812,000 tokens"
    assert format_amount(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert format_amount(Decimal("0.007726"), "USD") == "0.007726 USD"
    assert format_amount(None, "USD") == "-"


def test_quota_snapshot_past_its_reset_is_skipped():
    # a coding-plan window observed at 90 % that reset at 05:00: at 12:00 it says nothing any more,
    # and must not keep `tokenmeter budget` at exit 2 until the next fetch
    snap = {"provider": "qwen", "name": "coding-plan/per_5h", "unit": "requests", "used": "900",
            "remaining": "100", "total": "1000", "resets_at": "2026-03-15T05:00:00Z"}
    assert [s.level for s in quota_statuses([snap])] == ["critical"]  # no clock given: kept
    assert quota_statuses([snap], now=NOW) == []
    later = dict(snap, resets_at="2026-03-15T17:00:00Z")
    assert [s.name for s in quota_statuses([later], now=NOW)] == ["qwen:coding-plan/per_5h"]


def test_status_to_dict_never_uses_exponent_notation():
    # summed nano-unit costs come back as Decimal("1.900000000") or tiny values; str() would give
    # "5.00E-7" (and normalize() "1.9E+5"): JSON decimal strings are plain, as in reports
    (b,) = parse_budgets({"spend": {"limit": 10, "currency": "USD"}})
    d = evaluate(b, Decimal("0.000000500")).to_dict()
    assert (d["used"], d["limit"], d["remaining"]) == ("0.0000005", "10", "9.9999995")
    d = evaluate(b, Decimal("1.900000000")).to_dict()
    assert (d["used"], d["remaining"]) == ("1.9", "8.1")
    (t,) = parse_budgets({"t": {"limit": 1_000_000, "unit": "tokens"}})
    assert evaluate(t, Decimal("190000")).to_dict()["used"] == "190000"
