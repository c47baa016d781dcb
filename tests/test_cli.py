"""The command line: help, empty database, report formats and JSON shape, exit codes, db/quota/sources."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import click
import pytest
from helpers_host import cli_json, cli_run, make_source, rec, register

from tokenmeter import (
    Cursor,
    NeedsCredentials,
    ProviderUnavailable,
    QuotaSnapshot,
)
from tokenmeter.store import Store

NOW = {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}
TODAY = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
ROW_KEYS = {"requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
            "reasoning_tokens", "total_tokens", "cost", "currency", "cost_kind", "unpriced_requests"}


def usage_items():
    return [
        rec("q1", start=TODAY, provider="qwen", model="qwen-plus", requests=2, input_tokens=1_234_567,
            output_tokens=1000, cost="1500", currency="CNY", cost_kind="logged"),
        rec("q2", start=TODAY, provider="qwen-singapore", model="qwen3-max", requests=1, input_tokens=10,
            output_tokens=5, cost="0.000001", currency="CNY", cost_kind="logged"),
        rec("o1", start=TODAY, provider="openrouter", model="anthropic/claude", requests=4,
            input_tokens=400, output_tokens=40, cost="0.25", currency="USD", cost_kind="logged"),
        rec("y1", start=datetime(2026, 3, 14, 9, tzinfo=UTC), provider="qwen", model="no-price-model-x",
            requests=100, input_tokens=1, output_tokens=1),
        Cursor({"n": 4}),
    ]


@pytest.fixture
def data():
    """A fake plugin's source fetched into the test database."""
    register(make_source("fake", usage_items()))
    result = cli_run(["fetch", "fake", "-f", "table"], NOW)
    assert result.exit_code == 0, result.output


# -- basics ------------------------------------------------------------------------------------------


def test_help():
    result = cli_run(["--help"])
    assert result.exit_code == 0
    for word in ("Usage: ", "report", "fetch", "plugins", "db", "--provider", "--by", "--today"):
        assert word in result.stdout


