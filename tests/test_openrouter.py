"""Tests for the openrouter plugin: MockTransport unit tests and vcrpy cassette replays.

The cassettes under ``cassettes/openrouter/`` were recorded from the fake server in
``tests/openrouter_fake.py`` served on 127.0.0.1 (never the real OpenRouter). To re-record them:

    OPENROUTER_RECORD_CASSETTES=1 python -m pytest tests/test_openrouter.py -q -k cassette

Normal runs replay them with record mode "none".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openrouter_fake import (
    API_KEY,
    CLAUDE_ENDPOINT,
    GPT_ENDPOINT,
    MANAGEMENT_KEY,
    FakeOpenRouter,
    Fault,
    error,
)
from tokenmeter_plugins.openrouter import OpenRouterSource

from tokenmeter import (
    ConfigError,
    NeedsCredentials,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    UsageRecord,
    Window,
)
from tokenmeter.testing import check_records, collect, fake_context

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
NEXT_DAY = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
MGMT_ENV = {"OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY}
KEY_ENV = {"OPENROUTER_API_KEY": API_KEY}
GPT_SLUG = "openai/gpt-4.1-2025-04-14"
CLAUDE_SLUG = "anthropic/claude-4-sonnet-20250522"
DAY14 = Window(start=datetime(2026, 3, 14, tzinfo=UTC), end=NOW)  # just 2026-03-14

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "openrouter"
RECORD = os.environ.get("OPENROUTER_RECORD_CASSETTES") == "1"
RECORD_PORT = 18731
CASSETTE_BASE = f"http://127.0.0.1:{RECORD_PORT}/api/v1"
# What a real key would look like (the repository's secret scan uses the same pattern).
REAL_KEY_SHAPE = re.compile(r"sk-or-v1-[A-Za-z0-9]{20,}")


# -- helpers ------------------------------------------------------------------------------------
def run(fake: FakeOpenRouter | None = None, *, env: dict[str, str] = MGMT_ENV, now: datetime = NOW,
        cursor: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
        window: Window | None = None, sleeps: list[float] | None = None):
    """Run the source against ``fake`` (MockTransport), or against real HTTP when ``fake`` is None."""
    ctx = fake_context(
        "openrouter", now=now, env=env, handler=fake.handler if fake is not None else None,
        sleep=sleeps.append if sleeps is not None else None,
    )
    return collect(OpenRouterSource, settings or {}, ctx=ctx, window=window, cursor=cursor)


def by_key(records: Iterable[UsageRecord]) -> dict[str, UsageRecord]:
    return {r.key: r for r in records}


def upsert(store: dict[tuple[str | None, str], UsageRecord], records: Iterable[UsageRecord]) -> None:
    """What the host's store does with records: replace by (account, key)."""
    for rec in records:
        store[(rec.account, rec.key)] = rec


def total_cost(records: Iterable[UsageRecord]) -> Decimal:
    return sum((r.cost for r in records if r.cost is not None), Decimal(0))


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def activity_calls(fake: FakeOpenRouter) -> list[str]:
    return [c for c in fake.calls if c.startswith("/activity")]


