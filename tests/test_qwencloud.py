"""The qwencloud plugin against a fake `qwencloud` executable (tests/fake_qwencloud/qwencloud)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from tokenmeter_plugins.qwencloud import QwenCloudLogsSource, QwenCloudSource, register_sources
from tokenmeter_plugins.qwencloud.cli import QwenCloudCli

from tokenmeter import (
    Cursor,
    NeedsCredentials,
    ProviderError,
    ProviderResponseError,
    ProviderUnavailable,
    QuotaSnapshot,
    SourceDataError,
    UsageRecord,
    Window,
)
from tokenmeter.testing import check_records, collect, fake_context

FAKE_DIR = Path(__file__).resolve().parent / "fake_qwencloud"
FAKE = str(FAKE_DIR / "qwencloud")
SCENARIOS = FAKE_DIR / "scenarios"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake's call log: a function returning the argv lists (and metadata) seen so far."""
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_QWENCLOUD_LOG", str(log))

    def read() -> list[dict]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return read


def scenario(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("FAKE_QWENCLOUD_SCENARIO", name)
    monkeypatch.delenv("FAKE_QWENCLOUD_DIR", raising=False)


def run(settings: dict | None = None, *, cursor: dict | None = None, window: Window | None = None, now=NOW):
    ctx = fake_context("qwencloud", now=now)
    values = {"command": FAKE, "backfill_months": 2, **(settings or {})}
    return collect(QwenCloudSource, values, ctx=ctx, cursor=cursor, window=window)


def by_key(records: list[UsageRecord]) -> dict[str, UsageRecord]:
    return {r.key: r for r in records}


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


# -- success ------------------------------------------------------------------------------------


def test_first_run_backfills_daily_billed_records(monkeypatch, calls):
    scenario(monkeypatch, "full")
    out = run()
    check_records(out.records)
    check_records(out.snapshots)
    recs = by_key(out.records)
    assert sorted(recs) == [
        "2026-10-05/qwen-plus",
        "2026-10-12/wan2.5-t2i-preview",
        "2026-10-19/qwen-plus",
        "2026-10-28/qwen-plus",
        "2026-11-02/qwen3-max",
        "2026-11-03/qwen-plus",
        "2026-11-20/qwen-plus",
    ]  # zero-filled days are not stored
    first = recs["2026-10-05/qwen-plus"]
    assert (first.start, first.end) == (utc(2026, 10, 5), utc(2026, 10, 6))
    assert first.provider == "qwen" and first.model == "qwen-plus"
    assert first.cost == Decimal("0.86") and first.currency == "USD" and first.cost_kind == "billed"
    assert first.total_tokens == 1_550_000
    assert first.input_tokens is None and first.output_tokens is None  # the CLI merges them
    assert first.requests is None
    image = recs["2026-10-12/wan2.5-t2i-preview"]
    assert image.cost == Decimal("0.36") and image.total_tokens is None
    assert image.details["usage"] == {"images": 12}
    # money is exact: the October qwen-plus days add up to the payg month figure to the cent
    october = sum(r.cost for r in out.records if r.model == "qwen-plus" and r.start.month == 10)
    assert october == Decimal("1.72")
    assert sum(r.cost for r in out.records) == Decimal("4.1923")
    assert sum(r.total_tokens or 0 for r in out.records) == 5_540_000
    assert not any(r.details.get("possibly_truncated") for r in out.records)
    assert out.cursor == {"version": 1, "final_through": "2026-11-19"}
    assert out.ctx.warnings == []

    seen = calls()
    argvs = [c["argv"] for c in seen]
    assert argvs[0] == ["usage", "payg", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "json"]
    assert ["usage", "breakdown", "--model", "wan2.5-t2i-preview", "--granularity", "day",
            "--from", "2026-10-01", "--to", "2026-10-31", "--format", "json"] in argvs
    assert ["usage", "payg", "--from", "2026-11-01", "--to", "2026-11-22", "--format", "json"] in argvs
    assert argvs[-1] == ["usage", "summary", "--from", "2026-11-01", "--to", "2026-11-22", "--format", "json"]
    assert len(argvs) == 7  # 2 payg + 4 breakdown + 1 summary
    for call in seen:
        assert call["argv"][-2:] == ["--format", "json"]
        assert "--from" in call["argv"] and "--to" in call["argv"]
        assert call["verbosity"] == "suppress"
        assert os.path.realpath(call["cwd"]) == os.path.realpath(tempfile.gettempdir())
        if call["stdin"] is not None:
            assert call["stdin"] == "/dev/null"


def test_snapshots_free_tier_coding_plan_and_token_plan(monkeypatch, calls):
    scenario(monkeypatch, "full")
    snaps = {s.name: s for s in run().snapshots}
    assert sorted(snaps) == [
        "coding-plan/monthly",
        "coding-plan/per_5h",
        "coding-plan/weekly",
        "free-tier/qwen-plus",
        "free-tier/qwen3-max",
        "free-tier/wan2.5-t2i-preview",
        "token-plan/credits",
    ]  # qwen-vl-max has quota null (free tier not enabled): no snapshot
    free = snaps["free-tier/qwen-plus"]
    assert free.provider == "qwen" and free.unit == "tokens" and free.observed_at == NOW
    assert (free.remaining, free.total, free.used) == (Decimal(734512), Decimal(1000000), Decimal(265488))
    assert free.resets_at == utc(2027, 2, 20)
    assert free.details == {"status": "valid", "used_pct": 26.54}
    assert snaps["free-tier/qwen3-max"].remaining == 0 and snaps["free-tier/qwen3-max"].resets_at is None
    assert snaps["free-tier/wan2.5-t2i-preview"].unit == "images"
    per5 = snaps["coding-plan/per_5h"]
    assert per5.unit == "requests"
    assert (per5.remaining, per5.total, per5.used) == (Decimal(558), Decimal(600), Decimal(42))
    assert per5.resets_at == datetime(2026, 11, 22, 14, 6, 40, tzinfo=UTC)
    assert per5.details["plan"] == "pro"
    assert snaps["coding-plan/monthly"].used == Decimal(3100)
    credits = snaps["token-plan/credits"]
    assert (credits.unit, credits.remaining, credits.total) == ("credits", Decimal("17250.5"), Decimal(25000))
    assert credits.used == Decimal("7749.5") and credits.resets_at == utc(2027, 1, 1)


def test_next_run_refetches_only_the_settle_window(monkeypatch, calls):
    scenario(monkeypatch, "full")
    out = run(cursor={"version": 1, "final_through": "2026-11-19"})
    assert [r.key for r in out.records] == ["2026-11-20/qwen-plus"]
    assert out.records[0].cost == Decimal("0.86") and out.records[0].total_tokens == 1_550_000
    argvs = [c["argv"] for c in calls()]
    assert argvs[:2] == [
        ["usage", "payg", "--from", "2026-11-20", "--to", "2026-11-22", "--format", "json"],
        ["usage", "breakdown", "--model", "qwen-plus", "--granularity", "day",
         "--from", "2026-11-20", "--to", "2026-11-22", "--format", "json"],
    ]
    assert not any("2026-10-01" in a for a in argvs)  # final months are never fetched again
    assert out.cursor == {"version": 1, "final_through": "2026-11-19"}


def test_cursor_behind_fetches_the_gap_and_the_settle_days(monkeypatch, calls):
    scenario(monkeypatch, "full")
    out = run(cursor={"version": 1, "final_through": "2026-10-31"})
    assert sorted(r.key for r in out.records) == [
        "2026-11-02/qwen3-max", "2026-11-03/qwen-plus", "2026-11-20/qwen-plus"]
    assert calls()[0]["argv"][:6] == ["usage", "payg", "--from", "2026-11-01", "--to", "2026-11-22"]
    assert out.cursor["final_through"] == "2026-11-19"


def test_explicit_window_fetches_that_range_and_keeps_the_cursor(monkeypatch, calls):
    scenario(monkeypatch, "full")
    window = Window(start=utc(2026, 10, 1), end=utc(2026, 11, 1))  # October; the end is exclusive
    out = run(cursor={"version": 1, "final_through": "2026-11-19"}, window=window)
    assert sorted(r.key for r in out.records) == [
        "2026-10-05/qwen-plus", "2026-10-12/wan2.5-t2i-preview",
        "2026-10-19/qwen-plus", "2026-10-28/qwen-plus",
    ]
    assert [c["argv"][1] for c in calls()] == ["payg", "breakdown", "breakdown", "summary"]
    assert out.cursor == {"version": 1, "final_through": "2026-11-19"}


def test_cli_found_on_path_with_the_default_command(monkeypatch, calls):
    scenario(monkeypatch, "full")
    monkeypatch.setenv("PATH", f"{FAKE_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    ctx = fake_context("qwencloud", now=NOW)
    source = QwenCloudSource(QwenCloudSource.Settings(backfill_months=1), ctx)
    assert source.available() is None
    out = collect(QwenCloudSource, {"backfill_months": 1}, ctx=ctx)
    assert len(out.records) == 3 and len(out.snapshots) == 7


def test_empty_account(monkeypatch, calls):
    scenario(monkeypatch, "empty")
    out = run()
    assert out.records == [] and out.snapshots == []
    assert out.cursor == {"version": 1, "final_through": "2026-11-19"}
    assert [c["argv"][1] for c in calls()] == ["payg", "payg", "summary"]  # no model → no breakdown


def test_request_logs_on_the_ledger_source_points_to_the_log_source(monkeypatch, calls):
    scenario(monkeypatch, "empty")
    out = run({"request_logs": True})
    assert any("[sources.qwencloud-logs]" in w for w in out.ctx.warnings)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("auth_required", NeedsCredentials, ["AUTH_REQUIRED", "run `qwencloud auth login`"]),
        ("token_expired", NeedsCredentials, ["login expired", "TOKEN_EXPIRED", "run `qwencloud auth login`"]),
        ("gateway401", NeedsCredentials, ["(401)", "run `qwencloud auth login`"]),
        ("network", ProviderUnavailable, ["network request to QwenCloud failed",
                                          "getaddrinfo ENOTFOUND cli.qwencloud.com"]),
        ("http502", ProviderUnavailable, ["QwenCloud is unavailable", "HTTP 502"]),
        ("invalid_range", ProviderResponseError, ["rejected the request", "INVALID_RANGE"]),
        ("empty_stdout", SourceDataError, ["`qwencloud usage payg` exited 0 but printed nothing"]),
        ("garbage", SourceDataError, ["`qwencloud usage payg` printed something that is not JSON"]),
    ],
)
def test_cli_failures_map_to_one_line_errors(monkeypatch, calls, name, error, words):
    scenario(monkeypatch, name)
    with pytest.raises(error) as info:
        run()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert info.value.source == "qwencloud"
    if error is not NeedsCredentials:
        assert not isinstance(info.value, NeedsCredentials)
    assert len(calls()) == 1  # the first failure stops the run


