"""End-to-end CLI tests for the built-in providers: the real CLI, the real plugins, local fakes.

Each test drives `tokenmeter` in-process (click's CliRunner) against a temporary TOKENMETER_HOME
(from the conftest): the HTTP providers talk to the fakes in tests/ served on 127.0.0.1, qwencloud
runs the fake `qwencloud` executable found on PATH, the log sources read a copy of the shared
samples. Assertions are on exit codes, report rows, exact numbers and the absence of secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import huawei_fake  # tests/ is on sys.path (pytest's rootdir conftest), like in the plugins' own tests
import openrouter_fake
import pytest
from click.testing import CliRunner, Result

FAKE_QWENCLOUD_DIR = Path(__file__).resolve().parent / "fake_qwencloud"
DEMO_EXPECTED = Path(__file__).resolve().parent.parent / "plugins" / "dashscope_log" / "demo_data" / "expected.json"


# -- helpers ------------------------------------------------------------------------------------
class Cli:
    """Runs the real CLI with built-in plugins loaded; keeps every output for the secret checks."""

    def __init__(self, home: Path, env: Mapping[str, str]) -> None:
        self.home = home
        self.env = dict(env)
        self.outputs: list[str] = []

    def __call__(self, *args: str, **env: str) -> Result:
        from tokenmeter.cli import cli

        result = CliRunner().invoke(cli, list(args), env={**self.env, **env}, catch_exceptions=False)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def json(self, *args: str, **env: str) -> Any:
        result = self(*args, "--json", **env)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return json.loads(result.stdout)

    def assert_no_secret(self, *secrets: str) -> None:
        """No secret in any CLI output, nor in any byte under TOKENMETER_HOME (db, -wal, config...)."""
        stored = [p for p in self.home.rglob("*") if p.is_file()]
        assert any(p.name.endswith(".db") for p in stored)
        for secret in secrets:
            for text in self.outputs:
                assert secret not in text
            for path in stored:
                assert secret.encode() not in path.read_bytes(), f"{secret[:6]}… stored in {path}"


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# -- issue 5: huawei-maas -----------------------------------------------------------------------
HW_NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def huawei(tokenmeter_env: Path) -> Iterator[tuple[Cli, huawei_fake.FakeHuawei]]:
    fake = huawei_fake.FakeHuawei(token=huawei_fake.FAKE_TOKEN)
    with huawei_fake.FakeServer(fake) as server:
        write_config(tokenmeter_env, f'[tokenmeter]\ntimezone = "Asia/Shanghai"\n\n[sources.huawei-maas]\n'
                                     f'endpoint = "{server.url}"\niam_endpoint = "{server.url}"\n')
        env = {"TOKENMETER_LOAD_PLUGINS": "huawei-maas", "TOKENMETER_NOW": HW_NOW.isoformat(),
               "HW_ACCESS_KEY": huawei_fake.FAKE_AK, "HW_SECRET_KEY": huawei_fake.FAKE_SK,
               "HW_SECURITY_TOKEN": huawei_fake.FAKE_TOKEN}
        yield Cli(tokenmeter_env, env), fake


def huawei_expected_day(day: date, now: datetime = HW_NOW) -> dict[str, int]:
    """What the fake answers for one Shanghai day (today up to now), in tokens (not thousands)."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    end = min(start + timedelta(days=1), now)
    to_ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    data = huawei_fake.default_usage({"start_time": to_ms(start), "end_time": to_ms(end),
                                      "service_type": 2, "infer_type": "real_time"})
    return {"requests": data["total_request_count"],
            "input_tokens": round(Decimal(str(data["total_prompt_token"])) * 1000),
            "output_tokens": round(Decimal(str(data["total_completion_token"])) * 1000),
            "total_tokens": round(Decimal(str(data["total_token"])) * 1000)}


