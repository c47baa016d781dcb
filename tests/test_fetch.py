"""The fetch runner: summaries, skipped sources, named sources, settings, windows, secret redaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from helpers_host import cli_run, make_source, rec, register

from tokenmeter import ConfigError, Cursor, ProviderAuthError, QuotaSnapshot
from tokenmeter.config import Config, parse_config
from tokenmeter.fetch import SourceResult, exit_code_for, run_fetch, select_sources
from tokenmeter.store import Store

FAKE_SECRET = "sk-fake-0000-SECRET-VALUE"


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "f.db")
    yield s
    s.close()


def run(store, sources, names=(), config=None, **kw):
    installed = {s.id: s for s in sources}
    return {r.source: r for r in run_fetch(store, config or Config(), list(names), installed, **kw)}


def test_summary_numbers(store):
    def items(self, window, cursor):
        self.ctx.skip("log.tsv:3", "not UTF-8")
        self.ctx.skip("log.tsv:9", "7 columns, expected 9")
        self.ctx.warn("clock skew of 2 minutes")
        yield rec("a")
        yield rec("b")
        yield QuotaSnapshot(provider="qwen", name="credits", unit="USD", observed_at=datetime(2026, 3, 1, tzinfo=UTC),
                            remaining=Decimal("5"))
        yield Cursor({"offset": 2})

    src = make_source("src", items)
    r = run(store, [src])["src"]
    assert (r.status, r.new, r.updated, r.unchanged, r.snapshots, r.skipped_lines) == ("ok", 2, 0, 0, 1, 2)
    assert r.skip_examples == ["log.tsv:3: not UTF-8", "log.tsv:9: 7 columns, expected 9"]
    assert r.warnings == ["clock skew of 2 minutes"]
    assert r.seconds >= 0 and r.exit_code == 0
    d = r.as_dict()
    assert "traceback" not in d and d["new"] == 2
    again = run(store, [src])["src"]
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
    runs = store.conn.execute("SELECT source, status, new, unchanged, snapshots, skipped FROM fetch_runs").fetchall()
    assert runs == [("src", "ok", 2, 0, 1, 2), ("src", "ok", 0, 2, 1, 2)]


def test_unavailable_and_disabled_sources_are_skipped(store):
    ready = make_source("ready", [rec("a")])
    absent = make_source("absent", [rec("b")], available="no log files match /var/log/none/*.tsv")
    off = make_source("off", [rec("c")])
    config = parse_config({"sources": {"off": {"enabled": False}}})
    results = run(store, [ready, absent, off], config=config)
    assert results["ready"].status == "ok"
    assert (results["absent"].status, results["absent"].message) == (
        "skipped", "no log files match /var/log/none/*.tsv")
    assert (results["off"].status, results["off"].message) == ("skipped", "disabled in config")
    assert exit_code_for(list(results.values())) == 0  # skipping is not an error
    assert {r["key"] for r in store.usage_rows()} == {"a"}


def test_skipped_listed_by_cli():
    register(make_source("ready", [rec("a")]), make_source("absent", available="QWEN logs not found"))
    result = cli_run(["fetch", "-f", "table"])
    assert result.exit_code == 0
    assert "absent: skipped (QWEN logs not found)" in result.stdout
    assert "ready: 1 new, 0 updated" in result.stdout


def test_named_source_runs_without_config_table_even_if_unavailable(store):
    @dataclass
    class Settings:
        paths: list[str] = field(default_factory=lambda: ["/default/path"], metadata={"help": "files"})

    seen = []

    def items(self, window, cursor):
        seen.append(self.settings.paths)
        yield rec("a")

    src = make_source("named", items, available="nothing here", settings=Settings)
    results = run(store, [src], names=["named"])
    assert results["named"].status == "ok" and seen == [["/default/path"]]
    # with a config table its values are used (a single string where a list is expected is a list)
    run(store, [src], names=["named"], config=parse_config({"sources": {"named": {"paths": "/x.tsv"}}}))
    assert seen[-1] == ["/x.tsv"]


def test_unknown_source_name(store):
    with pytest.raises(ConfigError, match="unknown source 'nope'; installed sources: a, b"):
        select_sources(["nope"], Config(), {"a": make_source("a"), "b": make_source("b")})
    with pytest.raises(ConfigError, match="none installed"):
        select_sources(["nope"], Config(), {})


def test_bad_settings_reported_as_config_error(store):
    @dataclass
    class Settings:
        timeout: int = 30

    src = make_source("cfg", [rec("a")], settings=Settings)
    config = parse_config({"sources": {"cfg": {"timeout": "soon"}}})
    r = run(store, [src], config=config)["cfg"]
    assert r.status == "error" and r.exit_code == 4
    assert r.message == "cfg: sources.cfg.timeout: expected an integer, got 'soon'"


def test_secrets_redacted_from_messages(store, monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", FAKE_SECRET)

    def items(self, window, cursor):
        key = self.ctx.require_secret("FAKE_API_KEY")
        self.ctx.skip(f"request with {key}", "bad line")
        self.ctx.warn(f"key {key} expires soon")
        raise ProviderAuthError(f"the provider rejected key {key}")
        yield

    r = run(store, [make_source("sec", items, kind="ledger")])["sec"]
    assert r.status == "error" and r.exit_code == 5
    assert r.message == "sec: the provider rejected key ***"
    assert FAKE_SECRET not in r.traceback and "***" in r.traceback
    assert r.skip_examples == ["request with ***: bad line"]
    assert r.warnings == ["key *** expires soon"]
    stored = store.conn.execute("SELECT last_error FROM source_state").fetchone()[0]
    assert FAKE_SECRET not in stored
    runs = store.conn.execute("SELECT error FROM fetch_runs").fetchone()[0]
    assert FAKE_SECRET not in runs


def test_secret_added_by_source_is_redacted(store):
    def items(self, window, cursor):
        self.ctx.add_secret("token-abcdef")
        raise RuntimeError("GET https://x.test/?token=token-abcdef failed")
        yield

    r = run(store, [make_source("sec", items)])["sec"]
    assert r.message == "sec: unexpected RuntimeError: GET https://x.test/?token=*** failed"


def test_secret_redacted_through_cli(monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", FAKE_SECRET)

    def items(self, window, cursor):
        raise ProviderAuthError(f"rejected {self.ctx.require_secret('FAKE_API_KEY')}")
        yield

    register(make_source("sec", items, kind="ledger"))
    result = cli_run(["fetch", "sec", "-f", "table", "--debug"])
    assert result.exit_code == 5
    assert FAKE_SECRET not in result.output and "rejected ***" in result.stderr


def test_window_from_cli(tokenmeter_env):
    (tokenmeter_env / "config.toml").write_text('[tokenmeter]\ntimezone = "Asia/Tokyo"\n')
    windows = []

    def items(self, window, cursor):
        windows.append(window)
        yield from ()

    register(make_source("w", items))
    env = {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}
    assert cli_run(["fetch", "w", "--from", "2026-03-01", "--to", "2026-03-02"], env).exit_code == 0
    assert cli_run(["fetch", "w"], env).exit_code == 0
    assert cli_run(["fetch", "w", "--since", "2026-03-10"], env).exit_code == 0
    explicit, default, since = windows
    assert explicit.start == datetime(2026, 2, 28, 15, tzinfo=UTC)  # Tokyo midnight
    assert explicit.end == datetime(2026, 3, 2, 15, tzinfo=UTC)  # --to is inclusive
    assert explicit.explicit and not default.explicit
    assert default.start is None
    assert since.end == datetime(2026, 3, 15, 12, tzinfo=UTC)  # capped at now
    bad = cli_run(["fetch", "w", "--from", "2026-03-05", "--to", "2026-03-01"], env)
    assert bad.exit_code == 64  # a command-line usage error (issue 13), not a config error


def test_exit_code_for():
    ok = SourceResult("a", "ok")
    skipped = SourceResult("s", "skipped")
    creds = SourceResult("b", "error", exit_code=5)
    net = SourceResult("c", "error", exit_code=3)
    assert exit_code_for([]) == 0
    assert exit_code_for([ok, skipped]) == 0
    assert exit_code_for([creds]) == 5
    assert exit_code_for([creds, skipped]) == 5
    assert exit_code_for([creds, net]) == 6
    assert exit_code_for([ok, creds]) == 6


def test_failure_isolated_and_others_run(store):
    def boom(self, window, cursor):
        raise KeyError("missing field")
        yield

    results = run(store, [make_source("a", boom), make_source("b", [rec("x")])])
    assert results["a"].status == "error" and results["a"].exit_code == 6
    assert results["a"].message == "a: unexpected KeyError: 'missing field'"
    assert results["b"].status == "ok" and results["b"].new == 1
    assert store.source_states()["a"]["last_error"] == results["a"].message


def test_buggy_available_check_does_not_stop_other_sources(store):
    def broken_check(self):
        raise PermissionError("cannot list /root/logs")

    buggy = make_source("buggy", [rec("b")])
    buggy.available = broken_check
    results = run(store, [buggy, make_source("fine", [rec("f")])])
    assert results["fine"].status == "ok" and results["fine"].new == 1
    assert results["buggy"].status == "ok"  # run anyway: a real failure would be reported by the run


def test_sources_see_the_fixed_now():
    seen = []

    def items(self, window, cursor):
        seen.append((self.ctx.now(), window.end))
        yield from ()

    register(make_source("clock", items))
    assert cli_run(["fetch", "clock"], {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}).exit_code == 0
    fixed = datetime(2026, 3, 15, 12, tzinfo=UTC)
    assert seen == [(fixed, fixed)]


def test_key_pasted_where_an_env_var_name_belongs_is_never_echoed(store):
    # `token_env = "sk-..."`: the key itself instead of the variable's name; sources say "set <name>"
    @dataclass
    class Settings:
        token_env: str = field(default="SEC_TOKEN", metadata={"help": "env var with the token"})

    def items(self, window, cursor):
        raise ProviderAuthError(f"set {self.settings.token_env} to a valid token")
        yield

    src = make_source("sec", items, kind="ledger", settings=Settings)
    src.available = lambda self: None if self.ctx.secret(self.settings.token_env) else (
        f"set {self.settings.token_env}")
    config = parse_config({"sources": {"sec": {"token_env": FAKE_SECRET}}})
    assert any("sources.sec.token_env" in w for w in config.warnings)
    assert FAKE_SECRET not in " ".join(config.warnings)
    skipped = run(store, [src], config=config)["sec"]
    assert (skipped.status, skipped.message) == ("skipped", "set ***")
    failed = run(store, [src], names=["sec"], config=config)["sec"]
    assert failed.status == "error" and failed.message == "sec: set *** to a valid token"


def test_blank_env_var_counts_as_not_set():
    from tokenmeter import NeedsCredentials
    from tokenmeter.sources import SourceContext

    ctx = SourceContext("sec", env={"SEC_TOKEN": "  \n"})
    assert ctx.secret("SEC_TOKEN") is None
    with pytest.raises(NeedsCredentials, match="set SEC_TOKEN"):
        ctx.require_secret("SEC_TOKEN")


def test_a_run_with_nothing_to_price_never_loads_the_price_tables(store, monkeypatch):
    from tokenmeter.pricing import PriceBook

    loads = []
    real = PriceBook.load.__func__

    def counting(cls, *args, **kwargs):
        loads.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(PriceBook, "load", classmethod(counting))

    def nothing(self, window, cursor):
        yield Cursor({"offset": 0})

    def one(self, window, cursor):
        yield rec("a", model="qwen-plus", input_tokens=1000, output_tokens=10)

    assert run(store, [make_source("idle", nothing)])["idle"].status == "ok" and loads == []
    r = run(store, [make_source("busy", one)])["busy"]
    assert r.new == 1 and loads == [1]
    assert store.usage_rows()[0]["estimated_cost"] is not None