def assert_backfill(out: Any) -> None:
    """The numbers of a first run at NOW against the fake (2026-02-13 .. 2026-03-14)."""
    check_records(out.records)
    # 30 days, nothing on 02-20 and 03-10, two rows a day
    assert len(out.records) == 56
    assert cents(total_cost(out.records)) == Decimal("4.52")
    assert total_cost(r for r in out.records if r.model == "openai/gpt-4.1") == Decimal("4.17")
    assert sum(r.requests for r in out.records) == 767
    recs = by_key(out.records)
    gpt = recs[f"2026-03-14/{GPT_SLUG}/{GPT_ENDPOINT}"]
    assert gpt.cost == Decimal("0.145") and gpt.currency == "USD" and gpt.cost_kind == "billed"
    assert (gpt.requests, gpt.input_tokens, gpt.output_tokens, gpt.reasoning_tokens) == (24, 14017, 4205, 0)
    assert gpt.start == datetime(2026, 3, 14, tzinfo=UTC) and gpt.end == datetime(2026, 3, 15, tzinfo=UTC)
    assert gpt.provider == "openrouter" and gpt.account == "management" and gpt.model == "openai/gpt-4.1"
    assert gpt.total_tokens is None and gpt.cache_read_tokens is None
    claude = recs[f"2026-03-14/{CLAUDE_SLUG}/{CLAUDE_ENDPOINT}"]
    assert claude.cost == Decimal("0.0125")
    assert (claude.input_tokens, claude.output_tokens, claude.reasoning_tokens) == (2014, 800, 120)
    assert claude.details["byok_usage_inference"] == "0.25"
    assert claude.details["provider_name"] == "Anthropic"
    assert claude.details["model_permaslug"] == CLAUDE_SLUG
    assert not any(k.startswith("2026-02-20/") or k.startswith("2026-03-10/") for k in recs)
    assert min(r.start for r in out.records) == datetime(2026, 2, 13, tzinfo=UTC)
    assert out.cursor["final_through"] == "2026-03-12"
    snaps = {s.name: s for s in out.snapshots}
    credits = snaps["credits"]
    assert (credits.total, credits.used, credits.remaining) == (Decimal(50), Decimal("18.37"),
                                                                Decimal("31.63"))
    assert credits.unit == "USD" and credits.observed_at == NOW
    limited = snaps["key/sk-or-v1-f00...000"]
    assert (limited.total, limited.remaining, limited.used) == (Decimal(20), Decimal("12.5"), Decimal("7.5"))
    assert limited.resets_at == datetime(2026, 4, 1, tzinfo=UTC)
    assert limited.details["key_name"] == "fake key 0" and limited.details["usage_daily"] == "0.5"
    unlimited = snaps["key/sk-or-v1-f02...002"]
    assert (unlimited.total, unlimited.remaining, unlimited.used) == (None, None, Decimal("32.25"))
    assert unlimited.resets_at is None
    assert len(out.snapshots) == 4


def assert_no_secret(*texts: Any) -> None:
    for text in texts:
        assert MANAGEMENT_KEY not in str(text) and API_KEY not in str(text)


# -- management key: /activity, /credits, /keys ------------------------------------------------
def test_backfill_fetches_each_of_the_last_30_completed_days():
    fake = FakeOpenRouter(today=NOW.date())
    out = run(fake)
    assert_backfill(out)
    calls = activity_calls(fake)
    assert calls[0] == "/activity?date=2026-02-13" and calls[-1] == "/activity?date=2026-03-14"
    assert len(calls) == 30
    assert fake.calls[-2:] == ["/credits", "/keys"]
    assert out.ctx.warnings == [] and out.ctx.skipped == 0
    assert_no_secret(out.records, out.snapshots, out.cursor)


def test_incremental_run_refetches_only_days_not_final_and_replaces_them():
    store: dict = {}
    first = run(FakeOpenRouter(today=NOW.date()))
    upsert(store, first.records)
    # the next morning OpenRouter has settled 03-13 and 03-14 higher, and 03-15 is complete
    fake = FakeOpenRouter(today=NEXT_DAY.date(), revision=2,
                          late_days=frozenset({date(2026, 3, 13), date(2026, 3, 14)}))
    second = run(fake, now=NEXT_DAY, cursor=first.cursor)
    check_records(second.records)
    assert activity_calls(fake) == ["/activity?date=2026-03-13", "/activity?date=2026-03-14",
                                    "/activity?date=2026-03-15"]
    assert second.cursor["final_through"] == "2026-03-13"
    upsert(store, second.records)
    assert len(store) == 58  # 56 + the two rows of 03-15; 03-13/03-14 replaced, not added
    gpt = store[("management", f"2026-03-14/{GPT_SLUG}/{GPT_ENDPOINT}")]
    assert (gpt.cost, gpt.requests) == (Decimal("0.195"), 29)
    assert total_cost(store.values()) == Decimal("4.7875")
    assert cents(total_cost(store.values())) == Decimal("4.79")


def test_same_day_rerun_fetches_two_days_and_is_idempotent():
    first = run(FakeOpenRouter(today=NOW.date()))
    fake = FakeOpenRouter(today=NOW.date())
    again = run(fake, now=NOW.replace(hour=18), cursor=first.cursor)
    assert activity_calls(fake) == ["/activity?date=2026-03-13", "/activity?date=2026-03-14"]
    assert again.cursor == first.cursor
    old = by_key(first.records)
    assert all(old[r.key] == r for r in again.records)  # same keys, same values
    # a full re-run with no cursor yields exactly the same rows again
    assert by_key(run(FakeOpenRouter(today=NOW.date())).records) == old