def test_exit_codes_of_the_errors():
    assert NeedsCredentials.exit_code == 5 and ProviderUnavailable.exit_code == 3


def test_exit_4_with_two_documents_keeps_the_finished_month(monkeypatch, calls):
    scenario(monkeypatch, "invalid_argument")
    ctx = fake_context("qwencloud", now=NOW)
    source = QwenCloudSource(QwenCloudSource.Settings(command=FAKE, backfill_months=2), ctx)
    items = []
    with pytest.raises(ProviderResponseError) as info:
        for item in source.fetch(Window(start=None, end=NOW), {}):
            items.append(item)
    assert str(info.value) == (
        "`qwencloud usage breakdown` rejected the request (INVALID_ARGUMENT: Invalid granularity 'week'. "
        "Allowed: day, month, quarter); tokenmeter may need an update for this CLI version"
    )
    # October was finished and checkpointed before November failed: the host commits it
    assert isinstance(items[-1], Cursor) and items[-1].state == {"version": 1, "final_through": "2026-10-31"}
    assert sorted(i.key for i in items if isinstance(i, UsageRecord)) == [
        "2026-10-05/qwen-plus", "2026-10-12/wan2.5-t2i-preview",
        "2026-10-19/qwen-plus", "2026-10-28/qwen-plus",
    ]


