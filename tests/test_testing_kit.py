"""tokenmeter.testing: what plugin authors get (and what docs/plugins/testing.md promises)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenmeter import (
    Cursor,
    NeedsCredentials,
    ProviderRateLimited,
    QuotaSnapshot,
    Source,
    UsageRecord,
    raise_for_status,
    send,
)
from tokenmeter.testing import (
    FIXED_NOW,
    HostRun,
    SourceRunner,
    check_records,
    collect,
    fake_context,
    run_source,
)

DAY = datetime(2026, 3, 14, tzinfo=UTC)


class Counter(Source):
    """Yields one record per day since its cursor (or since `first`), a snapshot, then a cursor."""

    id = "kit-counter"
    provider = "kit"
    kind = "ledger"

    @dataclass
    class Settings:
        first: str = field(default="2026-03-13", metadata={"help": "First day."})
        fail_after: int = field(default=-1, metadata={"help": "Raise after this many records."})

    def fetch(self, window, cursor):
        day = datetime.fromisoformat(cursor.get("next", self.settings.first)).replace(tzinfo=UTC)
        n = 0
        while day < self.ctx.now():
            if n == self.settings.fail_after:
                raise NeedsCredentials("kit-counter: set KIT_KEY")
            yield UsageRecord(key=day.date().isoformat(), start=day, end=day + timedelta(days=1),
                              provider="kit", model="kit-1", requests=1, input_tokens=10, output_tokens=2,
                              cost=Decimal("0.01"), currency="USD", cost_kind="billed")
            n += 1
            day += timedelta(days=1)
            yield Cursor({"next": day.date().isoformat()})  # a checkpoint after each day
        yield QuotaSnapshot(provider="kit", name="credits", unit="USD", observed_at=self.ctx.now(),
                            remaining=Decimal("9.5"))


class Http(Source):
    id = "kit-http"
    provider = "kit"
    kind = "ledger"

    def fetch(self, window, cursor):
        key = self.ctx.require_secret("KIT_KEY")
        request = self.ctx.http.build_request("GET", "https://kit.example/v1/usage",
                                              headers={"Authorization": f"Bearer {key}"})
        response = send(self.ctx.http, request, source=self.id)
        raise_for_status(response, source=self.id)
        for day, tokens in response.json().items():
            yield UsageRecord(key=day, start=datetime.fromisoformat(day).replace(tzinfo=UTC), provider="kit",
                              input_tokens=tokens)


# -- fake_context / collect ------------------------------------------------------------------------


def test_fake_context_clock_env_and_handler():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"2026-03-01": 5, "2026-03-02": 7})

    ctx = fake_context("kit-http", env={"KIT_KEY": "test-key-not-real"}, handler=handler)
    assert ctx.now() == FIXED_NOW == datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    assert ctx.machine_id == "test-machine" and ctx.timezone is UTC
    out = collect(Http, ctx=ctx)
    assert [(r.key, r.input_tokens) for r in out.records] == [("2026-03-01", 5), ("2026-03-02", 7)]
    assert seen[0].headers["Authorization"] == "Bearer test-key-not-real"
    assert out.ctx is ctx and "test-key-not-real" in ctx.secrets  # remembered for redaction


def test_fake_context_never_reads_the_real_environment(monkeypatch):
    monkeypatch.setenv("KIT_KEY", "real-key-from-the-shell")
    with pytest.raises(NeedsCredentials, match="kit-http: set KIT_KEY"):
        collect(Http)
    assert os.environ["KIT_KEY"] == "real-key-from-the-shell"


def test_retries_run_instantly_then_raise_rate_limited():
    """The example in docs/plugins/testing.md."""
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(429, headers={"Retry-After": "2"})

    ctx = fake_context("kit-http", env={"KIT_KEY": "test-key-not-real"}, handler=handler)
    with pytest.raises(ProviderRateLimited) as exc:
        collect(Http, ctx=ctx)
    assert len(calls) > 1 and exc.value.retry_after == 2


def test_collect_settings_as_dict_or_instance_and_cursor():
    by_dict = collect(Counter, {"first": "2026-03-14"})
    by_obj = collect(Counter, Counter.Settings(first="2026-03-14"))
    assert [r.key for r in by_dict.records] == [r.key for r in by_obj.records] == ["2026-03-14", "2026-03-15"]
    assert by_dict.cursor == {"next": "2026-03-16"}
    assert [s.name for s in by_dict.snapshots] == ["credits"]
    resumed = collect(Counter, cursor={"next": "2026-03-15"})
    assert [r.key for r in resumed.records] == ["2026-03-15"]


def test_collect_rejects_unknown_items_and_non_json_cursors():
    class Bad(Counter):
        id = "kit-bad"

        def fetch(self, window, cursor):
            yield {"not": "a record"}

    with pytest.raises(AssertionError, match="expected UsageRecord, QuotaSnapshot or Cursor"):
        collect(Bad)

    class BadCursor(Counter):
        id = "kit-bad-cursor"

        def fetch(self, window, cursor):
            yield Cursor({"when": datetime(2026, 1, 1)})

    with pytest.raises(TypeError, match="not JSON serializable"):
        collect(BadCursor)


# -- check_records ---------------------------------------------------------------------------------


def rec(key: str = "k", **kw: Any) -> UsageRecord:
    return UsageRecord(key=key, start=DAY, provider="kit", **kw)


def test_check_records_accepts_a_good_set():
    check_records([rec("a", input_tokens=5, cache_read_tokens=5), rec("b", account="x"),
                   QuotaSnapshot(provider="kit", name="credits", unit="USD", observed_at=DAY)])


def test_check_records_catches_duplicate_keys_per_account():
    check_records([rec("a", account="one"), rec("a", account="two")])
    with pytest.raises(AssertionError, match="duplicate key 'a' for account 'one'"):
        check_records([rec("a", account="one"), rec("a", account="one")])


def test_check_records_catches_a_record_altered_after_validation():
    broken = rec("a", input_tokens=5)
    object.__setattr__(broken, "cache_read_tokens", 9)  # bypasses __post_init__
    with pytest.raises(ValueError, match="cache_read_tokens=9 exceeds input_tokens=5"):
        check_records([broken])


# -- through the host ------------------------------------------------------------------------------


def test_source_runner_stores_rows_snapshots_and_cursor(source_runner):
    run = source_runner(Counter)
    assert isinstance(run, HostRun)
    assert (run.status, run.message, run.exit_code, run.new, run.updated) == ("ok", "", 0, 3, 0)
    assert [r["key"] for r in run.rows] == ["2026-03-13", "2026-03-14", "2026-03-15"]
    first = run.rows[0]
    assert (first["source"], first["kind"], first["start"], first["cost"]) == (
        "kit-counter", "ledger", "2026-03-13T00:00:00Z", Decimal("0.01"))
    assert [(s["name"], s["remaining"]) for s in run.snapshots] == [("credits", Decimal("9.5"))]
    assert run.cursor == {"next": "2026-03-16"}
    # the next call reuses the database and the cursor: nothing new to read
    again = source_runner(Counter, now=FIXED_NOW + timedelta(days=1))
    assert (again.new, len(again.rows), again.cursor) == (1, 4, {"next": "2026-03-17"})


def test_source_runner_reports_errors_and_keeps_the_last_checkpoint(source_runner):
    run = source_runner(Counter, {"fail_after": 2})
    assert (run.status, run.exit_code, run.message) == ("error", 5, "kit-counter: set KIT_KEY")
    assert [r["key"] for r in run.rows] == ["2026-03-13", "2026-03-14"]
    assert run.cursor == {"next": "2026-03-15"}


def test_source_runner_checks_settings_like_a_config_file(source_runner):
    run = source_runner(Counter, {"frist": "2026-03-01"})
    assert run.status == "error" and run.exit_code == 4
    assert "sources.kit-counter.frist: unknown key" in run.message


def test_source_runner_prices_records_without_a_cost(tmp_path):
    class Unpriced(Counter):
        id = "kit-unpriced"

        def fetch(self, window, cursor):
            yield UsageRecord(key="a", start=DAY, provider="qwen", model="qwen-plus", requests=1,
                              input_tokens=1_000_000, output_tokens=0)

    run = SourceRunner(tmp_path / "db.sqlite")(Unpriced)
    [row] = run.rows
    assert row["cost"] is None and row["estimated_cost"] is not None and row["estimated_cost"] > 0


def test_run_source_returns_rows(tmp_path):
    rows = run_source(Counter, {"first": "2026-03-15"}, db_path=tmp_path / "tm.db")
    assert [r["key"] for r in rows] == ["2026-03-15"]


# -- fixtures --------------------------------------------------------------------------------------


def test_fixtures(tokenmeter_env, fixed_now):
    assert fixed_now == FIXED_NOW
    assert os.environ["TOKENMETER_HOME"] == str(tokenmeter_env)
    assert os.environ["TOKENMETER_DB"] == str(tokenmeter_env / "tokenmeter.db")
    assert "TOKENMETER_CONFIG" not in os.environ  # so TOKENMETER_HOME/config.toml is the config


# -- opt-in ----------------------------------------------------------------------------------------


def test_the_kit_is_not_registered_with_pytest_for_everyone():
    """Installing tokenmeter adds no ``pytest11`` entry point: the kit loads only where asked for."""
    assert [ep for ep in metadata.entry_points(group="pytest11") if ep.value.startswith("tokenmeter")] == []
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    assert "pytest11" not in pyproject.read_text()


def test_a_conftest_line_opts_in(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_now(fixed_now):\n    assert fixed_now.year == 2026\n")

    def pytest_run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    without = pytest_run()
    assert without.returncode == 1 and "fixture 'fixed_now' not found" in without.stdout
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tokenmeter.testing"]\n')  # docs/plugins/testing.md
    opted_in = pytest_run()
    assert opted_in.returncode == 0, opted_in.stdout + opted_in.stderr
