"""Usage reports: group-by, filters, currencies, cost kinds, unpriced usage, ledger/log overlap, totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from helpers_host import rec

from tokenmeter import ConfigError
from tokenmeter.periods import Period
from tokenmeter.reports import Filters, parse_group_by, usage_report
from tokenmeter.store import Store

MARCH = Period(date(2026, 3, 1), date(2026, 3, 31), UTC)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


@dataclass
class Est:
    cost: Decimal
    currency: str
    basis: str = "test-prices"


def per_token_pricer(r):
    """A fake price table: 1e-6 USD per token, only for models starting with 'priced'."""
    if not (r.model or "").startswith("priced"):
        return None
    return Est(Decimal((r.input_tokens or 0) + (r.output_tokens or 0)) / Decimal(1_000_000), "USD")


@pytest.fixture
def store(any_store):
    return any_store  # SQLite and PostgreSQL (conftest.any_store)


def put(store, source, records, kind="log", pricer=None):
    """Store records as a fetch does: priced first, then the rollup refreshed for the reports."""
    session = store.session(source, kind)
    for r in records:
        session.add(r, pricer(r) if pricer and r.model else None)
    session.finish(None)
    store.refresh_rollup()


@pytest.fixture
def mixed(store):
    """Two log sources, several providers, models, accounts, projects and days."""
    put(store, "log-a", [
        rec("1", start=at(2), provider="qwen", model="qwen-plus", account="m1", project="/w/alpha",
            requests=1, input_tokens=100, output_tokens=10),
        rec("2", start=at(2), provider="qwen", model="qwen-max", account="m1", project="/w/beta",
            requests=2, input_tokens=200, output_tokens=20),
        rec("3", start=at(9), provider="qwen-singapore", model="qwen-plus", account="m1", project="/w/alpha",
            requests=4, input_tokens=400, output_tokens=40),
    ])
    put(store, "log-b", [
        rec("1", start=at(16), provider="openrouter", model="anthropic/claude", account="m2",
            requests=8, input_tokens=800, output_tokens=80),
        rec("2", start=at(31, 23), provider="openrouter", model="qwen-plus", account="m2",
            requests=16, input_tokens=1600, output_tokens=160),
        rec("old", start=datetime(2026, 2, 28, 23, 59, tzinfo=UTC), requests=1000),  # outside March
    ])
    return store


def table(report, *keys, metric="requests"):
    return {tuple(r[k] for k in keys): r[metric] for r in report.rows}


def test_no_grouping_is_one_total_row(mixed):
    r = usage_report(mixed, MARCH)
    assert len(r.rows) == 1 and r.rows == r.total
    t = r.total[0]
    assert (t["requests"], t["input_tokens"], t["output_tokens"], t["total_tokens"]) == (31, 3100, 310, 3410)
    assert t["cost"] is None and t["unpriced_requests"] == 31
    assert r.period == {"from": "2026-03-01", "to": "2026-03-31", "tz": "UTC"}


def test_group_by_each_dimension(mixed):
    assert table(usage_report(mixed, MARCH, by=["model"]), "model") == {
        ("anthropic/claude",): 8, ("qwen-max",): 2, ("qwen-plus",): 21}
    assert table(usage_report(mixed, MARCH, by=["provider"]), "provider") == {
        ("openrouter",): 24, ("qwen",): 3, ("qwen-singapore",): 4}
    assert table(usage_report(mixed, MARCH, by=["source"]), "source") == {("log-a",): 7, ("log-b",): 24}
    assert table(usage_report(mixed, MARCH, by=["account"]), "account") == {("m1",): 7, ("m2",): 24}
    assert table(usage_report(mixed, MARCH, by=["project"]), "project") == {
        ("/w/alpha",): 5, ("/w/beta",): 2, (None,): 24}
    assert table(usage_report(mixed, MARCH, by=["day"]), "day") == {
        ("2026-03-02",): 3, ("2026-03-09",): 4, ("2026-03-16",): 8, ("2026-03-31",): 16}
    assert table(usage_report(mixed, MARCH, by=["week"]), "week") == {
        ("2026-03-02",): 3, ("2026-03-09",): 4, ("2026-03-16",): 8, ("2026-03-30",): 16}
    assert table(usage_report(mixed, MARCH, by=["month"]), "month") == {("2026-03",): 31}
    all_time = Period(None, None, UTC)
    assert table(usage_report(mixed, all_time, by=["quarter"]), "quarter") == {("2026-Q1",): 1031}
    assert table(usage_report(mixed, all_time, by=["month"]), "month") == {("2026-02",): 1000, ("2026-03",): 31}


def test_group_by_combinations_keep_order(mixed):
    r = usage_report(mixed, MARCH, by=["provider", "model"])
    assert r.group_by == ["provider", "model"]
    assert [(x["provider"], x["model"], x["requests"]) for x in r.rows] == [
        ("openrouter", "anthropic/claude", 8), ("openrouter", "qwen-plus", 16),
        ("qwen", "qwen-max", 2), ("qwen", "qwen-plus", 1), ("qwen-singapore", "qwen-plus", 4)]
    assert list(r.rows[0])[:2] == ["provider", "model"]
    r = usage_report(mixed, MARCH, by=["model", "day"])
    assert table(r, "model", "day") == {
        ("anthropic/claude", "2026-03-16"): 8, ("qwen-max", "2026-03-02"): 2, ("qwen-plus", "2026-03-02"): 1,
        ("qwen-plus", "2026-03-09"): 4, ("qwen-plus", "2026-03-31"): 16}
    assert r.total[0]["requests"] == 31


def test_time_zone_moves_late_records(mixed):
    # 2026-03-31 23:00 UTC is April 1st in Tokyo (outside a Tokyo March), while
    # 2026-02-28 23:59 UTC is already March 1st there (inside)
    from zoneinfo import ZoneInfo

    tokyo = Period(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Asia/Tokyo"))
    r = usage_report(mixed, tokyo, by=["day"])
    assert r.total[0]["requests"] == 31 - 16 + 1000
    assert table(r, "day")[("2026-03-01",)] == 1000
    assert r.period["tz"] == "Asia/Tokyo"


def test_filters_case_insensitive_substring(mixed):
    def total(**f):
        rows = usage_report(mixed, MARCH, filters=Filters(**f)).total
        return rows[0]["requests"] if rows else 0

    assert total(provider="QWEN") == 7  # qwen and qwen-singapore
    assert total(provider="singapore") == 4
    assert total(model="Plus") == 21
    assert total(model="claude", provider="open") == 8
    assert total(source="LOG-B") == 24
    assert total(project="alpha") == 5
    assert total(provider="nobody") == 0
    # LIKE wildcards are taken literally
    assert total(model="%") == 0 and total(model="_") == 0 and total(model="-") == 23


def test_parse_group_by():
    assert parse_group_by("Day, model,day") == ["day", "model"]
    assert parse_group_by(["provider"]) == ["provider"]
    assert parse_group_by(None) == [] and parse_group_by("") == []
    with pytest.raises(ConfigError, match="--by 'colour'"):
        parse_group_by("day,colour")
    with pytest.raises(ConfigError, match="--cost"):
        usage_report(Store.open(":memory:"), MARCH, cost="cheap")


def test_empty_database(store):
    r = usage_report(store, MARCH, by=["model"])
    assert r.rows == [] and r.total == []
    d = r.as_dict()
    assert d["total"]["requests"] == 0 and d["total"]["cost"] is None


# -- money --------------------------------------------------------------------------------------


def test_one_row_per_currency(store):
    put(store, "ledger-x", [
        rec("1", start=at(3), model="m", requests=1, cost="1.50", currency="USD"),
        rec("2", start=at(3), model="m", requests=2, cost="10", currency="CNY"),
        rec("3", start=at(4), model="m", requests=4, cost="0.25", currency="USD"),
    ], kind="ledger")
    r = usage_report(store, MARCH, by=["model"])
    assert [(x["model"], x["currency"], x["cost"], x["requests"]) for x in r.rows] == [
        ("m", "CNY", Decimal("10"), 2), ("m", "USD", Decimal("1.75"), 5)]
    assert [(t["currency"], t["cost"]) for t in r.total] == [("CNY", Decimal("10")), ("USD", Decimal("1.75"))]
    assert isinstance(r.as_dict()["total"], list)


def test_cost_kinds(store):
    put(store, "bill", [rec("b", start=at(3), provider="acme", model="billed-model", cost="2",
                            cost_kind="billed")], kind="ledger")
    put(store, "client-log", [
        rec("l", start=at(3), model="logged-model", cost="0.5", cost_kind="logged"),
        rec("e", start=at(3), model="priced-est", input_tokens=1_000_000, output_tokens=0),
        rec("m1", start=at(4), model="priced-mix", input_tokens=500_000, output_tokens=0),
        rec("m2", start=at(5), model="priced-mix", cost="3", cost_kind="logged"),
    ], pricer=per_token_pricer)
    r = usage_report(store, MARCH, by=["model"])
    kinds = {x["model"]: (x["cost_kind"], x["cost"]) for x in r.rows}
    assert kinds == {
        "billed-model": ("billed", Decimal("2")),
        "logged-model": ("logged", Decimal("0.5")),
        "priced-est": ("estimated", Decimal("1")),
        "priced-mix": ("mixed", Decimal("3.5")),
    }
    assert r.total[0]["cost_kind"] == "mixed" and r.total[0]["cost"] == Decimal("7")


def test_unpriced_usage_is_never_zero(store):
    put(store, "client-log", [
        rec("u1", start=at(3), model="mystery", requests=3),
        rec("u2", start=at(3), model="mystery", requests=None),  # unknown count: one record, one request
        rec("p", start=at(3), model="priced-a", requests=2, input_tokens=2_000_000, output_tokens=0),
    ], pricer=per_token_pricer)
    r = usage_report(store, MARCH, by=["model"])
    rows = {x["model"]: x for x in r.rows}
    assert rows["mystery"]["cost"] is None and rows["mystery"]["currency"] is None
    assert rows["mystery"]["cost_kind"] is None and rows["mystery"]["unpriced_requests"] == 4
    assert rows["priced-a"]["cost"] == Decimal("2") and rows["priced-a"]["unpriced_requests"] == 0
    total = r.total
    assert len(total) == 1
    assert (total[0]["cost"], total[0]["currency"], total[0]["unpriced_requests"]) == (Decimal("2"), "USD", 4)
    assert total[0]["requests"] == 5


def test_cost_mode_billed_and_estimated(store):
    put(store, "client-log", [
        rec("a", start=at(3), model="priced-a", input_tokens=1_000_000, output_tokens=0, cost="9",
            cost_kind="logged"),
        rec("b", start=at(3), model="priced-b", input_tokens=3_000_000, output_tokens=0, requests=2),
    ], pricer=per_token_pricer)
    auto = {x["model"]: (x["cost"], x["cost_kind"]) for x in usage_report(store, MARCH, by=["model"]).rows}
    assert auto == {"priced-a": (Decimal("9"), "logged"), "priced-b": (Decimal("3"), "estimated")}
    billed = usage_report(store, MARCH, by=["model"], cost="billed")
    assert {x["model"]: (x["cost"], x["cost_kind"], x["unpriced_requests"]) for x in billed.rows} == {
        "priced-a": (Decimal("9"), "logged", 0), "priced-b": (None, None, 2)}
    est = usage_report(store, MARCH, by=["model"], cost="estimated")
    assert {x["model"]: (x["cost"], x["cost_kind"]) for x in est.rows} == {
        "priced-a": (Decimal("1"), "estimated"), "priced-b": (Decimal("3"), "estimated")}
    assert est.total[0]["cost"] == Decimal("4")


def test_exact_decimal_sums(store):
    put(store, "bill", [rec(str(i), start=at(3), cost="0.1", currency="USD") for i in range(10)], kind="ledger")
    total = usage_report(store, MARCH).total[0]
    assert total["cost"] == Decimal("1") and str(total["cost"].normalize()) == "1"


# -- ledger vs log --------------------------------------------------------------------------------


def test_ledger_covering_a_day_hides_that_days_logs(store):
    day = datetime(2026, 3, 5, tzinfo=UTC)
    put(store, "qwen-bill", [
        rec("bill-05", start=day, end=day + timedelta(days=1), provider="qwen", model="qwen-plus",
            requests=10, cost="1.00", currency="CNY", cost_kind="billed"),
    ], kind="ledger")
    put(store, "tsv-log", [
        rec("l1", start=at(5, 3), provider="qwen", model="qwen-plus", requests=4),
        rec("l2", start=at(5, 20), provider="qwen-singapore", model="qwen-plus", requests=3),
        rec("l3", start=at(5, 9), provider="openrouter", model="qwen-plus", requests=2),
        rec("l4", start=at(6, 1), provider="qwen", model="qwen-plus", requests=1),  # day not billed
        rec("l5", start=at(5, 9), provider="qwenish", model="qwen-plus", requests=100),  # not a qwen label
    ])
    r = usage_report(store, MARCH, by=["day", "provider"])
    got = table(r, "day", "provider")
    assert got == {
        ("2026-03-05", "openrouter"): 2,
        ("2026-03-05", "qwen"): 10,  # the bill only
        ("2026-03-05", "qwenish"): 100,
        ("2026-03-06", "qwen"): 1,
    }
    assert len(r.notes) == 1
    assert "7 requests" in r.notes[0] and "qwen" in r.notes[0] and "openrouter" not in r.notes[0]
    assert sum(t["requests"] for t in r.total) == 113
    # filtering to the log source alone still leaves out the covered day
    only_log = usage_report(store, MARCH, filters=Filters(source="tsv-log"))
    assert only_log.total[0]["requests"] == 103


def test_event_like_ledger_record_covers_its_utc_day(store):
    put(store, "qwen-bill", [rec("b", start=at(7, 0), provider="qwen", requests=5, cost="1", currency="USD")],
        kind="ledger")
    put(store, "tsv-log", [rec("l", start=at(7, 18), provider="qwen", requests=2),
                           rec("m", start=at(8, 1), provider="qwen", requests=3)])
    r = usage_report(store, MARCH, by=["source"])
    assert table(r, "source") == {("qwen-bill",): 5, ("tsv-log",): 3}


def test_no_notes_without_overlap(mixed):
    assert usage_report(mixed, MARCH).notes == []


def test_overlap_note_counts_calls_without_a_request_count(store):
    day = datetime(2026, 3, 5, tzinfo=UTC)
    put(store, "qwen-bill", [rec("bill", start=day, end=day + timedelta(days=1), requests=10, cost="1")],
        kind="ledger")
    put(store, "tsv-log", [rec("l1", start=at(5, 3), requests=3), rec("l2", start=at(5, 4), requests=None),
                           rec("l3", start=at(5, 5), requests=None)])
    (note,) = usage_report(store, MARCH).notes
    assert note.startswith("5 requests from local logs were left out")
