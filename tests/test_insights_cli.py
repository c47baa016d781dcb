"""budget / forecast / dashboard / reconcile through the CLI and the database (issue 8 wiring)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_host import cli_run, make_source, rec, register

from tokenmeter import Cursor, QuotaSnapshot
from tokenmeter.plugin_manager import pm

NOW = "2026-03-20T12:00:00Z"
MARCH = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _alibaba_prices() -> None:
    """These tests estimate qwen-plus from the alibaba-prices plugin (cli_run loads no plugins)."""
    import tokenmeter_plugins.alibaba_prices as prices

    pm.register(prices, name="alibaba-prices")  # the conftest unregisters it after the test


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


def usage_source(tokens_per_day: int = 10_000, days: int = 19, cost: str | None = None):
    """A log source: one call per day from March 1st, ``tokens_per_day`` input tokens each."""
    items = []
    for i in range(days):
        extra = {"cost": Decimal(cost), "cost_kind": "logged"} if cost else {}
        items.append(rec(f"d{i}", start=MARCH + timedelta(days=i), provider="qwen", model="qwen-plus",
                         input_tokens=tokens_per_day, output_tokens=0, **extra))
    items.append(Cursor({"done": True}))
    return make_source("usage", items)


@pytest.mark.parametrize(
    ("limit", "level", "code"),
    [(388_000, "ok", 0), (380_000, "warning", 1), (237_501, "warning", 1), (237_500, "critical", 2),
     (190_000, "critical", 2)],
)
def test_budget_levels_and_exit_codes(tokenmeter_env, limit, level, code):
    # 190,000 tokens used in March: 49 %, 50 %, 79.99 %, 80 %, 100 %
    register(usage_source())
    write_config(tokenmeter_env, f'[budgets.test]\nlimit = {limit}\nunit = "tokens"\n')
    assert cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW}).exit_code == 0
    result = cli_run(["budget", "--json"], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == code, result.output
    data = json.loads(result.stdout)
    (b,) = data["budgets"]
    assert (b["name"], b["used"], b["level"]) == ("test", "190000", level)
    assert data["level"] == level


def test_money_budget_quiet_and_quota_snapshots(tokenmeter_env):
    snap = QuotaSnapshot(provider="qwen", name="coding-plan/per_5h", unit="requests",
                         observed_at=datetime(2026, 3, 20, 10, tzinfo=UTC), used=Decimal(900),
                         total=Decimal(1000), remaining=Decimal(100))
    register(usage_source(cost="0.10"), make_source("plan", [snap], kind="ledger"))
    write_config(tokenmeter_env, '[budgets.usd]\nlimit = 10\ncurrency = "USD"\n')
    assert cli_run(["fetch"], env={"TOKENMETER_NOW": NOW}).exit_code == 0
    result = cli_run(["budget", "-q"], env={"TOKENMETER_NOW": NOW})
    # 19 days × 0.10 USD = 1.90 of 10 (ok), the coding plan at 90 % (critical) → exit 2
    assert result.exit_code == 2
    lines = result.stdout.strip().splitlines()
    assert lines[0].split("\t")[:2] == ["1.9", "8.1"]
    assert lines[1].split("\t") == ["900", "100", "90.00"]


def test_fixed_window_credit(tokenmeter_env):
    register(usage_source())
    write_config(tokenmeter_env, '[budgets.welcome]\nlimit = 100000\nunit = "tokens"\n'
                                 "from = 2026-03-05\nto = 2026-03-09\n")
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    data = json.loads(cli_run(["budget", "--json"], env={"TOKENMETER_NOW": NOW}).stdout)
    (b,) = data["budgets"]
    assert b["used"] == "50000" and b["level"] == "warning"
    assert b["period"]["from"] == "2026-03-05" and b["period"]["to"] == "2026-03-09"


def test_notify_sends_once_per_level_and_period(tokenmeter_env, tmp_path):
    register(usage_source())
    out = tmp_path / "alerts.jsonl"
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read().replace(chr(10), ' ') + chr(10))"
    write_config(tokenmeter_env, '[budgets.test]\nlimit = 200000\nunit = "tokens"\n\n'
                                 f'[[alerts]]\ntype = "command"\ncommand = [{json.dumps(sys.executable)}, '
                                 f'"-c", {json.dumps(script)}]\n')
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    dry = cli_run(["budget", "--notify", "--dry-run", "--json"], env={"TOKENMETER_NOW": NOW})
    assert dry.exit_code == 2 and not out.exists()
    assert "would_send" in json.loads(dry.stdout)["alerts"][0]
    for _ in range(3):  # cron every 5 minutes: one alert only
        assert cli_run(["budget", "--notify"], env={"TOKENMETER_NOW": NOW}).exit_code == 2
    sent = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(sent) == 1
    assert sent[0]["budget"] == "test" and sent[0]["level"] == "critical"
    # a new month is a new budget period: the (still critical) budget alerts again
    cli_run(["budget", "--notify"], env={"TOKENMETER_NOW": "2026-04-01T12:00:00Z"})
    assert len(out.read_text().splitlines()) == 1  # April has no usage yet: ok, nothing sent


def test_forecast_json(tokenmeter_env):
    register(usage_source())
    write_config(tokenmeter_env, '[budgets.test]\nlimit = 300000\nunit = "tokens"\n')
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    data = json.loads(cli_run(["forecast", "--json"], env={"TOKENMETER_NOW": NOW}).stdout)
    f = data["forecast"]
    assert f["window"]["days"] == 7 and f["tokens_per_day"] == "10000.00"
    # 19 days used so far (190,000), 12 days left at 10,000/day
    assert f["projected_tokens"] == 310_000
    (b,) = data["budgets"]
    assert b["days_left"] == 11.0 and b["exhausted_on"] == "2026-03-31"


def test_dashboard_and_root_flag(tokenmeter_env, tmp_path):
    register(usage_source(cost="0.10"))
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    target = tmp_path / "d.html"
    result = cli_run(["dashboard", "--period", "month", "-o", str(target)], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == 0 and target.exists()
    html = target.read_text()
    assert "1.9 USD" in html or "1.90 USD" in html
    assert "https://" not in html and "http://" not in html
    result = cli_run(["--month", "--dashboard"], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == 0 and "Wrote" in result.stdout


def test_reconcile_rows(tokenmeter_env):
    day = datetime(2026, 3, 3, tzinfo=UTC)
    bill = make_source("bill", [rec("b", start=day, end=day + timedelta(days=1), provider="qwen",
                                    model="qwen-plus", requests=2, cost=Decimal("0.50"), cost_kind="billed")],
                       kind="ledger")
    log = make_source("log", [rec("l1", start=day + timedelta(hours=1), provider="qwen-singapore",
                                  model="qwen-plus", input_tokens=1_000_000, output_tokens=0),
                              rec("l2", start=day + timedelta(hours=2), provider="qwen-singapore",
                                  model="qwen-plus", cost=Decimal("0.30"), cost_kind="logged")])
    register(bill, log)
    cli_run(["fetch"], env={"TOKENMETER_NOW": NOW})
    rows = json.loads(cli_run(["reconcile", "--json"], env={"TOKENMETER_NOW": NOW}).stdout)["rows"]
    (row,) = rows
    assert row["day"] == "2026-03-03" and row["model"] == "qwen-plus"
    assert Decimal(row["billed"]) == Decimal("0.5") and Decimal(row["logged"]) == Decimal("0.3")
    assert Decimal(row["billed_minus_logged"]) == Decimal("0.2")
    assert row["estimated"] is not None  # the registered price of qwen-plus prices the logged calls
    # and the report itself counts the bill only: no double counting
    report = json.loads(cli_run(["report", "--month", "--json"], env={"TOKENMETER_NOW": NOW}).stdout)
    assert report["total"]["requests"] == 2 and report["total"]["cost_kind"] == "billed"
    assert "left out" in report["notes"][0]


def test_quota_past_its_reset_no_longer_counts(tokenmeter_env):
    # observed at 90 % at 01:00, the window reset at 05:00; at 12:00 `budget` must not exit 2 on it
    old = QuotaSnapshot(provider="qwen", name="coding-plan/per_5h", unit="requests", used=Decimal(900),
                        total=Decimal(1000), remaining=Decimal(100), observed_at=datetime(2026, 3, 20, 1, tzinfo=UTC),
                        resets_at=datetime(2026, 3, 20, 5, tzinfo=UTC))
    register(make_source("plan", [old], kind="ledger"))
    assert cli_run(["fetch"], env={"TOKENMETER_NOW": NOW}).exit_code == 0
    result = cli_run(["budget", "--json"], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == 0 and json.loads(result.stdout)["budgets"] == []
    # before the reset it counts
    early = cli_run(["budget", "--json"], env={"TOKENMETER_NOW": "2026-03-20T03:00:00Z"})
    assert early.exit_code == 2


def test_forecast_period_end_of_open_credit_and_quota(tokenmeter_env):
    plan = QuotaSnapshot(provider="qwen", name="coding-plan/per_5h", unit="requests", used=Decimal(10),
                         total=Decimal(1000), remaining=Decimal(990), observed_at=datetime(2026, 3, 20, 11, tzinfo=UTC),
                         resets_at=datetime(2026, 3, 20, 16, tzinfo=UTC))
    register(usage_source(), make_source("plan", [plan], kind="ledger"))
    write_config(tokenmeter_env, '[budgets.welcome]\nlimit = 500000\nunit = "tokens"\nfrom = 2026-03-01\n')
    cli_run(["fetch"], env={"TOKENMETER_NOW": NOW})
    data = json.loads(cli_run(["forecast", "--json"], env={"TOKENMETER_NOW": NOW}).stdout)
    welcome, quota = data["budgets"]
    # an open-ended credit does not end "today": it runs out on 2026-04-20 with nothing before that
    assert welcome["days_left"] == 31.0 and welcome["exhausted_on"] == "2026-04-20"
    assert welcome["period_end"] is None and welcome["before_period_end"] is None
    # a quota window resets (today at 16:00) long before a daily rate would use it up
    assert quota["name"] == "qwen:coding-plan/per_5h"
    assert quota["period_end"] == "2026-03-20" and quota["before_period_end"] is False


def test_notify_reports_missing_channel_and_failures_on_stderr(tokenmeter_env):
    register(usage_source())
    write_config(tokenmeter_env, '[budgets.test]\nlimit = 200000\nunit = "tokens"\n')
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    dry = cli_run(["budget", "--notify", "--dry-run", "-f", "table"], env={"TOKENMETER_NOW": NOW})
    assert "no [[alerts]] channel takes this alert" in dry.stdout
    quiet = cli_run(["budget", "--notify", "-q"], env={"TOKENMETER_NOW": NOW})
    assert quiet.exit_code == 2
    assert quiet.stdout == "190000\t10000\t95.00\n"  # numbers only
    assert "alert NOT sent" in quiet.stderr and "no [[alerts]] channel takes this alert" in quiet.stderr
    write_config(tokenmeter_env, '[budgets.test]\nlimit = 200000\nunit = "tokens"\n\n'
                                 f'[[alerts]]\ntype = "command"\ncommand = [{json.dumps(sys.executable)}, '
                                 '"-c", "import sys; sys.stdin.read()"]\n')
    csv = cli_run(["budget", "--notify", "--csv"], env={"TOKENMETER_NOW": NOW})
    assert csv.exit_code == 2 and csv.stdout.splitlines()[1].startswith("test,budget,190000,")
    assert len(csv.stdout.splitlines()) == 2  # the CSV holds no alert lines
    assert "alert sent" in csv.stderr


def test_forecast_without_prices_says_so(tokenmeter_env):
    items = [rec(f"d{i}", start=MARCH + timedelta(days=i), provider="acme", model="no-price-model",
                 input_tokens=10_000, output_tokens=0) for i in range(19)]
    register(make_source("usage", [*items, Cursor({})]))
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    out = cli_run(["forecast", "-f", "table"], env={"TOKENMETER_NOW": NOW}).stdout
    assert "Spend: no priced usage" in out and "Spend: 0 " not in out
    assert "Tokens: 190,000 so far, 10,000/day → 310,000 by 2026-03-31." in out


def test_dashboard_charts_the_periods_own_currency(tokenmeter_env, tmp_path):
    # February was paid in USD, March in CNY: last month's dashboard shows 4.00 USD, not "—"
    items = [rec("feb", start=datetime(2026, 2, 10, 12, tzinfo=UTC), provider="openrouter", model="x/y",
                 cost=Decimal("4.00"), currency="USD"),
             rec("mar", start=datetime(2026, 3, 10, 12, tzinfo=UTC), provider="huawei-maas", model="m",
                 cost=Decimal("9.00"), currency="CNY"), Cursor({})]
    register(make_source("mix", items, kind="ledger"))
    cli_run(["fetch"], env={"TOKENMETER_NOW": NOW})
    target = tmp_path / "d.html"
    assert cli_run(["dashboard", "--period", "last-month", "-o", str(target)],
                   env={"TOKENMETER_NOW": NOW}).exit_code == 0
    html = target.read_text()
    figure = html.split('data-figure="cost"', 1)[1].split("</div></div>", 1)[0]
    assert "4.00 USD" in figure
    projected = html.split('data-figure="projected"', 1)[1].split("</div></div>", 1)[0]
    assert "9.00 CNY" in projected  # this month's projection keeps its own currency


def test_reconcile_currencies_and_unpriced_calls(tokenmeter_env):
    day = datetime(2026, 3, 3, 1, tzinfo=UTC)
    bill = make_source("bill", [rec("b", start=day, end=day + timedelta(hours=1), provider="dashscope-cn",
                                    model="qwen-flash", requests=3, cost=Decimal("0.50"), currency="CNY")],
                       kind="ledger")
    log = make_source("log", [
        # the log's own figure is in USD, the cn price table in CNY: two rows, never one sum
        rec("l1", start=day + timedelta(hours=2), provider="dashscope-cn", model="qwen-flash",
            input_tokens=100_000, output_tokens=0, cost=Decimal("0.30"), cost_kind="logged"),
        # a call with no cost and no price: counted, not silently dropped
        rec("l2", start=day + timedelta(hours=3), provider="acme", model="qwen-flash", requests=4),
    ])
    register(bill, log)
    cli_run(["fetch"], env={"TOKENMETER_NOW": NOW})
    rows = json.loads(cli_run(["reconcile", "--json"], env={"TOKENMETER_NOW": NOW}).stdout)["rows"]
    cny, usd = rows
    assert (cny["currency"], Decimal(cny["billed"]), cny["logged"]) == ("CNY", Decimal("0.5"), None)
    assert Decimal(cny["estimated"]) == Decimal("0.015")  # 100k input tokens × 0.15 CNY per 1M
    assert cny["billed_minus_estimated"] is not None and cny["unpriced_log_requests"] == 4
    assert (usd["currency"], Decimal(usd["logged"]), usd["estimated"]) == ("USD", Decimal("0.3"), None)


def test_alert_filtered_out_by_channel_levels_is_not_a_failure(tokenmeter_env, tmp_path):
    # only critical alerts wanted: a warning is left out on purpose, not reported as a failure each run
    register(usage_source())
    write_config(tokenmeter_env, '[budgets.test]\nlimit = 300000\nunit = "tokens"\n\n'
                                 f'[[alerts]]\ntype = "command"\nlevels = ["critical"]\ncommand = '
                                 f'[{json.dumps(sys.executable)}, "-c", "import sys; sys.stdin.read()"]\n')
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    quiet = cli_run(["budget", "--notify", "-q"], env={"TOKENMETER_NOW": NOW})
    assert quiet.exit_code == 1 and quiet.stderr == ""
    table = cli_run(["budget", "--notify", "-f", "table"], env={"TOKENMETER_NOW": NOW})
    assert "alert not routed" in table.stdout and "no [[alerts]] channel takes warning alerts" in table.stdout
    assert table.stderr == ""


def test_forecast_csv_has_plain_numbers(tokenmeter_env):
    register(usage_source())
    write_config(tokenmeter_env, '[budgets.test]\nlimit = 300000\nunit = "tokens"\n'
                                 '[budgets.idle]\nlimit = 5\ncurrency = "USD"\n')
    cli_run(["fetch", "usage"], env={"TOKENMETER_NOW": NOW})
    out = cli_run(["forecast", "--csv"], env={"TOKENMETER_NOW": NOW}).stdout.splitlines()
    assert out == [
        "name,kind,unit,remaining,per_day,days_left,exhausted_on,period_end",
        "test,budget,tokens,110000,10000.00,11.0,2026-03-31,2026-03-31",
        "idle,budget,USD,4.924,0.004000000,1231.0,2029-08-02,2026-03-31",  # estimated from qwen-plus prices
    ]