def test_hang_past_the_timeout(monkeypatch, calls):
    scenario(monkeypatch, "hang")
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable) as info:
        run({"timeout": 1})
    assert time.monotonic() - began < 4
    assert str(info.value) == (
        "`qwencloud usage payg` did not answer within the 1 s timeout; check the network or raise "
        "`timeout` in [sources.qwencloud]"
    )


def test_oversized_output_is_refused(monkeypatch, calls):
    scenario(monkeypatch, "full")
    monkeypatch.setattr(QwenCloudCli, "max_output_bytes", 100)
    with pytest.raises(SourceDataError, match=r"printed more than 100 bytes; refusing to parse it"):
        run()


def test_cli_not_installed(tmp_path):
    missing = str(tmp_path / "nowhere" / "qwencloud")
    ctx = fake_context("qwencloud", now=NOW)
    source = QwenCloudSource(QwenCloudSource.Settings(command=missing), ctx)
    expected = (f"qwencloud CLI not found ({missing!r}): install it with "
                "`npm install -g @qwencloud/qwencloud-cli` (Node >= 18)")
    assert source.available() == expected
    with pytest.raises(ProviderError) as info:
        list(source.fetch(Window(start=None, end=NOW), {}))
    assert str(info.value) == expected and not isinstance(info.value, NeedsCredentials)
    assert source.health() == (False, expected)