def test_old_cursor_warns_about_days_openrouter_dropped():
    fake = FakeOpenRouter(today=NOW.date())
    out = run(fake, cursor={"final_through": "2026-01-01", "version": 1})
    assert len(activity_calls(fake)) == 30
    assert out.cursor["final_through"] == "2026-03-12"
    assert any("2026-01-02 to 2026-02-12" in w for w in out.ctx.warnings)


def test_explicit_window_fetches_only_its_days_and_warns_beyond_30_days():
    fake = FakeOpenRouter(today=NOW.date())
    window = Window(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 2, 15, tzinfo=UTC))
    out = run(fake, window=window)
    assert activity_calls(fake) == ["/activity?date=2026-02-13", "/activity?date=2026-02-14"]
    assert len(out.records) == 4
    assert out.cursor["final_through"] == "2026-02-14"
    assert any("last 30 completed UTC days" in w for w in out.ctx.warnings)
    # a window inside the cursor's final range leaves the cursor where it was
    fake = FakeOpenRouter(today=NOW.date())
    window = Window(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 3, tzinfo=UTC))
    out = run(fake, window=window, cursor={"final_through": "2026-03-12"})
    assert activity_calls(fake) == ["/activity?date=2026-03-01", "/activity?date=2026-03-02"]
    assert out.cursor["final_through"] == "2026-03-12"


def test_keys_are_paged_with_offset():
    fake = FakeOpenRouter(today=NOW.date(), key_count=230)
    out = run(fake, window=DAY14)
    pages = [c for c in fake.calls if c.startswith("/keys")]
    assert pages == ["/keys", "/keys?offset=100", "/keys?offset=200"]
    keys = [s for s in out.snapshots if s.name.startswith("key/")]
    assert len(keys) == 230 and len({s.name for s in keys}) == 230
    assert keys[-1].details["hash"].startswith("0229")