def test_version():
    result = cli_run(["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("tokenmeter, version ")


def test_plugins_prints_json():
    register(make_source("fake"), name="tokenmeter-fake")
    plugins = cli_json(["plugins"])
    assert isinstance(plugins, list)
    entry = next(p for p in plugins if p["name"] == "tokenmeter-fake")
    assert set(entry) >= {"name", "version", "hooks", "sources"}
    assert entry["sources"] == ["fake"]


def test_plugins_with_installed_plugins():
    result = cli_run(["plugins"], {"TOKENMETER_LOAD_PLUGINS": None})
    assert result.exit_code == 0
    names = {p["name"] for p in json.loads(result.stdout)}
    assert "openrouter" in names


def test_report_on_empty_database():
    data = cli_json(["report", "--all", "--json"])
    assert data["rows"] == [] and data["group_by"] == ["day"]  # the default for a multi-day period
    assert data["period"] == {"from": None, "to": None, "tz": data["period"]["tz"]}
    assert data["total"]["requests"] == 0 and data["total"]["cost"] is None
    table = cli_run(["report", "--all", "-f", "table"])
    assert table.exit_code == 0 and "No usage recorded" in table.stdout


def test_report_on_empty_database_with_installed_plugins():
    result = cli_run(["report", "--all", "--json"], {"TOKENMETER_LOAD_PLUGINS": None})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == []


def test_bare_form_like_the_seed(data):
    data = cli_json(["--provider", "qwen", "--today", "--json"], NOW)
    assert data["period"]["from"] == data["period"]["to"] == "2026-03-15"
    # qwen and qwen-singapore today (yesterday's qwen row is outside the period)
    assert data["total"]["requests"] == 3
    assert data["total"]["cost"] == "1500.000001" and data["total"]["currency"] == "CNY"
    same = cli_json(["report", "--provider", "qwen", "--today", "--json"], NOW)
    assert same == data


# -- formats -----------------------------------------------------------------------------------------


def test_json_shape(data):
    out = cli_json(["report", "--today", "--by", "provider,model", "--json", "--tz", "UTC"], NOW)
    assert set(out) == {"schema_version", "period", "group_by", "rows", "total"}
    assert out["schema_version"] == 1
    assert out["period"] == {"from": "2026-03-15", "to": "2026-03-15", "tz": "UTC"}
    assert out["group_by"] == ["provider", "model"]
    for row in out["rows"]:
        assert set(row) == ROW_KEYS | {"provider", "model"}
        assert row["cost"] is None or isinstance(row["cost"], str)
    rows = {(r["provider"], r["model"]): r for r in out["rows"]}
    assert rows[("qwen", "qwen-plus")]["cost"] == "1500"
    assert rows[("qwen", "qwen-plus")]["input_tokens"] == 1_234_567
    assert rows[("qwen-singapore", "qwen3-max")]["cost"] == "0.000001"
    assert rows[("openrouter", "anthropic/claude")]["currency"] == "USD"
    assert rows[("openrouter", "anthropic/claude")]["cost_kind"] == "logged"
    # two currencies: the total is one row per currency
    assert [(t["currency"], t["cost"]) for t in out["total"]] == [("CNY", "1500.000001"), ("USD", "0.25")]
    assert all(Decimal(t["cost"]) for t in out["total"])


def test_json_when_piped_by_default(data):
    result = cli_run(["report", "--today"], NOW)  # CliRunner's stdout is not a TTY
    assert json.loads(result.stdout)["total"]


def test_csv_round_trip(data):
    result = cli_run(["report", "--today", "--by", "model", "--csv"], NOW)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == ("model,requests,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,"
                        "reasoning_tokens,total_tokens,cost,currency,cost_kind,unpriced_requests")
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert set(rows) == {"anthropic/claude", "qwen-plus", "qwen3-max"}
    plus = rows["qwen-plus"]
    assert plus["input_tokens"] == "1234567" and plus["total_tokens"] == "1235567"  # no separators
    assert plus["cost"] == "1500" and plus["currency"] == "CNY"
    assert rows["qwen3-max"]["cost"] == "0.000001"  # no exponent notation
    assert rows["qwen3-max"]["cache_read_tokens"] == ""  # unknown is empty, not 0
    for r in rows.values():
        for key in ("requests", "input_tokens", "output_tokens", "total_tokens", "unpriced_requests"):
            int(r[key])
        Decimal(r["cost"])
    assert "," not in plus["input_tokens"] and "$" not in result.stdout


def test_tsv(data):
    result = cli_run(["report", "--today", "--by", "provider", "-f", "tsv"], NOW)
    lines = result.stdout.splitlines()
    header = lines[0].split("\t")
    assert header[0] == "provider" and "cost" in header
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert {r["provider"]: r["requests"] for r in rows} == {"openrouter": "4", "qwen": "2", "qwen-singapore": "1"}


def test_quiet_numbers_only(data):
    result = cli_run(["--provider", "openrouter", "--today", "-q"], NOW)
    assert result.exit_code == 0
    assert result.stdout == "440\t0.25\t4\n"
    two = cli_run(["--today", "-q"], NOW).stdout.splitlines()
    assert two == ["1235582\t1500.000001\t3\tCNY", "440\t0.25\t4\tUSD"]
    assert cli_run(["--all", "-q", "--provider", "nobody"], NOW).stdout == "0\t?\t0\n"


def test_table_format(data):
    result = cli_run(["--today", "--by", "model", "-f", "table", "--tz", "UTC"], NOW)
    assert result.exit_code == 0
    out = result.stdout
    assert "Usage 2026-03-15 to 2026-03-15 (UTC)" in out
    assert "1,234,567" in out and "Total" in out
    # one number of decimals per currency in the column (enough for its smallest amount), and the
    # decimal points of every currency in one line
    assert "1,500.000000 CNY" in out and "0.000001 CNY" in out and "0.25     USD" in out
    points = {line.index(".", line.index(" USD") - 12 if " USD" in line else line.index(" CNY") - 12)
              for line in out.splitlines() if line.endswith(("USD  log", "CNY  log"))}
    assert len(points) == 1


def test_unpriced_shown_as_unknown_not_zero(data):
    out = cli_json(["--yesterday", "--json"], NOW)
    assert out["total"]["cost"] is None and out["total"]["unpriced_requests"] == 100


# -- exit codes -----------------------------------------------------------------------------------


def test_exit_4_bad_config_key(tokenmeter_env):
    (tokenmeter_env / "config.toml").write_text('[tokenmeter]\ntimezone = "UTC"\ndatabse = "x.db"\n')
    result = cli_run(["report", "--csv"])  # with --json the line is a JSON document (test_cli_habits.py)
    assert result.exit_code == 4
    assert result.stderr.strip().count("\n") == 0
    assert "tokenmeter.databse" in result.stderr and result.stderr.startswith("Error: ")
    (tokenmeter_env / "config.toml").write_text('[sources.fake]\npaths = "x"\nenabled = true\n')
    register(make_source("fake"))
    result = cli_run(["fetch", "fake"])
    assert result.exit_code == 4 and "sources.fake.paths: unknown key" in result.output


def test_exit_4_bad_tz_and_dates():
    result = cli_run(["--tz", "Mars/Olympus", "--json"])
    assert result.exit_code == 4 and "Mars/Olympus" in result.stderr
    result = cli_run(["--from", "2026-02-30"])  # a bad command-line date is a usage error
    assert result.exit_code == 64 and "--from: expected a date as YYYY-MM-DD" in result.stderr
    result = cli_run(["--period", "someday", "--json"])
    assert result.exit_code == 4 and "unknown period 'someday'" in result.stderr
    result = cli_run(["--by", "colour", "--json"])
    assert result.exit_code in (4, 64) and "colour" in result.stderr


def test_exit_5_missing_credentials():
    def needs_key(self, window, cursor):
        self.ctx.require_secret("FAKE_API_KEY")
        yield from ()

    register(make_source("fake", needs_key, kind="ledger"))
    result = cli_run(["fetch", "fake", "-f", "table"])
    assert result.exit_code == 5
    assert "FAKE_API_KEY" in result.stderr and "fake: FAILED" in result.stderr


def test_exit_5_rejected_credentials_and_3_unavailable():
    def down(self, window, cursor):
        raise ProviderUnavailable("fake: cannot reach api.example.test")
        yield

    register(make_source("fake", down, kind="ledger"))
    result = cli_run(["fetch", "fake", "-f", "table"])
    assert result.exit_code == 3 and "cannot reach" in result.stderr


def test_exit_6_one_source_fails_the_other_is_stored():
    def fails(self, window, cursor):
        yield rec("lost")
        raise NeedsCredentials("set BROKEN_KEY")

    register(make_source("good", [rec("g1", provider="good"), rec("g2", provider="good")]),
             make_source("bad", fails))
    result = cli_run(["fetch", "-f", "table"])
    assert result.exit_code == 6
    assert "good: 2 new, 0 updated" in result.stdout
    assert "bad: FAILED: set BROKEN_KEY" in result.stderr
    out = cli_json(["--all", "--by", "source", "--json", "--offline"])
    assert [(r["source"], r["requests"]) for r in out["rows"]] == [("good", 2)]
    # the JSON summary carries the same exit code
    result = cli_run(["fetch", "--json"])
    assert result.exit_code == 6
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 6
    assert {s["source"]: s["status"] for s in summary["sources"]} == {"bad": "error", "good": "ok"}


def test_exit_64_usage_errors():
    for args in (["--bogus"], ["report", "--nope"], ["nosuchcommand"], ["--days", "many"],
                 ["report", "-f", "xml"]):
        result = cli_run(args)
        assert result.exit_code == 64, (args, result.output)
        assert "Error" in result.stderr


def test_exit_0_otherwise(data):
    assert cli_run(["--all", "--json"], NOW).exit_code == 0
    assert cli_run(["fetch", "fake"], NOW).exit_code == 0


# -- other commands --------------------------------------------------------------------------------


def test_db_commands(tmp_path, tokenmeter_env, data):
    path = cli_run(["db", "path"]).stdout.strip()
    assert path == str(tokenmeter_env / "tokenmeter.db")
    assert cli_run(["db", "path", "--db", str(tmp_path / "x.db")]).stdout.strip() == str(tmp_path / "x.db")
    fresh = tmp_path / "fresh.db"
    migrate = cli_run(["db", "migrate", "--db", str(fresh)])
    assert migrate.exit_code == 0 and "m001_initial" in migrate.stdout
    assert "Applied 0 migration(s)" in cli_run(["db", "migrate", "--db", str(fresh)]).stdout

    exported = cli_run(["db", "export", "--csv"])
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 4
    assert {r["key"]: r["cost"] for r in rows} == {"q1": "1500", "q2": "0.000001", "o1": "0.25", "y1": ""}
    assert "cost_nanos" not in rows[0] and "content_hash" not in rows[0]
    as_json = cli_json(["db", "export", "--json"])
    assert {r["key"] for r in as_json} == {"q1", "q2", "o1", "y1"}

    # merge: another machine's database, twice
    other = tmp_path / "other.db"
    with Store.open(other) as s:
        session = s.session("fake", "log")
        session.add(rec("q1", account="laptop", start=TODAY, requests=7))
        session.finish(None)
    first = cli_run(["db", "merge", str(other)])
    assert first.exit_code == 0 and "1 usage rows" in first.stdout
    second = cli_run(["db", "merge", str(other)])
    assert second.exit_code == 0 and "0 usage rows and 0 snapshots" in second.stdout
    assert len(cli_json(["db", "export", "--json"])) == 5
    itself = cli_run(["db", "merge", path])
    assert itself.exit_code == 4 and "into itself" in itself.stderr
    missing = cli_run(["db", "merge", str(tmp_path / "nope.db")])
    assert missing.exit_code == 4 and "no such file" in missing.stderr


def test_quota_command():
    snap = QuotaSnapshot(provider="qwen", name="free-tier/qwen3.6-plus", unit="tokens", observed_at=TODAY,
                         used=Decimal(250_000), total=Decimal(1_000_000))
    register(make_source("fake", [snap], kind="ledger"))
    assert cli_json(["quota", "--json"]) == []
    assert "No quota snapshots" in cli_run(["quota", "-f", "table"]).stdout
    assert cli_run(["fetch", "fake"]).exit_code == 0
    (q,) = cli_json(["quota", "--json"])
    assert (q["provider"], q["name"], q["unit"]) == ("qwen", "free-tier/qwen3.6-plus", "tokens")
    assert (q["used"], q["total"], q["used_pct"]) == ("250000", "1000000", 25.0)
    assert q["source"] == "fake"


def test_sources_command():
    register(make_source("fake", [rec("a")]), make_source("absent", available="no logs at /nowhere"))
    before = {r["source"]: r for r in cli_json(["sources", "--json"])}
    assert before["fake"]["status"] == "ready" and before["fake"]["last_success"] is None
    assert before["absent"]["status"] == "not ready: no logs at /nowhere"
    assert before["fake"]["kind"] == "log" and before["fake"]["plugin"] == "fake-plugin"
    cli_run(["fetch"])
    after = {r["source"]: r for r in cli_json(["sources", "--json"])}
    assert after["fake"]["last_success"] and after["fake"]["last_run"]


def _walk(command, path=()):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), (*path, name))