def test_possibly_truncated_month_is_flagged(tmp_path, monkeypatch, calls):
    folder = tmp_path / "truncated"
    folder.mkdir()
    monkeypatch.setenv("FAKE_QWENCLOUD_DIR", str(folder))
    models = ["qwen-plus", "qwen-max", "qwen-turbo"]
    lo, hi = date(2026, 11, 1), date(2026, 11, 22)
    routes = []
    payg = []
    for model in models:
        rows = []
        for i in range(22):
            day = lo + timedelta(days=i)
            used = i < 15  # 3 models x 15 days x (input + output) = 90 line items
            rows.append({"period": day.isoformat(), "cost": 0.01 if used else 0, "currency": "USD",
                         "tokens_in": 1000 if used else 0})
        doc = {"model_id": model, "period": {"from": lo.isoformat(), "to": hi.isoformat()},
               "granularity": "day", "rows": rows,
               "total": {"cost": 0.15, "currency": "USD", "tokens_in": 15000}}
        (folder / f"{model}.json").write_text(json.dumps(doc))
        routes.append({"command": ["usage", "breakdown"], "options": {"--model": model},
                       "stdout_file": f"{model}.json"})
        payg.append({"model_id": model, "usage": {"tokens": 15000}, "cost": 0.15, "currency": "USD"})
    total = {"cost": 0.45, "currency": "USD"}
    (folder / "payg.json").write_text(json.dumps({"pay_as_you_go": {"models": payg, "total": total}}))
    routes += [{"command": ["usage", "payg"], "stdout_file": "payg.json"},
               {"command": ["usage", "summary"], "stdout_file": str(SCENARIOS / "empty" / "summary.json")}]
    (folder / "routes.json").write_text(json.dumps(routes))
    out = run({"backfill_months": 1})
    assert len(out.records) == 45
    assert all(r.details["possibly_truncated"] is True for r in out.records)
    assert sum(r.cost for r in out.records) == Decimal("0.45")
    assert out.ctx.warnings == [
        "qwencloud: 2026-11 may be incomplete (about 90 bill line items): the CLI reads only the first 100 "
        "line items of a month; compare with the console (Billing > Pay-as-you-go, By Day)"
    ]


def test_payg_and_daily_rows_disagreeing_flags_the_month(tmp_path, monkeypatch, calls):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    monkeypatch.setenv("FAKE_QWENCLOUD_DIR", str(folder))
    full = SCENARIOS / "full"
    (folder / "payg.json").write_text(json.dumps({"pay_as_you_go": {
        "models": [{"model_id": "qwen-plus", "usage": {"tokens": 1550000}, "cost": 0.86, "currency": "USD"},
                   {"model_id": "Other", "usage": {"tokens": 5}, "cost": 0.02, "currency": "USD"}],
        "total": {"cost": 0.88, "currency": "USD"}}}))
    routes = [
        {"command": ["usage", "payg"], "stdout_file": "payg.json"},
        {"command": ["usage", "breakdown"], "options": {"--model": "qwen-plus"},
         "stdout_file": str(full / "breakdown-qwen-plus-2026-11.json")},
        {"command": ["usage", "breakdown"], "options": {"--model": "Other"}, "exit": 1,
         "stderr": json.dumps({"error": {"code": "MODEL_NOT_FOUND", "message": "Model 'Other' not found.",
                                         "exit_code": 1}}) + "\n"},
        {"command": ["usage", "summary"], "stdout_file": str(SCENARIOS / "empty" / "summary.json")},
    ]
    (folder / "routes.json").write_text(json.dumps(routes))
    out = run({"backfill_months": 1})
    # breakdown has 1.2723 for the month while payg says 0.86: payg lost line items
    assert sorted(r.key for r in out.records) == ["2026-11-03/qwen-plus", "2026-11-20/qwen-plus"]
    assert all(r.details["possibly_truncated"] for r in out.records)
    assert out.ctx.skipped == 1 and "2026-11/Other" in out.ctx.skip_examples[0]
    assert any("refused model 'Other'" in w for w in out.ctx.warnings)
    assert any("qwen-plus payg 0.86 vs daily 1.2723" in w for w in out.ctx.warnings)