def test_keys_paging_stops_when_the_server_ignores_offset():
    page = [{"hash": f"{i:064x}", "label": f"k{i}", "usage": 1} for i in range(100)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/keys"):
            return httpx.Response(200, json={"data": page})
        if request.url.path.endswith("/credits"):
            return httpx.Response(200, json={"data": {"total_credits": 1, "total_usage": 0}})
        return httpx.Response(200, json={"data": []})

    ctx = fake_context("openrouter", now=NOW, env=MGMT_ENV, handler=handler)
    out = collect(OpenRouterSource, {}, ctx=ctx)
    assert len([s for s in out.snapshots if s.name.startswith("key/")]) == 100


def test_group_by_workspace_adds_the_workspace_to_keys():
    fake = FakeOpenRouter(today=NOW.date())
    out = run(fake, settings={"group_by_workspace": True},
              window=DAY14)
    assert activity_calls(fake) == ["/activity?date=2026-03-14&group_by=workspace"]
    ws = "11111111-2222-4333-8444-555555555555"
    rec = by_key(out.records)[f"2026-03-14/{GPT_SLUG}/{GPT_ENDPOINT}/{ws}"]
    assert rec.details["workspace_id"] == ws


def test_bad_rows_are_skipped_and_odd_reasoning_kept_in_details():
    rows = [
        {"date": "2026-03-14", "model": "x/y", "model_permaslug": "x/y-1", "endpoint_id": "e1",
         "provider_name": "P", "usage": 0.5, "byok_usage_inference": 0, "requests": 2,
         "prompt_tokens": 10, "completion_tokens": 5, "reasoning_tokens": 9},
        {"date": "2026-03-14", "model": "x/y", "model_permaslug": "x/y-1", "endpoint_id": "e2",
         "usage": "not money", "requests": 1, "prompt_tokens": 1, "completion_tokens": 1,
         "reasoning_tokens": 0},
        {"date": "yesterday", "model": "x/y"},
        # a second row for the same key is added to the first, not a duplicate key
        {"date": "2026-03-14", "model": "x/y", "model_permaslug": "x/y-1", "endpoint_id": "e1",
         "provider_name": "P", "usage": 0.25, "byok_usage_inference": 0.1, "requests": 1,
         "prompt_tokens": 3, "completion_tokens": 3, "reasoning_tokens": 1},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/activity"):
            return httpx.Response(200, json={"data": rows})
        if path.endswith("/credits"):
            return httpx.Response(200, json={"data": {"total_credits": 1, "total_usage": 0.75}})
        return httpx.Response(200, json={"data": []})

    ctx = fake_context("openrouter", now=NOW, env=MGMT_ENV, handler=handler)
    out = collect(OpenRouterSource, {}, ctx=ctx, window=DAY14)
    check_records(out.records)
    assert ctx.skipped == 2
    [rec] = out.records
    assert rec.key == "2026-03-14/x/y-1/e1"
    assert (rec.requests, rec.input_tokens, rec.output_tokens, rec.cost) == (3, 13, 8, Decimal("0.75"))
    assert rec.reasoning_tokens is None and rec.details["reported_reasoning_tokens"] == 9
    assert rec.details["byok_usage_inference"] == "0.1"
    assert sum("reasoning" in w for w in ctx.warnings) == 1


# -- ordinary key: /key -------------------------------------------------------------------------
def test_ordinary_key_gives_key_limit_and_todays_spend():
    fake = FakeOpenRouter(today=NOW.date())
    out = run(fake, env=KEY_ENV)
    assert fake.calls == ["/key"]
    check_records(out.records)
    [snap] = out.snapshots
    assert snap.name == "key-limit" and snap.unit == "USD"
    assert (snap.total, snap.remaining, snap.used) == (Decimal(100), Decimal("74.5"), Decimal("25.5"))
    assert snap.resets_at == datetime(2026, 4, 1, tzinfo=UTC)
    assert snap.account.startswith("key-") and len(snap.account) == 12
    [rec] = out.records
    assert rec.key == "2026-03-15/key-daily" and rec.model is None
    assert rec.cost == Decimal("1.23") and rec.cost_kind == "billed" and rec.currency == "USD"
    assert rec.start == datetime(2026, 3, 15, tzinfo=UTC) and rec.end == datetime(2026, 3, 16, tzinfo=UTC)
    assert rec.requests is None and rec.input_tokens is None
    assert rec.details["note"] == "per-model detail needs a management key"
    assert rec.account == snap.account
    assert len(out.ctx.warnings) == 1 and "OPENROUTER_MANAGEMENT_KEY" in out.ctx.warnings[0]
    assert_no_secret(out.records, out.snapshots, out.ctx.warnings)
    # a later run the same day replaces the row (same key), a new day adds one
    later = run(FakeOpenRouter(today=NOW.date()), env=KEY_ENV, now=NOW.replace(hour=20))
    assert later.records[0].key == rec.key and later.records[0].account == rec.account
    tomorrow = run(FakeOpenRouter(today=NEXT_DAY.date()), env=KEY_ENV, now=NEXT_DAY)
    assert tomorrow.records[0].key == "2026-03-16/key-daily"


def test_ordinary_key_run_keeps_the_management_cursor():
    out = run(FakeOpenRouter(today=NOW.date()), env=KEY_ENV, cursor={"final_through": "2026-03-01"})
    assert out.cursor == {"final_through": "2026-03-01"}


def test_management_key_in_the_ordinary_variable_is_used_as_one():
    fake = FakeOpenRouter(today=NOW.date())
    out = run(fake, env={"OPENROUTER_API_KEY": MANAGEMENT_KEY},
              window=DAY14)
    assert fake.calls[0] == "/key" and "/activity?date=2026-03-14" in fake.calls
    assert len(out.records) == 2
    assert any("holds a management key" in w for w in out.ctx.warnings)


def test_management_key_wins_when_both_are_set():
    fake = FakeOpenRouter(today=NOW.date())
    run(fake, env={**MGMT_ENV, **KEY_ENV})
    assert "/key" not in fake.calls and len(activity_calls(fake)) == 30


# -- credentials, config, errors ------------------------------------------------------------------
def test_no_key_needs_credentials_naming_both_variables():
    ctx = fake_context("openrouter", now=NOW, env={})
    source = OpenRouterSource(OpenRouterSource.Settings(), ctx)
    reason = source.available()
    assert "OPENROUTER_MANAGEMENT_KEY" in reason and "OPENROUTER_API_KEY" in reason
    with pytest.raises(NeedsCredentials) as info:
        collect(OpenRouterSource, {}, ctx=ctx)
    assert "OPENROUTER_MANAGEMENT_KEY" in str(info.value) and "OPENROUTER_API_KEY" in str(info.value)
    assert info.value.exit_code == 5
    assert OpenRouterSource(OpenRouterSource.Settings(), fake_context(env=KEY_ENV)).available() is None


def test_key_env_names_come_from_settings():
    env = {"MY_OR_ADMIN": MANAGEMENT_KEY}
    settings = {"management_key_env": "MY_OR_ADMIN", "api_key_env": "MY_OR_KEY"}
    fake = FakeOpenRouter(today=NOW.date())
    out = run(fake, env=env, settings=settings, window=DAY14)
    assert len(out.records) == 2
    ctx = fake_context("openrouter", env={})
    assert "MY_OR_ADMIN" in OpenRouterSource(OpenRouterSource.Settings(**settings), ctx).available()


@pytest.mark.parametrize("url", ["http://openrouter.ai/api/v1", "ftp://127.0.0.1/x", "http://10.0.0.1/api"])
def test_base_url_must_be_https_unless_loopback(url):
    with pytest.raises(ConfigError, match="https"):
        run(FakeOpenRouter(today=NOW.date()), settings={"base_url": url})


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/api/v1/", "http://localhost:9/api/v1", "http://[::1]:9/api/v1"])
def test_loopback_http_base_url_is_allowed(url):
    fake = FakeOpenRouter(today=NOW.date())
    run(fake, env=KEY_ENV, settings={"base_url": url})
    assert fake.calls == ["/key"]


def test_401_says_the_key_was_rejected():
    fake = FakeOpenRouter(today=NOW.date())
    with pytest.raises(ProviderAuthError) as info:
        run(fake, env={"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-FAKE-wrong-key"})
    message = str(info.value)
    assert message == ("openrouter: key rejected by OpenRouter (HTTP 401: User not found.): "
                       "check OPENROUTER_MANAGEMENT_KEY")
    assert info.value.exit_code == 5 and "wrong-key" not in message


def test_403_explains_that_activity_needs_a_management_key():
    fake = FakeOpenRouter(today=NOW.date())
    with pytest.raises(ProviderAuthError) as info:
        run(fake, env={"OPENROUTER_MANAGEMENT_KEY": API_KEY})
    message = str(info.value)
    assert "/activity needs a management key" in message
    assert "openrouter.ai/settings/management-keys" in message and "OPENROUTER_MANAGEMENT_KEY" in message
    assert API_KEY not in message and info.value.exit_code == 5


def test_429_retry_after_is_honoured_by_the_host_transport():
    fake = FakeOpenRouter(today=NOW.date(), faults=[
        Fault("/key", 429, error(429, "Rate limit exceeded", error_type="rate_limit_exceeded"),
              {"Retry-After": "7"}, times=2)])
    sleeps: list[float] = []
    out = run(fake, env=KEY_ENV, sleeps=sleeps)
    assert sleeps == [7.0, 7.0] and fake.calls == ["/key"] * 3
    assert out.records[0].cost == Decimal("1.23")


def test_429_too_long_to_wait_raises_rate_limited_with_retry_after():
    fake = FakeOpenRouter(today=NOW.date(), faults=[
        Fault("/key", 429, error(429, "Rate limit exceeded"), {"Retry-After": "600"}, times=9)])
    with pytest.raises(ProviderRateLimited) as info:
        run(fake, env=KEY_ENV, sleeps=[])
    assert info.value.retry_after == 600 and info.value.exit_code == 3
    assert fake.calls == ["/key"]


def test_503_then_success_and_500_forever():
    sleeps: list[float] = []
    fake = FakeOpenRouter(today=NOW.date(), faults=[
        Fault("/key", 503, error(503, "Service Unavailable"), {"Retry-After": "2"})])
    out = run(fake, env=KEY_ENV, sleeps=sleeps)
    assert sleeps == [2.0] and len(out.records) == 1
    fake = FakeOpenRouter(today=NOW.date(), faults=[Fault("/key", 500, error(500, "Internal"), times=99)])
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        run(fake, env=KEY_ENV, sleeps=[])
    assert len(fake.calls) == 4  # the host's retry policy: 4 attempts


def test_failure_mid_backfill_keeps_a_checkpoint():
    fake = FakeOpenRouter(today=NOW.date(), faults=[Fault("/credits", 400, error(400, "Bad"))])
    ctx = fake_context("openrouter", now=NOW, env=MGMT_ENV, handler=fake.handler)
    source = OpenRouterSource(OpenRouterSource.Settings(), ctx)
    items = []
    with pytest.raises(ProviderResponseError, match="HTTP 400"):
        for item in source.fetch(Window(start=None, end=NOW), {}):
            items.append(item)
    cursors = [i.state for i in items if not isinstance(i, UsageRecord) and hasattr(i, "state")]
    assert cursors[-1]["final_through"] == "2026-03-12"
    assert sum(isinstance(i, UsageRecord) for i in items) == 56


def test_answer_without_data_is_a_response_error():
    ctx = fake_context("openrouter", now=NOW, env=KEY_ENV,
                       handler=lambda request: httpx.Response(200, text="<html>maintenance</html>"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        collect(OpenRouterSource, {}, ctx=ctx)
    ctx = fake_context("openrouter", now=NOW, env=KEY_ENV,
                       handler=lambda request: httpx.Response(200, json={"ok": True}))
    with pytest.raises(ProviderResponseError, match="'data'"):
        collect(OpenRouterSource, {}, ctx=ctx)


def test_the_plugin_registers_its_source():
    from tokenmeter.plugin_manager import get_sources

    assert get_sources()["openrouter"] is OpenRouterSource
    assert OpenRouterSource.kind == "ledger" and OpenRouterSource.provider == "openrouter"
    for f in OpenRouterSource.Settings.__dataclass_fields__.values():
        assert f.metadata.get("help")


def test_through_the_host_store_rows_are_replaced_not_duplicated(tmp_path):
    pytest.importorskip("tokenmeter.fetch")
    from tokenmeter.testing import run_source

    db = tmp_path / "or.db"
    rows = run_source(OpenRouterSource, {}, db_path=db, now=NOW, env=MGMT_ENV,
                      handler=FakeOpenRouter(today=NOW.date()).handler)
    assert len(rows) == 56
    settled = FakeOpenRouter(today=NEXT_DAY.date(), revision=2,
                             late_days=frozenset({date(2026, 3, 13), date(2026, 3, 14)}))
    rows = run_source(OpenRouterSource, {}, db_path=db, now=NEXT_DAY, env=MGMT_ENV, handler=settled.handler)
    assert len(rows) == 58
    assert cents(sum(r["cost"] for r in rows)) == Decimal("4.79")
    assert {r["cost_kind"] for r in rows} == {"billed"} and {r["currency"] for r in rows} == {"USD"}
    [gpt] = [r for r in rows if r["key"] == f"2026-03-14/{GPT_SLUG}/{GPT_ENDPOINT}"]
    assert (gpt["cost"], gpt["requests"]) == (Decimal("0.195"), 29)
    assert [c for c in settled.calls if c.startswith("/activity")] == [
        "/activity?date=2026-03-13", "/activity?date=2026-03-14", "/activity?date=2026-03-15"]


# -- vcrpy cassettes ----------------------------------------------------------------------------
def _scrub_response(response: dict) -> dict:
    # the fake server's Date/Server headers change on every recording and mean nothing here
    headers = response["headers"]
    response["headers"] = {k: v for k, v in headers.items() if k.lower() not in ("date", "server")}
    return response


@contextmanager
def cassette(name: str, fake: FakeOpenRouter) -> Iterator[Any]:
    """Replay cassettes/openrouter/<name>.yaml; with OPENROUTER_RECORD_CASSETTES=1 record it from ``fake``."""
    import vcr

    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if RECORD else "none",
        filter_headers=["authorization", "user-agent"],
        match_on=("method", "scheme", "host", "port", "path", "query"),
        before_record_response=_scrub_response,
    )
    with ExitStack() as stack:
        if RECORD:
            stack.enter_context(fake.serve(RECORD_PORT))
        cass = stack.enter_context(recorder.use_cassette(f"{name}.yaml"))
        yield cass
        if not RECORD:
            assert cass.all_played, f"{name}: not every recorded request was made"


def replay(name: str, fake: FakeOpenRouter, **kwargs: Any):
    settings = {"base_url": CASSETTE_BASE, **kwargs.pop("settings", {})}
    with cassette(name, fake):
        return run(None, settings=settings, **kwargs)


def test_cassette_management_backfill():
    out = replay("management_backfill", FakeOpenRouter(today=NOW.date()))
    assert_backfill(out)


def test_cassette_incremental_run_replaces_the_last_days():
    store: dict = {}
    first = replay("management_backfill", FakeOpenRouter(today=NOW.date()))
    upsert(store, first.records)
    def settled() -> FakeOpenRouter:
        return FakeOpenRouter(today=NEXT_DAY.date(), revision=2,
                              late_days=frozenset({date(2026, 3, 13), date(2026, 3, 14)}))

    second = replay("management_incremental", settled(), now=NEXT_DAY, cursor=first.cursor)
    assert {r.start.date().isoformat() for r in second.records} == {"2026-03-13", "2026-03-14", "2026-03-15"}
    upsert(store, second.records)
    assert len(store) == 58
    assert store[("management", f"2026-03-13/{GPT_SLUG}/{GPT_ENDPOINT}")].cost == Decimal("0.185")
    assert cents(total_cost(store.values())) == Decimal("4.79")
    assert second.cursor["final_through"] == "2026-03-13"
    # replaying the same run again gives the same keys and values
    again = replay("management_incremental", settled(), now=NEXT_DAY, cursor=first.cursor)
    assert by_key(again.records) == by_key(second.records)
    assert again.snapshots == second.snapshots and again.cursor == second.cursor


def test_cassette_ordinary_key_fallback():
    out = replay("ordinary_key", FakeOpenRouter(today=NOW.date()), env=KEY_ENV)
    [rec] = out.records
    assert rec.key == "2026-03-15/key-daily" and cents(rec.cost) == Decimal("1.23")
    [snap] = out.snapshots
    assert snap.name == "key-limit" and snap.remaining == Decimal("74.5")
    assert "per-model detail needs a management key" in out.ctx.warnings[0]


def test_cassette_401():
    with pytest.raises(ProviderAuthError, match="key rejected.*check OPENROUTER_MANAGEMENT_KEY"):
        replay("error_401", FakeOpenRouter(today=NOW.date()),
               env={"OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-FAKE-revoked-key"})


def test_cassette_403_ordinary_key_as_management_key():
    with pytest.raises(ProviderAuthError, match="needs a management key.*settings/management-keys"):
        replay("error_403", FakeOpenRouter(today=NOW.date()), env={"OPENROUTER_MANAGEMENT_KEY": API_KEY})


def test_cassette_429_with_retry_after():
    fake = FakeOpenRouter(today=NOW.date(), faults=[
        Fault("/activity", 429, error(429, "Rate limit exceeded", error_type="rate_limit_exceeded"),
              {"Retry-After": "3", "X-RateLimit-Remaining": "0"})])
    sleeps: list[float] = []
    out = replay("error_429_retry_after", fake, sleeps=sleeps,
                 window=DAY14)
    assert sleeps == [3.0]
    assert cents(total_cost(out.records)) == Decimal("0.16")  # 0.145 + 0.0125


def test_cassette_500_then_success():
    fake = FakeOpenRouter(today=NOW.date(),
                          faults=[Fault("/credits", 500, error(500, "Internal Server Error"))])
    sleeps: list[float] = []
    out = replay("error_500_then_success", fake, sleeps=sleeps,
                 window=DAY14)
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.5  # the host's backoff, no Retry-After given
    assert {s.name for s in out.snapshots} >= {"credits"}
    assert len(out.records) == 2


def test_cassettes_hold_no_key():
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) == 7
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert MANAGEMENT_KEY not in text and API_KEY not in text and "FAKE-" not in text
        assert "Bearer" not in text and not REAL_KEY_SHAPE.search(text)
        assert "authorization" not in text.lower()


def test_error_messages_stay_on_one_line():
    fake = FakeOpenRouter(today=NOW.date(), faults=[
        Fault("/activity", 403, error(403, "Forbidden:\n  workspace policy\r\ndenies /activity\n"))])
    with pytest.raises(ProviderAuthError) as info:
        run(fake, window=DAY14)
    assert str(info.value) == ("openrouter: HTTP 403 from OpenRouter on /activity (Forbidden: workspace policy "
                               "denies /activity): check the permissions of OPENROUTER_MANAGEMENT_KEY")