def test_huawei_fetch_then_month_report_by_day(huawei):
    run, fake = huawei
    result = run("fetch", "huawei-maas", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["sources"]
    assert [(s["source"], s["status"], s["new"]) for s in summary] == [("huawei-maas", "ok", 30)]
    assert fake.rejected == []  # every request was correctly signed (with the temporary token)
    assert sum(1 for r in fake.requests if r["path"] == "/v3/projects") == 1

    report = run.json("--provider", "huawei", "--month", "--by", "day")
    assert report["period"] == {"from": "2026-03-01", "to": "2026-03-31", "tz": "Asia/Shanghai"}
    rows = report["rows"]
    days = [date(2026, 3, d) for d in range(1, 16)]  # March 1st to today (the 15th, partial)
    assert [r["day"] for r in rows] == [d.isoformat() for d in days]
    for row, day in zip(rows, days, strict=True):
        want = huawei_expected_day(day)
        assert {k: row[k] for k in want} == want, day
        assert row["cost"] is None and row["unpriced_requests"] == want["requests"]  # no model: no price
    # total_token is the API's own figure, not input + output
    assert rows[0]["total_tokens"] != rows[0]["input_tokens"] + rows[0]["output_tokens"]
    total = report["total"]
    assert total["requests"] == sum(huawei_expected_day(d)["requests"] for d in days) == 31717
    assert total["input_tokens"] == 39_154_636 and total["total_tokens"] == 41_303_034

    table = run("--provider", "huawei", "--month", "--by", "day", "-f", "table")
    assert table.exit_code == 0 and "2026-03-01" in table.stdout and "2026-03-15" in table.stdout

    # next morning: the partial 15th is replaced by the full day, the 16th starts; nothing doubles
    later = datetime(2026, 3, 16, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
    again = run("fetch", "huawei-maas", "--json", TOKENMETER_NOW=later.isoformat())
    assert again.exit_code == 0, again.stderr
    rows = run.json("--provider", "huawei", "--month", "--by", "day", TOKENMETER_NOW=later.isoformat())["rows"]
    days.append(date(2026, 3, 16))
    assert [r["day"] for r in rows] == [d.isoformat() for d in days]
    for row, day in zip(rows, days, strict=True):
        want = huawei_expected_day(day, later)
        assert {k: row[k] for k in want} == want, day
    assert rows[14]["requests"] > huawei_expected_day(date(2026, 3, 15))["requests"]  # now a full day
    assert sum(1 for r in fake.requests if r["path"] == "/v3/projects") == 1  # project id cached
    run.assert_no_secret(huawei_fake.FAKE_AK, huawei_fake.FAKE_SK, huawei_fake.FAKE_TOKEN)


def test_huawei_month_report_without_by_shows_daily_rows(huawei):
    run, _ = huawei
    assert run("fetch", "huawei-maas").exit_code == 0
    report = run.json("--provider", "huawei", "--month")
    assert len(report["rows"]) == 15


def test_huawei_missing_credentials_exit_5(huawei):
    run, fake = huawei
    result = run("fetch", "huawei-maas", "--json", HW_ACCESS_KEY="", HW_SECRET_KEY="", HW_SECURITY_TOKEN="")
    assert result.exit_code == 5
    message = json.loads(result.stdout)["sources"][0]["message"]
    assert "HW_ACCESS_KEY" in message and "HW_SECRET_KEY" in message
    assert fake.requests == []


# -- issue 6: openrouter ------------------------------------------------------------------------
OR_NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def openrouter(tokenmeter_env: Path) -> Iterator[tuple[Cli, openrouter_fake.FakeOpenRouter]]:
    fake = openrouter_fake.FakeOpenRouter(today=OR_NOW.date())
    with fake.serve(free_port()) as url:
        write_config(tokenmeter_env, f'[tokenmeter]\ntimezone = "UTC"\n\n[sources.openrouter]\nbase_url = "{url}"\n')
        yield Cli(tokenmeter_env, {"TOKENMETER_LOAD_PLUGINS": "openrouter",
                                   "TOKENMETER_NOW": OR_NOW.isoformat()}), fake


def test_openrouter_management_key_billed_rows_and_quota(openrouter):
    run, fake = openrouter
    key = {"OPENROUTER_MANAGEMENT_KEY": openrouter_fake.MANAGEMENT_KEY}
    result = run("fetch", "openrouter", "--json", **key)
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["sources"]
    # 30 completed days (Feb 13 .. Mar 14), 2 rows a day except the 20th and the 10th
    assert (summary["status"], summary["new"], summary["snapshots"]) == ("ok", 56, 4)

    report = run.json("--provider", "openrouter", "--month", "--by", "day,model", **key)
    rows = report["rows"]
    march_days = [d for d in range(1, 15) if d != 10]
    assert len(rows) == 2 * len(march_days) == 26
    assert {r["cost_kind"] for r in rows} == {"billed"} and {r["currency"] for r in rows} == {"USD"}
    by = {(r["day"], r["model"]): r for r in rows}
    gpt = by[("2026-03-07", "openai/gpt-4.1")]
    assert (dec(gpt["cost"]), gpt["requests"], gpt["input_tokens"], gpt["output_tokens"]) == (
        Decimal("0.075"), 17, 7017, 2105)
    claude = by[("2026-03-07", "anthropic/claude-sonnet-4")]
    assert (dec(claude["cost"]), claude["reasoning_tokens"], claude["input_tokens"]) == (Decimal("0.0125"), 120, 2007)
    assert ("2026-03-10", "openai/gpt-4.1") not in by and ("2026-03-15", "openai/gpt-4.1") not in by
    total = report["total"]
    assert dec(total["cost"]) == Decimal("1.1775") and total["cost_kind"] == "billed"
    assert total["requests"] == sum(10 + d + 3 for d in march_days) == 264

    table = run("--provider", "openrouter", "--month", "--by", "day,model", "-f", "table", **key)
    assert table.exit_code == 0
    line = next(x for x in table.stdout.splitlines() if x.startswith("2026-03-07") and "gpt-4.1" in x)
    assert "0.075 USD" in line and line.endswith("bill")  # 80 columns: the short kind

    quota = {q["name"]: q for q in run.json("quota", **key)}
    assert sorted(quota) == ["credits", "key/sk-or-v1-f00...000", "key/sk-or-v1-f01...001",
                             "key/sk-or-v1-f02...002"]
    credits = quota["credits"]
    assert (dec(credits["used"]), dec(credits["remaining"]), dec(credits["total"])) == (
        Decimal("18.37"), Decimal("31.63"), Decimal("50"))
    limited = quota["key/sk-or-v1-f00...000"]
    assert (dec(limited["total"]), dec(limited["remaining"]), limited["resets_at"]) == (
        Decimal("20"), Decimal("12.5"), "2026-04-01T00:00:00Z")

    # a second fetch replaces the not-yet-final days instead of adding to them
    again = json.loads(run("fetch", "openrouter", "--json", **key).stdout)["sources"][0]
    assert again["new"] == 0
    assert dec(run.json("--provider", "openrouter", "--month", **key)["total"]["cost"]) == Decimal("1.1775")
    assert "/credits" in fake.calls and "/keys" in fake.calls
    run.assert_no_secret(openrouter_fake.MANAGEMENT_KEY)


def test_openrouter_ordinary_key_key_limit_and_todays_spend(openrouter):
    run, fake = openrouter
    key = {"OPENROUTER_API_KEY": openrouter_fake.API_KEY}
    result = run("fetch", "openrouter", "--json", **key)
    assert result.exit_code == 0, result.stderr
    assert not any(c.startswith("/activity") for c in fake.calls)

    report = run.json("--provider", "openrouter", "--today", **key)
    assert dec(report["total"]["cost"]) == Decimal("1.23") and report["total"]["cost_kind"] == "billed"
    (limit,) = [q for q in run.json("quota", **key) if q["name"] == "key-limit"]
    assert (dec(limit["total"]), dec(limit["remaining"])) == (Decimal("100"), Decimal("74.5"))
    assert limit["resets_at"] == "2026-04-01T00:00:00Z"
    run.assert_no_secret(openrouter_fake.API_KEY)


def test_openrouter_rejected_key_exit_5(openrouter):
    run, _ = openrouter
    result = run("fetch", "openrouter", "--json", OPENROUTER_MANAGEMENT_KEY="sk-or-v1-FAKE-not-a-known-key")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["sources"][0]["status"] == "error"
    run.assert_no_secret("sk-or-v1-FAKE-not-a-known-key")


# -- issue 7: qwencloud -------------------------------------------------------------------------
QC_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def qwencloud(tokenmeter_env: Path) -> Cli:
    write_config(tokenmeter_env, '[tokenmeter]\ntimezone = "UTC"\n\n[sources.qwencloud]\nbackfill_months = 2\n')
    path = f"{FAKE_QWENCLOUD_DIR}{os.pathsep}{os.environ.get('PATH', '')}"
    return Cli(tokenmeter_env, {"TOKENMETER_LOAD_PLUGINS": "qwencloud", "TOKENMETER_NOW": QC_NOW.isoformat(),
                                "PATH": path, "FAKE_QWENCLOUD_SCENARIO": "full"})


QC_MONTH = {"qwen-plus": (Decimal("1.2723"), 2_300_000), "qwen3-max": (Decimal("0.84"), 140_000)}


def qwen_month(run: Cli) -> dict[str, tuple[Decimal | None, int, str]]:
    report = run.json("--provider", "qwen", "--month", "--by", "model")
    return {r["model"]: (dec(r["cost"]), r["total_tokens"], r["cost_kind"]) for r in report["rows"]}


def test_qwencloud_fetch_quota_report_and_data_survives_auth_failure(qwencloud):
    run = qwencloud
    result = run("fetch", "qwencloud", "--json")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["sources"]
    assert (summary["status"], summary["new"], summary["snapshots"]) == ("ok", 7, 7)

    want = {m: (cost, tokens, "billed") for m, (cost, tokens) in QC_MONTH.items()}
    assert qwen_month(run) == want
    assert dec(run.json("--provider", "qwen", "--all")["total"]["cost"]) == Decimal("4.1923")

    quota = {q["name"]: q for q in run.json("quota")}
    assert sorted(quota) == ["coding-plan/monthly", "coding-plan/per_5h", "coding-plan/weekly",
                             "free-tier/qwen-plus", "free-tier/qwen3-max", "free-tier/wan2.5-t2i-preview",
                             "token-plan/credits"]
    free = quota["free-tier/qwen-plus"]
    assert (free["unit"], dec(free["remaining"]), dec(free["total"])) == ("tokens", Decimal(734512), Decimal(1000000))
    per5 = quota["coding-plan/per_5h"]
    assert (dec(per5["used"]), dec(per5["remaining"]), per5["resets_at"]) == (
        Decimal(42), Decimal(558), "2026-11-22T14:06:40Z")

    # the login expires: the run fails with exit 5 and a hint, the stored data stays
    failed = run("fetch", "qwencloud", "--json", FAKE_QWENCLOUD_SCENARIO="auth_required")
    assert failed.exit_code == 5
    (error,) = json.loads(failed.stdout)["sources"]
    assert error["status"] == "error" and "qwencloud auth login" in error["message"]
    assert "\n" not in error["message"]
    assert qwen_month(run) == want
    assert len(run.json("quota")) == 7

    # the network is down: exit 3, the stored data stays too
    failed = run("fetch", "qwencloud", "--json", FAKE_QWENCLOUD_SCENARIO="network")
    assert failed.exit_code == 3, failed.stdout
    assert json.loads(failed.stdout)["sources"][0]["status"] == "error"
    assert qwen_month(run) == want


def test_qwencloud_fetch_all_with_cli_missing_is_skipped_not_failed(qwencloud, tmp_path):
    run = qwencloud
    result = run("fetch", "--json", PATH=str(tmp_path))  # no qwencloud executable anywhere
    assert result.exit_code == 0, result.stdout
    statuses = {s["source"]: s for s in json.loads(result.stdout)["sources"]}
    assert statuses["qwencloud"]["status"] == "skipped"
    assert "npm install -g @qwencloud/qwencloud-cli" in statuses["qwencloud"]["message"]


# -- issue 4: local logs and the demo -----------------------------------------------------------
def test_demo_works_offline_without_config(tokenmeter_env: Path, tmp_path: Path, monkeypatch):
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the demo opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert not (tokenmeter_env / "config.toml").exists()
    run = Cli(tokenmeter_env, {})  # plugins as installed, like a fresh machine
    result = run("demo", "--keep", str(tmp_path / "demo"), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert "150 new records" in result.stderr and "104 new records" in result.stderr
    assert "Next:" in result.stderr  # tells the user what to run next

    expected = json.loads(DEMO_EXPECTED.read_text())
    code, tsv = expected["qwen-code"]["totals"], expected["dashscope-log"]["totals"]
    rows = report["rows"]
    code_rows = [r for r in rows if r["provider"] == "qwen"]
    tsv_rows = [r for r in rows if r["provider"] != "qwen"]
    assert sum(r["requests"] for r in code_rows) == code["requests"]
    assert sum(r["input_tokens"] for r in code_rows) == code["prompt"]
    assert sum(r["output_tokens"] for r in code_rows) == code["candidates"]
    assert sum(r["cache_read_tokens"] for r in code_rows) == code["cached"]
    assert sum(r["reasoning_tokens"] for r in code_rows) == code["thoughts"]
    assert sum(r["total_tokens"] for r in code_rows) == code["total"]
    assert {r["cost_kind"] for r in code_rows} == {"estimated"}  # priced from the registered prices
    assert all(r["unpriced_requests"] == 0 and dec(r["cost"]) > 0 for r in code_rows)
    assert sum(r["requests"] for r in tsv_rows) == tsv["requests"]
    assert sum(r["input_tokens"] for r in tsv_rows) == tsv["input_tokens"]
    assert sum(r["output_tokens"] for r in tsv_rows) == tsv["output_tokens"]
    assert sum(dec(r["cost"]) for r in tsv_rows) == Decimal(tsv["cost_usd"])
    assert {r["cost_kind"] for r in tsv_rows} == {"logged"}
    total = report["total"]
    assert total["requests"] == code["requests"] + tsv["requests"] == 254
    assert total["cost_kind"] == "mixed"
    assert not (tokenmeter_env / "tokenmeter.db").exists()  # the user's database is not touched


def expected_samples_by_day_model(samples: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """expected.json of both samples, summed per (day, model) as `--by day,model` groups them."""
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost": Decimal(0)})
    code = json.loads((samples / "qwen-code" / "expected.json").read_text())
    for row in code["by_day_model"]:
        acc = out[(row["date"], row["model"])]
        acc["requests"] += row["requests"]
        acc["input_tokens"] += row["prompt"]
        acc["output_tokens"] += row["candidates"]
        acc["cost"] = None  # estimated: checked separately
    tsv = json.loads((samples / "dashscope" / "qwen-usage.tsv.expected.json").read_text())
    for row in tsv["by_day_model_provider"]:
        acc = out[(row["date"], row["model"])]
        acc["requests"] += row["requests"]
        acc["input_tokens"] += row["input_tokens"]
        acc["output_tokens"] += row["output_tokens"]
        if acc["cost"] is not None:
            acc["cost"] += Decimal(row["cost_usd"])
    return dict(out)


def test_fetch_local_logs_then_report_matches_expected(tokenmeter_env: Path, samples: Path, tmp_path: Path):
    copy = tmp_path / "samples"
    shutil.copytree(samples, copy)
    write_config(tokenmeter_env, f'[tokenmeter]\ntimezone = "UTC"\n\n'
                                 f'[sources.dashscope-log]\npaths = ["{copy}/dashscope/qwen-usage.tsv"]\n\n'
                                 f'[sources.qwen-code]\nroots = ["{copy}/qwen-code/home/.qwen"]\n')
    run = Cli(tokenmeter_env, {"TOKENMETER_LOAD_PLUGINS": "dashscope-log"})
    code_totals = json.loads((samples / "qwen-code" / "expected.json").read_text())["totals"]
    tsv_totals = json.loads((samples / "dashscope" / "qwen-usage.tsv.expected.json").read_text())["totals"]

    first = run("fetch", "dashscope-log", "qwen-code", "--json")
    assert first.exit_code == 0, first.stderr
    news = {s["source"]: s["new"] for s in json.loads(first.stdout)["sources"]}
    assert news == {"dashscope-log": tsv_totals["requests"], "qwen-code": code_totals["requests"]}

    def check_report() -> None:
        report = run.json("--all", "--by", "day,model")
        expected = expected_samples_by_day_model(samples)
        got = {(r["day"], r["model"]): r for r in report["rows"]}
        assert sorted(got) == sorted(expected)
        for key, want in expected.items():
            row = got[key]
            assert (row["requests"], row["input_tokens"], row["output_tokens"]) == (
                want["requests"], want["input_tokens"], want["output_tokens"]), key
            if want["cost"] is not None:  # TSV-only cells: the log's own USD, to the micro-dollar
                assert (dec(row["cost"]), row["cost_kind"]) == (want["cost"], "logged"), key
        total = report["total"]
        assert total["requests"] == code_totals["requests"] + tsv_totals["requests"]
        assert total["input_tokens"] == code_totals["prompt"] + tsv_totals["input_tokens"]
        assert total["output_tokens"] == code_totals["candidates"] + tsv_totals["output_tokens"]
        assert total["cache_read_tokens"] == code_totals["cached"]
        assert total["reasoning_tokens"] == code_totals["thoughts"]

    check_report()
    second = run("fetch", "dashscope-log", "qwen-code", "--json")
    assert second.exit_code == 0
    assert [(s["source"], s["new"], s["updated"]) for s in json.loads(second.stdout)["sources"]] == [
        ("dashscope-log", 0, 0), ("qwen-code", 0, 0)]
    check_report()
