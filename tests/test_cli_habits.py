"""The habits users bring from ccusage and the qwencloud CLI (issue 18 items 1 and 2): daily / weekly /
monthly / session as aliases of `report`, `--by session`, the short flags, YYYYMMDD dates,
`--breakdown`, `--order`, `--format text`, and JSON error documents when JSON was asked for."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from helpers_host import cli_json, cli_run, make_source, rec, register

from tokenmeter.errors import (
    ConfigError,
    InvalidRecord,
    NeedsCredentials,
    PluginError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    SourceDataError,
    StoreError,
    TokenmeterError,
    UsageError,
)

NOW = {"TOKENMETER_NOW": "2026-10-25T12:00:00Z"}


def at(day: int, hour: int = 9, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def data():
    """Qwen Code-like log calls in sessions over October (and one in September), plus a provider bill
    that covers one day of the `acme` log calls (those are left out of every grouping alike)."""
    logs = [
        rec("a1", start=at(3), session="s-a", model="qwen-plus", requests=2, input_tokens=1000, output_tokens=100,
            cost="0.02", cost_kind="logged"),
        rec("a2", start=at(3, 10), session="s-a", model="qwen3-coder-plus", requests=1, input_tokens=500,
            output_tokens=50, cost="0.01", cost_kind="logged"),
        rec("b1", start=at(9), session="s-b", model="qwen-plus", requests=3, input_tokens=3000, output_tokens=300,
            cost="0.05", cost_kind="logged"),
        rec("b2", start=at(20, 23), session="s-b", model="qwen-plus", requests=1, input_tokens=10, output_tokens=1,
            cost="0.001", cost_kind="logged"),
        rec("c1", start=at(21), session="s-c", model="qwen-max", requests=1, input_tokens=7, output_tokens=7,
            cost="0.5", cost_kind="logged"),
        rec("n1", start=at(12), model="qwen-plus", requests=1, input_tokens=1, output_tokens=1,
            cost="0.001", cost_kind="logged"),  # no session reported
        rec("x1", start=at(15), session="s-x", provider="acme", model="m", requests=5, input_tokens=50,
            output_tokens=5, cost="0.3", cost_kind="logged"),  # the bill below covers it
        rec("s1", start=at(28, month=9), session="s-old", model="qwen-plus", requests=1, input_tokens=9,
            output_tokens=9, cost="0.009", cost_kind="logged"),
    ]
    bill = [rec("bill15", start=at(15, 0), end=at(16, 0), provider="acme", model="m", requests=5,
                input_tokens=50, output_tokens=5, cost="0.4", cost_kind="billed")]
    register(make_source("fake-log", logs, kind="log"), make_source("fake-bill", bill, kind="ledger",
                                                                        provider="acme"))
    result = cli_run(["fetch", "--json"], NOW)
    assert result.exit_code == 0, result.output


def test_daily_with_ccusage_dates_equals_report_by_day(data):
    daily = cli_json(["daily", "--since", "20261003", "--until", "20261020", "--json", "--tz", "UTC"], NOW)
    report = cli_json(["report", "--from", "2026-10-03", "--to", "2026-10-20", "--by", "day", "--json",
                       "--tz", "UTC"], NOW)
    assert daily == report
    assert [r["day"] for r in daily["rows"]] == ["2026-10-03", "2026-10-09", "2026-10-12", "2026-10-15",
                                                 "2026-10-20"]
    # the short flags: -s, -u, -j, -z
    assert cli_json(["daily", "-s", "20261003", "-u", "2026-10-20", "-j", "-z", "UTC"], NOW) == report


def test_weekly_monthly_and_the_default_period_of_everything(data):
    monthly = cli_json(["monthly", "-j", "-z", "UTC"], NOW)
    assert monthly["period"]["from"] is None and monthly["group_by"] == ["month"]  # like ccusage: all data
    assert [r["month"] for r in monthly["rows"]] == ["2026-09", "2026-10"]
    assert monthly == cli_json(["report", "--all", "--by", "month", "-j", "-z", "UTC"], NOW)
    weekly = cli_json(["weekly", "--month", "-j", "-z", "UTC"], NOW)  # a period option wins
    assert [r["week"] for r in weekly["rows"]] == ["2026-09-28", "2026-10-05", "2026-10-12", "2026-10-19"]
    assert weekly == cli_json(["report", "--month", "--by", "week", "-j", "-z", "UTC"], NOW)


def test_session_is_a_report_dimension(data):
    by_session = cli_json(["session", "--month", "-j", "-z", "UTC"], NOW)
    assert by_session == cli_json(["report", "--month", "--by", "session", "-j", "-z", "UTC"], NOW)
    rows = {r["session"]: r for r in by_session["rows"]}
    assert list(rows) == ["s-a", "s-b", "s-c", None]  # usage no source put in a session comes last
    assert rows["s-a"]["requests"] == 3 and rows["s-a"]["cost"] == "0.03"
    assert rows["s-b"]["input_tokens"] == 3010
    # the acme log calls are covered by the bill: left out here exactly as in every other grouping
    assert "s-x" not in rows and by_session["notes"]
    total = cli_json(["report", "--month", "--by", "none", "-j", "-z", "UTC"], NOW)["total"]
    assert by_session["total"] == total
    # session works with the other dimensions and filters, in any time zone
    mixed = cli_json(["report", "--month", "--by", "session,day", "--model", "plus", "-j", "-z", "Asia/Shanghai"],
                     NOW)
    assert ("s-b", "2026-10-21") in {(r["session"], r["day"]) for r in mixed["rows"]}  # 23:00 UTC = next day


def test_breakdown_and_order(data):
    out = cli_json(["daily", "-b", "--order", "desc", "--month", "-j", "-z", "UTC"], NOW)
    assert out["group_by"] == ["day", "model"]
    keys = [(r["day"], r["model"]) for r in out["rows"]]
    assert keys[:2] == [("2026-10-21", "qwen-max"), ("2026-10-20", "qwen-plus")]
    assert ("2026-10-03", "qwen-plus") in keys[-2:] and keys[-1] == ("2026-10-03", "qwen3-coder-plus")  # inside: asc
    # --breakdown does not repeat a model dimension already asked for
    assert cli_json(["report", "--month", "--by", "model,day", "-b", "-j"], NOW)["group_by"] == ["model", "day"]
    assert cli_run(["daily", "--order", "up"], NOW).exit_code == 64


def test_format_text_is_the_table(data):
    text = cli_run(["monthly", "--format", "text", "-z", "UTC"], NOW)
    table = cli_run(["monthly", "-f", "table", "-z", "UTC"], NOW)
    assert text.exit_code == 0 and text.stdout == table.stdout and "2026-10" in text.stdout


# -- JSON error documents ---------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--json"], ["-j"], ["--format", "json"], ["-f", "json"], ["--format=json"]])
def test_a_bad_date_with_json_is_a_json_error_document(flags):
    result = cli_run(["daily", "--since", "2026-02-30", *flags])
    assert result.exit_code == 64
    assert result.stdout == ""  # stdout is only ever the document asked for
    assert json.loads(result.stderr) == {"error": {
        "code": "usage_error", "exit_code": 64,
        "message": "--from: expected a date as YYYY-MM-DD or YYYYMMDD, got '2026-02-30'"}}


def test_without_json_an_error_stays_one_line():
    result = cli_run(["report", "--from", "20261399", "--csv"])
    assert result.exit_code == 64
    assert result.stderr == "Error: --from: expected a date as YYYY-MM-DD or YYYYMMDD, got '20261399'\n"


def test_click_usage_errors_and_config_errors_as_json(tokenmeter_env):
    result = cli_run(["report", "--no-such-option", "--json"])
    error = json.loads(result.stderr)["error"]
    assert result.exit_code == 64 and error["code"] == "usage_error" and "--no-such-option" in error["message"]
    result = cli_run(["budget", "-f", "json", "--tz", "Mars/Olympus"])
    assert result.exit_code == 4 and json.loads(result.stderr)["error"]["code"] == "config_error"
    (tokenmeter_env / "config.toml").write_text('[tokenmeter]\ntimezone = "\\u001b[31mRed"\n')
    result = cli_run(["report", "-j"])
    doc = json.loads(result.stderr)  # a name from outside never reaches the terminal raw, in either form
    assert result.exit_code == 4 and "31mRed" in doc["error"]["message"] and "\x1b" not in result.stderr
    assert "\\x1b[31mRed" in cli_run(["report", "--csv"]).stderr


def test_error_codes_follow_the_exception_classes():
    codes = {cls: (cls.code, cls.exit_code) for cls in (
        TokenmeterError, ConfigError, UsageError, PluginError, StoreError, InvalidRecord, ProviderError,
        NeedsCredentials, ProviderAuthError, ProviderRateLimited, ProviderUnavailable, SourceDataError)}
    assert codes == {
        TokenmeterError: ("error", 1), ConfigError: ("config_error", 4), UsageError: ("usage_error", 64),
        PluginError: ("plugin_error", 4), StoreError: ("database_error", 4), InvalidRecord: ("invalid_record", 6),
        ProviderError: ("source_failed", 6), NeedsCredentials: ("credentials", 5),
        ProviderAuthError: ("credentials_rejected", 5), ProviderRateLimited: ("rate_limited", 3),
        ProviderUnavailable: ("network", 3), SourceDataError: ("source_failed", 6),
    }


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_session_rows_sum_like_the_rollup_in_any_zone(tmp_path, zone):
    """`--by session` reads usage rows, the other groupings the 15-minute rollup: same days, same sums."""
    from zoneinfo import ZoneInfo

    from tokenmeter.periods import Period
    from tokenmeter.reports import usage_report
    from tokenmeter.store import Store

    with Store.open(tmp_path / "s.db") as store:
        writer = store.session("log-src", "log")
        for i in range(200):  # every 37 minutes for ~5 days: crosses local midnights and bucket edges
            writer.add(rec(f"r{i}", start=datetime.fromtimestamp(1_791_000_000 + i * 2220, UTC),
                           session=f"s{i // 30}" if i % 7 else None, requests=1 + i % 3, input_tokens=i,
                           output_tokens=1, cost="0.001", cost_kind="logged"))
        writer.finish(None)
        store.refresh_rollup()
        tz = ZoneInfo(zone)
        first = datetime.fromtimestamp(1_791_000_000, UTC).astimezone(tz).date()
        period = Period(first.replace(day=first.day + 1), first.replace(day=first.day + 3), tz)
        by_day = usage_report(store, period, by=["day"])
        with_session = usage_report(store, period, by=["day", "session"])
        sums: dict[str, int] = {}
        for row in with_session.rows:
            sums[row["day"]] = sums.get(row["day"], 0) + row["input_tokens"]
        assert sums == {row["day"]: row["input_tokens"] for row in by_day.rows}
        assert with_session.total == by_day.total