def test_every_command_has_help():
    from tokenmeter.cli import cli

    seen = []
    for path, command in _walk(cli):
        assert (command.help or "").strip(), f"{' '.join(path) or 'tokenmeter'} has no help text"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"
        result = cli_run([*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.stdout
        seen.append(" ".join(path))
    assert {"report", "fetch", "plugins", "sources", "quota", "db", "db merge", "db export"} <= set(seen)


def test_exit_130_interrupted_and_nothing_partial():
    def interrupted(self, window, cursor):
        yield rec("a")
        yield Cursor({"n": 1})
        yield rec("b")
        raise KeyboardInterrupt

    register(make_source("slow", interrupted))
    result = cli_run(["fetch", "slow"])
    assert result.exit_code == 130 and "Interrupted." in result.stderr
    rows = cli_json(["db", "export", "--json"])
    assert [r["key"] for r in rows] == ["a"]  # the checkpoint survived, the rest rolled back


def test_report_refreshes_log_sources_but_not_ledgers(tokenmeter_env):
    calls: list[str] = []

    def counting(name):
        def items(self, window, cursor):
            calls.append(name)
            yield rec(f"{name}-1", provider=name, start=TODAY)

        return items

    register(make_source("my-log", counting("my-log"), kind="log"),
             make_source("my-bill", counting("my-bill"), kind="ledger"))
    out = cli_json(["--today", "--by", "source", "--json"], NOW)
    assert calls == ["my-log"]
    assert [r["source"] for r in out["rows"]] == ["my-log"]
    cli_json(["--today", "--json", "--offline"], NOW)
    assert calls == ["my-log"]  # --offline reads the database only
    out = cli_json(["--today", "--by", "source", "--json", "--refresh"], NOW)
    assert sorted(calls) == ["my-bill", "my-log", "my-log"]
    assert [r["source"] for r in out["rows"]] == ["my-bill", "my-log"]
    # refresh_after: a ledger whose last success is older than this is refreshed before a report
    (tokenmeter_env / "config.toml").write_text('[tokenmeter]\nrefresh_after = "1h"\n')
    calls.clear()
    cli_json(["--today", "--json"], NOW)
    assert calls == ["my-log"]  # fetched seconds ago: fresh
    (tokenmeter_env / "config.toml").write_text('[tokenmeter]\nrefresh_after = 0\n')
    calls.clear()
    cli_json(["--today", "--json"], {"TOKENMETER_NOW": "2026-03-16T12:00:00Z"})
    assert sorted(calls) == ["my-bill", "my-log"]


def test_report_refresh_failure_is_a_warning():
    def broken(self, window, cursor):
        raise ProviderUnavailable("my-log: disk unreadable")
        yield

    register(make_source("my-log", broken, kind="log"))
    result = cli_run(["--today", "--json"], NOW)
    assert result.exit_code == 0
    assert "warning: could not refresh my-log: disk unreadable" in result.stderr
    assert json.loads(result.stdout)["rows"] == []


def test_prices_bad_on_date_is_one_line_error():
    result = cli_run(["prices", "qwen-plus", "--on", "2026-02-30"])
    assert result.exit_code == 64
    assert result.stderr == "Error: --on: expected a date as YYYY-MM-DD or YYYYMMDD, got '2026-02-30'\n"


def test_root_dashboard_flag_honours_tz(tokenmeter_env):
    late = {"TOKENMETER_NOW": "2026-03-15T23:30:00Z"}  # already March 16th in Tokyo
    result = cli_run(["--dashboard", "--tz", "Asia/Tokyo"], late)
    assert result.exit_code == 0 and "dashboard-20260316.html" in result.stdout
    assert cli_run(["--dashboard", "--tz", "Mars/Olympus"], late).exit_code == 4


def test_debug_adds_the_traceback():
    result = cli_run(["--debug", "--tz", "Mars/Olympus", "--csv"])
    assert result.exit_code == 4
    assert "Traceback" in result.stderr and result.stderr.endswith("Error: --tz: unknown time zone "
                                                                   "'Mars/Olympus'; use an IANA name such "
                                                                   "as 'Europe/Berlin'\n")
    assert "Traceback" not in cli_run(["--tz", "Mars/Olympus", "--csv"]).stderr


def test_sources_status_never_shows_a_pasted_key(tokenmeter_env):
    from dataclasses import dataclass, field

    @dataclass
    class Settings:
        token_env: str = field(default="SEC_TOKEN", metadata={"help": "env var with the token"})

    src = make_source("sec", kind="ledger", settings=Settings)
    src.available = lambda self: None if self.ctx.secret(self.settings.token_env) else (
        f"set {self.settings.token_env}")
    register(src)
    (tokenmeter_env / "config.toml").write_text('[sources.sec]\ntoken_env = "sk-fake-0000-PASTED-KEY"\n')
    result = cli_run(["sources", "--json"])
    assert "sk-fake-0000-PASTED-KEY" not in result.output
    assert json.loads(result.stdout)[0]["status"] == "not ready: set ***"
    assert "sources.sec.token_env is not an environment variable name" in result.stderr


def test_report_options_before_a_command_are_not_silently_ignored(data):
    result = cli_run(["--provider", "openrouter", "report", "--today", "--json"], NOW)
    assert result.exit_code == 64
    assert "--provider goes after the command: `tokenmeter report --provider ...`" in result.stderr
    result = cli_run(["--month", "budget"], NOW)
    assert result.exit_code == 64 and "--month goes after the command" in result.stderr
    result = cli_run(["--dashboard", "--provider", "qwen"], NOW)
    assert result.exit_code == 64 and "--dashboard takes a period and --tz, not --provider" in result.stderr
    # the common options still go anywhere
    assert cli_run(["--debug", "report", "--today", "--json"], NOW).exit_code == 0


def test_quiet_unknown_tokens_are_not_zero():
    # a bill that reports money only: its tokens are unknown, not 0
    register(make_source("bill", [rec("b", start=TODAY, requests=None, input_tokens=None, output_tokens=None,
                                      cost="2.5")], kind="ledger"))
    assert cli_run(["fetch", "bill"], NOW).exit_code == 0
    assert cli_run(["--today", "-q"], NOW).stdout == "?\t2.5\t?\n"


@pytest.mark.parametrize("args", [["--today", "--month"], ["--days", "7", "--week"],
                                  ["--from", "2026-03-01", "--days", "3"], ["--period", "month", "--all"]])
def test_two_periods_are_a_usage_error(args):
    result = cli_run(["report", *args, "--json"])
    assert result.exit_code == 64
    assert "choose one period" in result.stderr


def test_period_flag_before_a_command_is_a_usage_error():
    result = cli_run(["--month", "report", "--json"])
    assert result.exit_code == 64 and "--month goes after the command" in result.stderr


def test_unwritable_output_is_a_one_line_error(tmp_path):
    target = tmp_path / "no-such-dir" / "x" / "d.html"
    (tmp_path / "no-such-dir").write_text("a file, not a folder")
    result = cli_run(["dashboard", "-o", str(target)])
    assert result.exit_code == 4
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