# -- health ------------------------------------------------------------------------------------


def test_health_logged_in(monkeypatch, calls):
    scenario(monkeypatch, "full")
    source = QwenCloudSource(QwenCloudSource.Settings(command=FAKE), fake_context("qwencloud", now=NOW))
    assert source.health() == (True, "logged in as 5000123456789 (login expires 2026-12-01T08:00:00Z)")
    assert calls()[0]["argv"] == ["auth", "status", "--format", "json"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_logged_in", "not logged in to QwenCloud (token_expired): run `qwencloud auth login`"),
        ("auth_required", "`qwencloud auth status`: QwenCloud not logged in or login rejected "
                          "(AUTH_REQUIRED): run `qwencloud auth login`"),
        ("garbage", "`qwencloud auth status` printed something that is not JSON"),
    ],
)
def test_health_failures(monkeypatch, calls, name, message):
    scenario(monkeypatch, name)
    source = QwenCloudSource(QwenCloudSource.Settings(command=FAKE), fake_context("qwencloud", now=NOW))
    ok, text = source.health()
    assert ok is False and text.startswith(message) and "\n" not in text


# -- request logs ------------------------------------------------------------------------------


def test_logs_source_is_off_by_default():
    source = QwenCloudLogsSource(QwenCloudLogsSource.Settings(command=FAKE), fake_context("qwencloud-logs"))
    assert source.available() == "off: set request_logs = true in [sources.qwencloud-logs]"
    assert QwenCloudLogsSource.kind == "log" and QwenCloudLogsSource.provider == "qwen"


def test_logs_source_pages_through_requests(monkeypatch, calls):
    scenario(monkeypatch, "full")
    ctx = fake_context("qwencloud-logs", now=NOW)
    settings = {"request_logs": True, "command": FAKE, "page_size": 2}
    assert QwenCloudLogsSource(QwenCloudLogsSource.Settings(**settings), ctx).available() is None
    out = collect(QwenCloudLogsSource, settings, ctx=ctx)
    check_records(out.records)
    recs = by_key(out.records)
    assert sorted(recs) == ["req/req-1", "req/req-2", "req/req-3"]
    one = recs["req/req-1"]
    assert (one.model, one.requests, one.errors) == ("qwen-plus", 1, 0)
    assert (one.input_tokens, one.output_tokens) == (1200, 350)
    assert one.start == datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC)
    assert one.end == one.start + timedelta(milliseconds=1840)
    assert one.cost is None and one.provider == "qwen"
    two = recs["req/req-2"]
    assert two.start == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert (two.cache_read_tokens, two.reasoning_tokens) == (4096, 600)
    three = recs["req/req-3"]
    assert three.errors == 1 and three.details["error_code"] == "InvalidParameter"
    assert three.input_tokens is None
    assert [c["argv"] for c in calls()] == [
        ["usage", "logs", "--from", "2026-11-09", "--to", "2026-11-22", "--page", str(p), "--page-size", "2",
         "--format", "json"] for p in (1, 2)
    ]
    assert out.cursor == {"version": 1, "through": "2026-11-22"}


def test_logs_source_continues_from_its_cursor_with_a_day_of_overlap(monkeypatch, calls):
    scenario(monkeypatch, "full")
    collect(QwenCloudLogsSource, {"request_logs": True, "command": FAKE, "page_size": 2},
            ctx=fake_context("qwencloud-logs", now=NOW), cursor={"version": 1, "through": "2026-11-20"})
    assert calls()[0]["argv"][2:6] == ["--from", "2026-11-19", "--to", "2026-11-22"]


# -- plugin wiring -----------------------------------------------------------------------------


