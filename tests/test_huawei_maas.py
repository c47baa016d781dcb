"""huawei-maas: signing, day windows, ×1000 tokens, project lookup, retries, credentials, cassettes."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from huawei_fake import (
    BACKFILL_NOW,
    CASSETTES,
    FAKE_AK,
    FAKE_PROJECT,
    FAKE_SK,
    FAKE_TOKEN,
    REGION,
    FakeHuawei,
    FakeServer,
    run_scenario,
    verify_signature,
)
from tokenmeter_plugins.huawei_maas import HuaweiMaasSource, register_sources
from tokenmeter_plugins.huawei_maas.credentials import parse_credentials_text
from tokenmeter_plugins.huawei_maas.source import timezone_name

from tokenmeter import (
    ConfigError,
    Cursor,
    NeedsCredentials,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    UsageRecord,
    Window,
)
from tokenmeter.testing import check_records, collect, fake_context

SHANGHAI = ZoneInfo("Asia/Shanghai")
ENV = {"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": FAKE_SK}
ENV_TOKEN = {**ENV, "HW_SECURITY_TOKEN": FAKE_TOKEN}
SECRETS = (FAKE_AK, FAKE_SK, FAKE_TOKEN)
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:8765"
SETTINGS = {"endpoint": BASE, "iam_endpoint": BASE, "project_id": FAKE_PROJECT}


class FakeClock:
    """Wall and monotonic clock that only move when the source sleeps (or a test ticks)."""

    def __init__(self, wall: datetime = NOW) -> None:
        self.wall = wall
        self.mono = 1000.0
        self.sleeps: list[float] = []

    def utcnow(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(HuaweiMaasSource, "clock", fake)
    return fake


def run(fake: FakeHuawei, settings: dict[str, Any] | None = None, *, env: dict[str, str] = ENV,
        tz: Any = UTC, now: datetime = NOW, window: Window | None = None,
        cursor: dict[str, Any] | None = None):
    ctx = fake_context(HuaweiMaasSource.id, now=now, env=env, handler=fake, timezone=tz)
    return collect(HuaweiMaasSource, {**SETTINGS, **(settings or {})}, ctx=ctx, window=window, cursor=cursor)


def one_day(day: date, tz: Any = UTC) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return Window(start=start, end=start + timedelta(days=1))


def by_key(records: list[UsageRecord]) -> dict[str, UsageRecord]:
    return {r.key: r for r in records}


# -- signing -----------------------------------------------------------------------------------
def test_every_request_is_signed_and_verifies(clock: FakeClock) -> None:
    fake = FakeHuawei()
    out = run(fake, {"project_id": None})
    assert fake.rejected == []
    assert [r["method"] for r in fake.requests] == ["GET"] + ["POST"] * 30
    assert fake.requests[0]["path"] == "/v3/projects" and fake.requests[0]["query"] == "name=cn-southwest-2"
    auth = fake.requests[1]["headers"]["authorization"]
    assert auth.startswith(f"SDK-HMAC-SHA256 Access={FAKE_AK}, SignedHeaders=content-type;host;x-sdk-date, ")
    assert fake.requests[1]["headers"]["x-sdk-date"] == "20260315T120000Z"  # from the (fake) wall clock
    assert len(out.records) == 30
    check_records(out.records)


def test_the_fake_verifier_rejects_a_tampered_body(clock: FakeClock) -> None:
    fake = FakeHuawei()
    run(fake, window=one_day(date(2026, 3, 14)))
    sent = fake.requests[0]
    body = json.dumps(sent["body"], separators=(",", ":")).encode()
    assert verify_signature("POST", sent["path"], "", sent["headers"], body) is None
    assert verify_signature("POST", sent["path"], "", sent["headers"], body + b" ") == "signature mismatch"
    wrong_sk = verify_signature("POST", sent["path"], "", sent["headers"], body, sk="X" * 40)
    assert wrong_sk == "signature mismatch"


def test_security_token_is_sent_and_signed(clock: FakeClock) -> None:
    fake = FakeHuawei(token=FAKE_TOKEN)
    out = run(fake, {"project_id": None}, env=ENV_TOKEN, window=one_day(date(2026, 3, 14)))
    assert fake.rejected == []
    for request in fake.requests:  # the IAM lookup and the statistics call
        assert request["headers"]["x-security-token"] == FAKE_TOKEN
        signed = "SignedHeaders=content-type;host;x-sdk-date;x-security-token,"
        assert signed in request["headers"]["authorization"]
    assert len(out.records) == 1


def test_missing_token_is_caught_by_the_fake(clock: FakeClock) -> None:
    fake = FakeHuawei(token=FAKE_TOKEN)  # the server expects a token the client does not send
    with pytest.raises(ProviderAuthError, match="signature rejected: check HW_ACCESS_KEY/HW_SECRET_KEY"):
        run(fake, window=one_day(date(2026, 3, 14)))


# -- numbers and day windows -------------------------------------------------------------------
def test_thousands_are_multiplied_and_rounded_total_kept_as_reported(clock: FakeClock) -> None:
    def usage(body: dict[str, Any]) -> dict[str, Any]:
        return {"total_request_count": 67188, "total_error_count": 8002, "total_token": 2482084.98,
                "total_prompt_token": 2456504.362, "total_completion_token": 0.0005,
                "total_completion_tasks": 0, "total_infer_count": 0}

    out = run(FakeHuawei(usage=usage), window=one_day(date(2026, 3, 14)))
    (rec,) = out.records
    assert rec.requests == 67188 and rec.errors == 8002
    assert rec.input_tokens == 2_456_504_362
    assert rec.output_tokens == 1  # 0.5 tokens rounds half up
    assert rec.total_tokens == 2_482_084_980  # as reported, not input + output (2_456_504_363)
    assert rec.model is None and rec.cost is None and rec.cost_kind is None
    assert rec.account == FAKE_PROJECT and rec.provider == "huawei-maas"
    assert rec.key == "2026-03-14/2/real_time"
    assert rec.details == {"service_type": 2, "service": "preset", "infer_type": "real_time",
                           "region": REGION, "timezone": "UTC"}


def test_float_noise_does_not_shift_rounding(clock: FakeClock) -> None:
    # 1.0005 * 1000 is 1000.4999999999999 in binary floats; the JSON text says 1000.5 -> 1001
    out = run(FakeHuawei(usage=lambda b: {"total_request_count": 1, "total_token": 1.0005,
                                          "total_prompt_token": 1.0005, "total_completion_token": 0}),
              window=one_day(date(2026, 3, 14)))
    assert out.records[0].total_tokens == 1001 and out.records[0].input_tokens == 1001
    assert out.records[0].output_tokens == 0 and out.records[0].errors is None  # absent -> None


def test_day_windows_in_shanghai_vs_utc(clock: FakeClock) -> None:
    fake_sh = FakeHuawei()
    out_sh = run(fake_sh, tz=SHANGHAI, window=one_day(date(2026, 3, 14), SHANGHAI))
    fake_utc = FakeHuawei()
    out_utc = run(fake_utc, tz=UTC, window=one_day(date(2026, 3, 14), UTC))
    # 2026-03-14 in Shanghai is 2026-03-13 16:00 UTC .. 2026-03-14 16:00 UTC (epoch ms below);
    # 2026-03-14 in UTC starts eight hours later.
    assert fake_sh.statistics_bodies == [{"service_type": 2, "start_time": 1773417600000,
                                          "end_time": 1773504000000, "infer_type": "real_time",
                                          "timezone": "Asia/Shanghai"}]
    assert fake_utc.statistics_bodies == [{"service_type": 2, "start_time": 1773446400000,
                                           "end_time": 1773532800000, "infer_type": "real_time",
                                           "timezone": "UTC"}]
    (sh,) = out_sh.records
    assert sh.key == "2026-03-14/2/real_time"
    assert sh.start == datetime(2026, 3, 14, tzinfo=SHANGHAI) == datetime(2026, 3, 13, 16, tzinfo=UTC)
    assert sh.end == datetime(2026, 3, 15, tzinfo=SHANGHAI)
    assert "partial" not in sh.details
    (utc,) = out_utc.records
    assert utc.start == datetime(2026, 3, 14, tzinfo=UTC) and utc.end == datetime(2026, 3, 15, tzinfo=UTC)


def test_dst_day_is_23_hours(clock: FakeClock) -> None:
    new_york = ZoneInfo("America/New_York")
    fake = FakeHuawei()
    out = run(fake, tz=new_york, window=one_day(date(2026, 3, 8), new_york))
    (body,) = fake.statistics_bodies
    assert body["timezone"] == "America/New_York"
    assert body["start_time"] == 1772946000000  # 2026-03-08 05:00 UTC (EST)
    assert body["end_time"] - body["start_time"] == 23 * 3_600_000  # clocks go forward that night
    assert out.records[0].end == datetime(2026, 3, 9, 4, tzinfo=UTC)


def test_today_is_partial_and_not_complete(clock: FakeClock) -> None:
    fake = FakeHuawei()
    out = run(fake, window=Window(start=datetime(2026, 3, 14, tzinfo=UTC), end=NOW),
              cursor={"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-13"})
    assert [r.key for r in out.records] == ["2026-03-14/2/real_time", "2026-03-15/2/real_time"]
    today = fake.statistics_bodies[1]
    assert today["start_time"] == 1773532800000 and today["end_time"] == 1773576000000  # until "now"
    assert out.records[1].details["partial"] is True
    assert out.records[1].end == datetime(2026, 3, 16, tzinfo=UTC)
    assert out.cursor == {"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-14"}


def test_service_and_infer_types_multiply_calls(clock: FakeClock) -> None:
    fake = FakeHuawei()
    out = run(fake, {"service_types": [1, 2, 4], "infer_types": ["real_time", "batch"]},
              window=one_day(date(2026, 3, 14)))
    assert sorted(r.key for r in out.records) == sorted(
        f"2026-03-14/{s}/{i}" for s in (1, 2, 4) for i in ("real_time", "batch"))
    batch = by_key(out.records)["2026-03-14/4/batch"]
    assert batch.details["service"] == "custom-endpoint"
    assert batch.details["completion_tasks"] == 0 and batch.details["infer_count"] == 0
    check_records(out.records)


# -- history -----------------------------------------------------------------------------------
def test_first_run_backfills_thirty_days_then_incremental_with_overlap(clock: FakeClock) -> None:
    fake = FakeHuawei()
    first = run(fake, tz=SHANGHAI)
    days = [r.key.split("/")[0] for r in first.records]
    assert days[0] == "2026-02-14" and days[-1] == "2026-03-15" and len(days) == 30
    assert first.cursor == {"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-14"}
    fake2 = FakeHuawei()
    later = run(fake2, tz=SHANGHAI, now=datetime(2026, 3, 17, 5, tzinfo=UTC), cursor=dict(first.cursor))
    assert [r.key.split("/")[0] for r in later.records] == [
        "2026-03-12", "2026-03-13", "2026-03-14", "2026-03-15", "2026-03-16", "2026-03-17"]
    assert later.cursor["last_complete_day"] == "2026-03-16"


def test_explicit_window_is_clamped_to_retention_with_a_warning(clock: FakeClock) -> None:
    out = run(FakeHuawei(), window=Window(start=datetime(2026, 1, 1, tzinfo=UTC),
                                          end=datetime(2026, 2, 20, tzinfo=UTC)))
    days = [r.key.split("/")[0] for r in out.records]
    assert days[0] == "2026-02-14" and days[-1] == "2026-02-19"  # end at midnight is exclusive
    assert out.ctx.warnings == [
        "huawei-maas: the API keeps 30 days; fetching from 2026-02-14 instead of 2026-01-01"]
    assert out.cursor["last_complete_day"] == "2026-02-19"


def test_stale_cursor_warns_about_the_gap_and_disjoint_window_keeps_cursor(clock: FakeClock) -> None:
    out = run(FakeHuawei(), cursor={"region": REGION, "project_id": FAKE_PROJECT,
                                    "last_complete_day": "2026-01-10"})
    assert len(out.records) == 30
    assert "days up to 2026-02-13 are past the API's 30-day retention" in out.ctx.warnings[0]
    assert out.cursor["last_complete_day"] == "2026-03-14"
    # an explicit range that does not join the saved day must not move the cursor past a hole
    out = run(FakeHuawei(), window=one_day(date(2026, 3, 10)),
              cursor={"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-01"})
    assert [r.key for r in out.records] == ["2026-03-10/2/real_time"]
    assert out.cursor["last_complete_day"] == "2026-03-01"


def test_cursor_for_another_region_is_ignored(clock: FakeClock) -> None:
    fake = FakeHuawei(projects=[{"id": "f" * 32, "name": "ap-southeast-1"}])
    out = run(fake, {"region": "ap-southeast-1", "project_id": None},
              cursor={"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-14"})
    assert fake.requests[0]["query"] == "name=ap-southeast-1"
    assert len(out.records) == 30 and {r.account for r in out.records} == {"f" * 32}
    assert out.records[0].details["region"] == "ap-southeast-1"


# -- project lookup ----------------------------------------------------------------------------
def test_project_id_is_looked_up_once_and_cached_in_the_cursor(clock: FakeClock) -> None:
    fake = FakeHuawei()
    out = run(fake, {"project_id": None}, window=one_day(date(2026, 3, 14)))
    assert out.cursor["project_id"] == FAKE_PROJECT
    assert fake.requests[1]["path"] == f"/v1/{FAKE_PROJECT}/maas/monitoring/show-statistics"
    fake2 = FakeHuawei()
    run(fake2, {"project_id": None}, cursor=dict(out.cursor))
    assert all(r["method"] == "POST" for r in fake2.requests)  # no IAM call the second time


def test_project_lookup_with_no_match(clock: FakeClock) -> None:
    with pytest.raises(ProviderResponseError, match="no IAM project named 'cn-southwest-2'.*set project_id"):
        run(FakeHuawei(projects=[]), {"project_id": None})


def test_project_lookup_with_several_matches(clock: FakeClock) -> None:
    fake = FakeHuawei(projects=[{"id": "a" * 32, "name": REGION}, {"id": "b" * 32, "name": REGION}])
    with pytest.raises(ProviderResponseError) as err:
        run(fake, {"project_id": None})
    assert str(err.value) == (f"huawei-maas: 2 IAM projects match 'cn-southwest-2' ({'a' * 32}, {'b' * 32}); "
                              "set project_id in [sources.huawei-maas] to the one to use")


# -- retries, pacing, errors -------------------------------------------------------------------
def test_429_waits_then_succeeds_and_resigns(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(429, {"error_code": "APIGW.0308", "error_msg": "Too Many Requests"}, {})])
    ctx = fake_context(HuaweiMaasSource.id, now=NOW, env=ENV, handler=fake)
    descriptions: list[str] = []
    ctx.progress.describe = descriptions.append  # type: ignore[method-assign]
    out = collect(HuaweiMaasSource, SETTINGS, ctx=ctx, window=one_day(date(2026, 3, 14)))
    assert clock.sleeps == [60.0]
    assert len(out.records) == 1 and out.records[0].requests is not None
    assert "huawei-maas: rate limited (HTTP 429), retry 1 of 3; waiting 60s" in descriptions
    first, second = fake.requests
    assert first["body"] == second["body"]
    assert first["headers"]["x-sdk-date"] == "20260315T120000Z"
    assert second["headers"]["x-sdk-date"] == "20260315T120100Z"  # signed again, a minute later
    assert first["headers"]["authorization"] != second["headers"]["authorization"]
    assert fake.rejected == []


def test_429_retry_after_is_honoured_but_bounded(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(429, {}, {"Retry-After": "5"}), (429, {}, {"Retry-After": "3600"})])
    run(fake, window=one_day(date(2026, 3, 14)))
    assert clock.sleeps == [5.0, 120.0]


def test_429_forever_gives_up_with_rate_limited(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(429, {"error_msg": "Too Many Requests"}, {})] * 10)
    with pytest.raises(ProviderRateLimited, match="still rate limited .* 200 requests per minute") as err:
        run(fake, window=one_day(date(2026, 3, 14)))
    assert clock.sleeps == [60.0, 60.0, 60.0]
    assert err.value.retry_after == 60.0 and len(fake.requests) == 4


def test_5xx_retries_with_backoff_then_unavailable(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(503, {"error_msg": "Service Unavailable"}, {})] * 10)
    with pytest.raises(ProviderUnavailable, match=r"HTTP 503 from 127.0.0.1:8765: Service Unavailable"):
        run(fake, window=one_day(date(2026, 3, 14)))
    assert clock.sleeps == [2.0, 4.0, 8.0]
    fake = FakeHuawei(script=[(500, {}, {})])
    assert len(run(fake, window=one_day(date(2026, 3, 14))).records) == 1


def test_network_errors_retry_then_unavailable(clock: FakeClock) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    message = r"cannot reach 127.0.0.1:8765 \(ConnectError\) after 4 tries"
    with pytest.raises(ProviderUnavailable, match=message):
        run(handler, window=one_day(date(2026, 3, 14)))  # type: ignore[arg-type]
    assert len(calls) == 4


def test_401_message(clock: FakeClock) -> None:
    with pytest.raises(ProviderAuthError) as err:
        run(FakeHuawei(), env={"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": "WRONG" * 8})
    assert str(err.value) == (
        "huawei-maas: signature rejected: check HW_ACCESS_KEY/HW_SECRET_KEY and the system clock "
        "(requests are valid for 15 minutes): verify ak sk signature failed (APIGW.0301)")


def test_403_message_names_the_permissions(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(403, {"error_code": "ModelArts.0203", "error_msg": "Permission denied."}, {})])
    with pytest.raises(ProviderAuthError) as err:
        run(fake)
    message = str(err.value)
    for permission in ("modelarts:monitoring:get", "modelarts:service:get", "iam:projects:get"):
        assert permission in message
    assert "Permission denied." in message


def test_400_carries_the_api_message(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(400, {"error_code": "ModelArts.4101",
                                     "error_msg": "service_type must be one of [1 2 4]"}, {})])
    with pytest.raises(ProviderResponseError, match=r"HTTP 400 .*: service_type must be one of \[1 2 4\]"):
        run(fake)


def test_calls_are_paced_under_the_rate_limit(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HuaweiMaasSource, "pace_limit", 10)
    fake = FakeHuawei()
    out = run(fake, {"service_types": [2, 4]})  # 60 calls
    assert len(out.records) == 60
    assert len(clock.sleeps) == 5 and all(abs(s - 60.0) < 1e-9 for s in clock.sleeps)
    # with the default limit, a 30-day backfill of 2 × 2 types (120 calls) never waits
    monkeypatch.setattr(HuaweiMaasSource, "pace_limit", 180)
    clock.sleeps.clear()
    run(FakeHuawei(), {"service_types": [2, 4], "infer_types": ["real_time", "batch"]})
    assert clock.sleeps == []


# -- credentials -------------------------------------------------------------------------------
def test_missing_credentials() -> None:
    ctx = fake_context(HuaweiMaasSource.id, env={})
    source = HuaweiMaasSource(HuaweiMaasSource.Settings(), ctx)
    assert source.available() == "no credentials: set HW_ACCESS_KEY and HW_SECRET_KEY"
    with pytest.raises(NeedsCredentials) as err:
        list(source.fetch(Window(None, NOW), {}))
    assert str(err.value) == ("huawei-maas: no credentials: set HW_ACCESS_KEY and HW_SECRET_KEY "
                              "(or credentials_file in [sources.huawei-maas])")
    assert err.value.exit_code == 5


def test_sdk_env_names_work(clock: FakeClock) -> None:
    fake = FakeHuawei()
    env = {"HUAWEICLOUD_SDK_AK": FAKE_AK, "HUAWEICLOUD_SDK_SK": FAKE_SK}
    ctx = fake_context(HuaweiMaasSource.id, env=env)
    assert HuaweiMaasSource(HuaweiMaasSource.Settings(), ctx).available() is None
    assert len(run(fake, env=env, window=one_day(date(2026, 3, 14))).records) == 1
    assert fake.rejected == []


@pytest.mark.parametrize("text", [
    f"# my keys\nexport HW_ACCESS_KEY={FAKE_AK}\nHW_SECRET_KEY='{FAKE_SK}'\nHW_SECURITY_TOKEN={FAKE_TOKEN}\n",
    f"{FAKE_AK},{FAKE_SK},{FAKE_TOKEN}\n",
    f"\n{FAKE_AK}\n{FAKE_SK}\n{FAKE_TOKEN}\n",
])
def test_credentials_file_layouts(text: str, tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "aksk.txt"
    path.write_text(text)
    path.chmod(0o600)
    assert parse_credentials_text(text) == (FAKE_AK, FAKE_SK, FAKE_TOKEN)
    fake = FakeHuawei(token=FAKE_TOKEN)
    out = run(fake, {"credentials_file": str(path)}, env={}, window=one_day(date(2026, 3, 14)))
    assert fake.rejected == [] and len(out.records) == 1
    assert out.ctx.warnings == []
    assert set(SECRETS) <= out.ctx.secrets  # registered for redaction


def test_credentials_file_two_lines_without_token() -> None:
    assert parse_credentials_text(f"{FAKE_AK}\n{FAKE_SK}\n") == (FAKE_AK, FAKE_SK, None)
    assert parse_credentials_text(f"{FAKE_AK},{FAKE_SK}") == (FAKE_AK, FAKE_SK, None)
    assert parse_credentials_text("# nothing\n\n") == (None, None, None)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_credentials_file_readable_by_others_warns(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "aksk.txt"
    path.write_text(f"{FAKE_AK}\n{FAKE_SK}\n")
    path.chmod(0o644)
    out = run(FakeHuawei(), {"credentials_file": str(path)}, env={}, window=one_day(date(2026, 3, 14)))
    assert out.ctx.warnings == [f"huawei-maas: credentials file {path} is readable by other users; "
                                f"run: chmod 600 {path}"]


def test_credentials_file_missing_or_incomplete(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    ctx = fake_context(HuaweiMaasSource.id, env={})
    source = HuaweiMaasSource(HuaweiMaasSource.Settings(credentials_file=str(missing)), ctx)
    assert source.available() == f"credentials_file {missing} does not exist"
    message = "does not exist; create it or set HW_ACCESS_KEY and HW_SECRET_KEY"
    with pytest.raises(NeedsCredentials, match=message):
        list(source.fetch(Window(None, NOW), {}))
    half = tmp_path / "half.txt"
    half.write_text(f"HW_ACCESS_KEY={FAKE_AK}\n")
    half.chmod(0o600)
    source = HuaweiMaasSource(HuaweiMaasSource.Settings(credentials_file=str(half)), ctx)
    with pytest.raises(NeedsCredentials, match="has no access key and secret key") as err:
        list(source.fetch(Window(None, NOW), {}))
    assert FAKE_AK not in str(err.value)


def test_env_wins_over_the_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "aksk.txt"
    path.write_text("OTHERAK\nOTHERSK\n")
    path.chmod(0o600)
    fake = FakeHuawei()
    run(fake, {"credentials_file": str(path)}, window=one_day(date(2026, 3, 14)))
    assert fake.rejected == []


# -- no secret anywhere ------------------------------------------------------------------------
def test_no_secret_in_records_cursor_warnings_errors_or_logs(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "aksk.txt"
    path.write_text(f"{FAKE_AK},{FAKE_SK},{FAKE_TOKEN}\n")
    path.chmod(0o644)  # also produces a warning
    fake = FakeHuawei(token=FAKE_TOKEN, script=[(429, {}, {}), (500, {}, {})])
    out = run(fake, {"credentials_file": str(path), "project_id": None,
                     "service_types": [2, 4], "infer_types": ["real_time", "batch"]}, env={}, tz=SHANGHAI)
    texts = [repr(r) for r in out.records] + [json.dumps(out.cursor)] + list(out.ctx.warnings)
    texts.append(out.ctx.progress.description)
    # error messages, including one where the API echoes the key back
    echo = FakeHuawei(script=[(403, {"error_msg": f"access key {FAKE_AK} denied, token {FAKE_TOKEN}"}, {})])
    with pytest.raises(ProviderAuthError) as err:
        run(echo, {"credentials_file": str(path)}, env={})
    texts.append(str(err.value))
    assert "access key *** denied, token ***" in str(err.value)
    with pytest.raises(ProviderAuthError) as err401:
        run(FakeHuawei(), env={"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": "BAD" + FAKE_SK})
    texts.append(str(err401.value))
    texts.append(caplog.text)
    texts.append(repr(out.ctx))
    assert out.records and caplog.text
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_through_the_host_no_secret_in_the_database(tmp_path: Path, clock: FakeClock) -> None:
    import sqlite3

    from tokenmeter.testing import run_source

    db = tmp_path / "tokenmeter.db"
    rows = run_source(HuaweiMaasSource, {"endpoint": BASE, "iam_endpoint": BASE}, db_path=db, now=NOW,
                      env=ENV_TOKEN, handler=FakeHuawei(token=FAKE_TOKEN))
    assert len(rows) == 30
    first = rows[0]
    assert (first["key"], first["start"], first["end"]) == (
        "2026-02-14/2/real_time", "2026-02-14T00:00:00Z", "2026-02-15T00:00:00Z")
    assert first["account"] == FAKE_PROJECT and first["model"] is None
    assert first["cost"] is None and first["estimated_cost"] is None  # no model: unpriced
    # a failing run stores its error message in source_state / fetch_runs
    bad = {"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": "BAD" + FAKE_SK, "HW_SECURITY_TOKEN": FAKE_TOKEN}
    run_source(HuaweiMaasSource, SETTINGS, db_path=db, now=NOW, env=bad, handler=FakeHuawei(token=FAKE_TOKEN))
    con = sqlite3.connect(db)
    dump = "\n".join(con.iterdump())
    con.close()
    assert "signature rejected" in dump and '"last_complete_day": "2026-03-14"' in dump
    for secret in (*SECRETS, "BAD" + FAKE_SK):
        assert secret not in dump


def test_credentials_repr_hides_values() -> None:
    from tokenmeter_plugins.huawei_maas.credentials import Credentials

    text = repr(Credentials(FAKE_AK, FAKE_SK, FAKE_TOKEN))
    assert FAKE_AK not in text and FAKE_SK not in text and FAKE_TOKEN not in text


# -- settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("settings", "message"), [
    ({"service_types": [3]}, "3 is rejected by the API ('service_type must be one of [1 2 4]'); use 4"),
    ({"service_types": [5]}, "5 is not one of 1 (my services), 2 (preset services), 4 (custom endpoints)"),
    ({"service_types": []}, "must not be empty"),
    ({"infer_types": ["stream"]}, "'stream' is not one of 'real_time', 'batch'"),
    ({"endpoint": "http://modelarts.example.com"},
     "endpoint must use https (http is allowed only for localhost"),
    ({"iam_endpoint": "ftp://127.0.0.1"}, "iam_endpoint = 'ftp://127.0.0.1' is not an https:// URL"),
    ({"region": "cn south"}, "region = 'cn south' is not a region id"),
    ({"project_id": "../x"}, "project_id must be the project id"),
])
def test_bad_settings_raise_config_error(settings: dict[str, Any], message: str) -> None:
    ctx = fake_context(HuaweiMaasSource.id, env=ENV)
    with pytest.raises(ConfigError) as err:
        HuaweiMaasSource(HuaweiMaasSource.Settings(**settings), ctx)
    assert message in str(err.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://127.3.4.5", "http://[::1]:8080",
                                 "http://localhost:1234", "https://proxy.example.com/huawei"])
def test_allowed_endpoints(url: str) -> None:
    source = HuaweiMaasSource(HuaweiMaasSource.Settings(endpoint=url, iam_endpoint=url),
                              fake_context(HuaweiMaasSource.id, env=ENV))
    assert source.config.endpoint.scheme in ("http", "https")


def test_defaults_and_endpoint_path_prefix(clock: FakeClock) -> None:
    source = HuaweiMaasSource(HuaweiMaasSource.Settings(region="ap-southeast-1"),
                              fake_context(HuaweiMaasSource.id, env=ENV))
    assert source.config.endpoint.netloc == "modelarts.ap-southeast-1.myhuaweicloud.com"
    assert source.config.endpoint.scheme == "https"
    assert source.config.iam_endpoint.netloc == "iam.ap-southeast-1.myhuaweicloud.com"
    assert source.config.service_types == (2,) and source.config.infer_types == ("real_time",)

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        # the signature covers the full path, proxy prefix included
        assert verify_signature("POST", request.url.path, "", headers, request.content) is None
        return httpx.Response(200, json={"total_request_count": 1, "total_token": 1, "total_prompt_token": 1,
                                         "total_completion_token": 0})

    out = run(handler, {"endpoint": "http://127.0.0.1:8765/huawei/"}, window=one_day(date(2026, 3, 14)))
    assert seen == [f"/huawei/v1/{FAKE_PROJECT}/maas/monitoring/show-statistics"]
    assert out.records[0].total_tokens == 1000


def test_timezone_names() -> None:
    from datetime import timezone

    assert timezone_name(SHANGHAI) == "Asia/Shanghai"
    assert timezone_name(UTC) == "UTC"
    assert timezone_name(timezone(timedelta(hours=8))) == "Etc/GMT-8"
    assert timezone_name(timezone(timedelta(hours=-5))) == "Etc/GMT+5"


def test_no_timezone_means_utc(clock: FakeClock) -> None:
    fake = FakeHuawei()
    run(fake, tz=None, window=one_day(date(2026, 3, 14)))
    assert fake.statistics_bodies[0]["timezone"] == "UTC"
    assert fake.statistics_bodies[0]["start_time"] == 1773446400000


def test_plugin_registers_the_source() -> None:
    registered: list[type] = []
    register_sources(registered.append)
    assert registered == [HuaweiMaasSource]
    assert (HuaweiMaasSource.id, HuaweiMaasSource.provider, HuaweiMaasSource.kind) == (
        "huawei-maas", "huawei-maas", "ledger")
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(HuaweiMaasSource.Settings))


def test_checkpoint_cursor_after_each_day(clock: FakeClock) -> None:
    ctx = fake_context(HuaweiMaasSource.id, now=NOW, env=ENV, handler=FakeHuawei())
    source = HuaweiMaasSource(HuaweiMaasSource.Settings(**SETTINGS), ctx)
    saved = {"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-11"}
    items = list(source.fetch(Window(datetime(2026, 3, 12, tzinfo=UTC), NOW), saved))
    kinds = ["C" if isinstance(i, Cursor) else "R" for i in items]
    assert kinds == ["R", "C", "R", "C", "R", "C", "R", "C"]
    assert [i.state["last_complete_day"] for i in items if isinstance(i, Cursor)] == [
        "2026-03-12", "2026-03-13", "2026-03-14", "2026-03-14"]


# -- cassettes (recorded from the local fake server; replayed without any server) ---------------
def test_cassettes_have_no_secrets_or_auth_headers() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert [f.name for f in files] == ["backfill.yaml", "incremental.yaml"]
    for path in files:
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text
        assert "authorization" not in text.lower() and "x-security-token" not in text.lower()
        assert "x-sdk-date" in text.lower()  # the headers are there, only the secret ones filtered


def test_cassette_backfill_replay() -> None:
    out = run_scenario("backfill", "http://127.0.0.1:9")  # no server: record mode "none"
    check_records(out.records)
    assert len(out.records) == 30
    first, last = out.records[0], out.records[-1]
    assert first.key == "2026-02-14/2/real_time"
    assert first.start == datetime(2026, 2, 13, 16, tzinfo=UTC)
    assert last.key == "2026-03-15/2/real_time" and last.details["partial"] is True
    recs = by_key(out.records)
    day = recs["2026-03-01/2/real_time"]  # the fake's formula for that day, service type 2
    # its window starts 2026-02-28 16:00 UTC = epoch day 20512: 100 + (20512 % 7) * 13 + 2000 requests
    assert (day.requests, day.errors) == (2126, 2)
    assert day.input_tokens == 2_624_547 and day.output_tokens == 143_505  # 2126 × 1.2345 K, × 0.0675 K
    assert day.total_tokens == 2_768_552  # input + output + 500: kept as reported
    assert {r.account for r in out.records} == {FAKE_PROJECT}
    assert out.cursor == {"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": "2026-03-14"}
    assert out.ctx.warnings == []


def test_cassette_incremental_replay() -> None:
    first = run_scenario("backfill", "http://127.0.0.1:9")
    out = run_scenario("incremental", "http://127.0.0.1:9", cursor=dict(first.cursor))
    check_records(out.records)
    assert [r.key.split("/")[0] for r in out.records] == [
        "2026-03-12", "2026-03-13", "2026-03-14", "2026-03-15", "2026-03-16", "2026-03-17", "2026-03-18"]
    assert out.cursor["last_complete_day"] == "2026-03-17"
    # 2026-03-15 was partial in the backfill; the incremental run replaces it with the full day
    before = by_key(first.records)["2026-03-15/2/real_time"]
    after = by_key(out.records)["2026-03-15/2/real_time"]
    assert before.requests < after.requests and "partial" not in after.details
    # the overlapping complete days are the same figures
    assert by_key(first.records)["2026-03-13/2/real_time"] == by_key(out.records)["2026-03-13/2/real_time"]


def test_cassettes_match_a_fresh_recording_from_the_fake_server() -> None:
    """The live fake server (which checks every signature and the clock) gives what the cassettes hold."""
    fake = FakeHuawei(token=FAKE_TOKEN, check_clock=True)
    replayed = run_scenario("backfill", "http://127.0.0.1:9")
    with FakeServer(fake) as server:
        ctx = fake_context(HuaweiMaasSource.id, now=BACKFILL_NOW, env=ENV_TOKEN, timezone=SHANGHAI)
        live = collect(HuaweiMaasSource, {"endpoint": server.url, "iam_endpoint": server.url}, ctx=ctx)
        ctx.close()
    assert fake.rejected == [] and len(fake.requests) == 31
    assert live.records == replayed.records


# -- review fixes ------------------------------------------------------------------------------
def test_first_run_with_a_short_explicit_window_does_not_skip_the_backfill(clock: FakeClock) -> None:
    # `fetch --from 2026-03-14` as the very first run must not mark the history complete, or the next
    # default run would start at 03-12 and never fetch 02-14 .. 03-11 (lost after 30 days).
    first = run(FakeHuawei(), window=Window(start=datetime(2026, 3, 14, tzinfo=UTC), end=NOW))
    assert first.cursor == {"region": REGION, "project_id": FAKE_PROJECT, "last_complete_day": None}
    later = run(FakeHuawei(), cursor=dict(first.cursor))
    days = [r.key.split("/")[0] for r in later.records]
    assert days[0] == "2026-02-14" and days[-1] == "2026-03-15" and len(days) == 30
    assert later.cursor["last_complete_day"] == "2026-03-14"


def test_redirects_are_not_followed_so_the_security_token_stays_home(clock: FakeClock) -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host == "127.0.0.1":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example/collect"})
        return httpx.Response(200, json={"total_request_count": 1, "total_token": 1})

    with pytest.raises(ProviderResponseError, match=r"^huawei-maas: HTTP 302 from 127.0.0.1:8765"):
        run(handler, env=ENV_TOKEN, window=one_day(date(2026, 3, 14)))  # type: ignore[arg-type]
    assert hosts == ["127.0.0.1"]  # X-Security-Token (not stripped by httpx) never left for elsewhere


def test_401_message_names_where_the_keys_came_from(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "aksk.txt"
    path.write_text(f"{FAKE_AK}\n{'WRONG' * 8}\n")
    path.chmod(0o600)
    with pytest.raises(ProviderAuthError) as err:
        run(FakeHuawei(), {"credentials_file": str(path)}, env={})
    assert str(err.value).startswith(f"huawei-maas: signature rejected: check the keys in {path} and the "
                                     "system clock")
    with pytest.raises(ProviderAuthError) as err:
        run(FakeHuawei(), env={"HUAWEICLOUD_SDK_AK": FAKE_AK, "HUAWEICLOUD_SDK_SK": "WRONG" * 8})
    assert "signature rejected: check HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK and the system clock" in str(
        err.value)
    with pytest.raises(ProviderAuthError) as err:  # an expired or foreign security token
        run(FakeHuawei(token="ANOTHER-TOKEN"), env=ENV_TOKEN, window=one_day(date(2026, 3, 14)))
    assert "check HW_ACCESS_KEY/HW_SECRET_KEY/HW_SECURITY_TOKEN (temporary credentials expire) and " in str(
        err.value)
    assert FAKE_TOKEN not in str(err.value)


def test_rate_limited_reports_the_servers_retry_after_not_our_cap(clock: FakeClock) -> None:
    fake = FakeHuawei(script=[(429, {}, {"Retry-After": "3600"})] * 4)
    with pytest.raises(ProviderRateLimited) as err:
        run(fake, window=one_day(date(2026, 3, 14)))
    assert clock.sleeps == [120.0, 120.0, 120.0]  # each wait bounded
    assert err.value.retry_after == 3600.0  # but the user is told when the API will take calls again