def test_registers_both_sources_with_documented_settings():
    seen = []
    register_sources(seen.append)
    assert seen == [QwenCloudSource, QwenCloudLogsSource]
    assert (QwenCloudSource.id, QwenCloudSource.provider) == ("qwencloud", "qwen")
    assert QwenCloudSource.kind == "ledger"
    defaults = QwenCloudSource.Settings()
    assert (defaults.command, defaults.timeout, defaults.request_logs) == ("qwencloud", 60.0, False)
    for cls in seen:
        for f in dataclasses.fields(cls.Settings):
            assert f.metadata.get("help"), f"{cls.id}.{f.name} has no help"


def test_snapshot_and_record_types(monkeypatch, calls):
    scenario(monkeypatch, "full")
    out = run(cursor={"version": 1, "final_through": "2026-11-19"})
    assert all(isinstance(s, QuotaSnapshot) for s in out.snapshots)
    assert all(r.start.tzinfo is not None for r in out.records)


def test_model_listed_twice_in_payg_is_broken_down_once(tmp_path, monkeypatch, calls):
    folder = tmp_path / "twice"
    folder.mkdir()
    monkeypatch.setenv("FAKE_QWENCLOUD_DIR", str(folder))
    full = SCENARIOS / "full"
    (folder / "payg.json").write_text(json.dumps({"pay_as_you_go": {
        "models": [{"model_id": "qwen-plus", "usage": {"tokens": 2300000}, "cost": 1.2, "currency": "USD"},
                   {"model_id": "qwen-plus", "usage": {"images": 1}, "cost": 0.0723, "currency": "USD"}],
        "total": {"cost": 1.2723, "currency": "USD"}}}))
    (folder / "routes.json").write_text(json.dumps([
        {"command": ["usage", "payg"], "stdout_file": "payg.json"},
        {"command": ["usage", "breakdown"], "stdout_file": str(full / "breakdown-qwen-plus-2026-11.json")},
        {"command": ["usage", "summary"], "stdout_file": str(SCENARIOS / "empty" / "summary.json")},
    ]))
    out = run({"backfill_months": 1})
    check_records(out.records)
    assert sorted(r.key for r in out.records) == ["2026-11-03/qwen-plus", "2026-11-20/qwen-plus"]
    assert [c["argv"][1] for c in calls()] == ["payg", "breakdown", "summary"]
    assert out.ctx.warnings == []  # 1.2 + 0.0723 matches the daily rows


def test_billing_timezone_moves_the_day_boundaries(monkeypatch, calls):
    scenario(monkeypatch, "full")
    out = run({"billing_timezone": "Asia/Shanghai"}, cursor={"version": 1, "final_through": "2026-11-19"})
    (rec,) = out.records
    assert rec.key == "2026-11-20/qwen-plus"
    assert rec.start == datetime(2026, 11, 19, 16, tzinfo=UTC)
    assert rec.end == datetime(2026, 11, 20, 16, tzinfo=UTC)


def test_bad_billing_timezone_is_a_config_error(monkeypatch, calls):
    from tokenmeter import ConfigError

    scenario(monkeypatch, "full")
    with pytest.raises(ConfigError, match="billing_timezone 'Mars/Olympus' is not an IANA zone"):
        run({"billing_timezone": "Mars/Olympus"})
    assert calls() == []


def test_stored_data_survives_a_failed_run(tmp_path, monkeypatch, calls):
    from tokenmeter.testing import run_source

    db = tmp_path / "tm.db"
    settings = {"command": FAKE, "backfill_months": 2}
    scenario(monkeypatch, "invalid_argument")  # October succeeds, November's breakdown fails
    rows = run_source(QwenCloudSource, settings, db_path=db, now=NOW)
    assert sorted(r["key"] for r in rows) == [
        "2026-10-05/qwen-plus", "2026-10-12/wan2.5-t2i-preview",
        "2026-10-19/qwen-plus", "2026-10-28/qwen-plus",
    ]
    scenario(monkeypatch, "full")  # the next run continues after the committed checkpoint
    rows = run_source(QwenCloudSource, settings, db_path=db, now=NOW)
    assert len(rows) == 7
    assert not any(c["argv"][1:4] == ["payg", "--from", "2026-10-01"] for c in calls()[5:])
    scenario(monkeypatch, "auth_required")
    rows = run_source(QwenCloudSource, settings, db_path=db, now=NOW)
    assert len(rows) == 7


def test_settings_out_of_range_are_config_errors():
    from tokenmeter import ConfigError
    from tokenmeter.config import build_settings  # the host's own settings parser

    with pytest.raises(ConfigError, match="backfill_months must be between 1 and 12, got 13"):
        build_settings(QwenCloudSource.Settings, {"backfill_months": 13}, "sources.qwencloud")
    with pytest.raises(ConfigError, match="page_size must be between 1 and 100, got 500"):
        build_settings(QwenCloudLogsSource.Settings, {"page_size": 500}, "sources.qwencloud-logs")
    table = {"timeout": 90, "command": "/opt/q"}
    settings = build_settings(QwenCloudSource.Settings, table, "sources.qwencloud")
    assert (settings.timeout, settings.command) == (90.0, "/opt/q")


def test_deeply_nested_garbage_is_a_one_line_error(tmp_path, monkeypatch, calls):
    folder = tmp_path / "deep"
    folder.mkdir()
    monkeypatch.setenv("FAKE_QWENCLOUD_DIR", str(folder))
    deep = "[" * 100_000
    (folder / "routes.json").write_text(json.dumps([
        {"command": ["usage", "payg"], "stdout": deep, "exit": 0},
        {"command": ["auth", "status"], "stdout": deep, "stderr": '{"error":' + deep, "exit": 1},
    ]))
    with pytest.raises(SourceDataError, match=r"^`qwencloud usage payg` printed something that is not JSON"):
        run()
    ok, message = QwenCloudSource(QwenCloudSource.Settings(command=FAKE), fake_context("qwencloud")).health()
    assert not ok and message.startswith('`qwencloud auth status` failed with exit 1: {"error":[[[')
    assert "\n" not in message and len(message) < 300


def test_children_left_behind_are_ended_and_do_not_delay(tmp_path):
    """A CLI that leaves a child holding its output pipes (e.g. an update check) must not stall the run."""
    pid_file = tmp_path / "child.pid"
    cli = tmp_path / "qwencloud"
    cli.write_text("#!/bin/sh\n"
                   f"sleep 30 &\necho $! > {pid_file}\n"
                   "echo '{\"authenticated\":true,\"server_verified\":true}'\n")
    cli.chmod(0o755)
    began = time.monotonic()
    ok, message = QwenCloudSource(QwenCloudSource.Settings(command=str(cli)), fake_context("qwencloud")).health()
    assert time.monotonic() - began < 3
    assert (ok, message) == (True, "logged in")
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # killed: gone, or a zombie until its new parent reaps it
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the CLI's child {pid} is still running")


def test_wrongly_typed_documents_give_a_clear_error_or_are_skipped(tmp_path, monkeypatch, calls):
    folder = tmp_path / "typed"
    folder.mkdir()
    monkeypatch.setenv("FAKE_QWENCLOUD_DIR", str(folder))
    empty_payg = json.dumps({"pay_as_you_go": {"models": [], "total": {"cost": 0, "currency": "USD"}}})
    item = {"requestId": "r1", "model": "qwen-plus", "createdAt": "2026-11-20T10:00:00+00:00",
            "statusCode": 200, "usages": 7}
    (folder / "routes.json").write_text(json.dumps([
        {"command": ["usage", "payg"], "options": {"--from": "2026-10-01"}, "stdout": '{"pay_as_you_go":[1]}'},
        {"command": ["usage", "payg"], "stdout": empty_payg},
        {"command": ["usage", "summary"], "stdout": '{"free_tier":7,"coding_plan":{"subscribed":false}}'},
        {"command": ["usage", "logs"], "stdout": json.dumps({"totalCount": 1, "items": [item]})},
    ]))
    with pytest.raises(SourceDataError, match=r"^`qwencloud usage payg` printed pay_as_you_go that is not an object"):
        run()
    out = run({"backfill_months": 1})  # November only: an empty month, then the summary
    assert out.records == [] and out.snapshots == []
    logs = collect(QwenCloudLogsSource, {"request_logs": True, "command": FAKE},
                   ctx=fake_context("qwencloud-logs", now=NOW))
    assert [(r.key, r.input_tokens, r.requests) for r in logs.records] == [("req/r1", None, 1)]
