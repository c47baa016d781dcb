"""`tokenmeter statusline`: Qwen Code's payload in, one harmless line out, figures cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_host import rec

import tokenmeter
from tokenmeter.cli import cli
from tokenmeter.cli.statusline import money, read_payload

# the object Qwen Code 0.24.4 writes to the command's stdin (useStatusLine / buildMetricsPayload in
# its bundled chunks/startInteractiveUI-*.js), with the keys in the order it writes them
PAYLOAD = Path(__file__).parent / "fixtures" / "qwen_code_statusline.json"
SESSION = "2fc7c316-e6e5-4b41-a37c-1ef4319a37bb"
NOW = "2026-03-15T12:00:00Z"


def _fill(extra: int = 0) -> None:
    with tokenmeter.open() as tm:
        session = tm.store.session("qwen-code", "log")
        session.add(rec("a", start=datetime(2026, 3, 15, 9, tzinfo=UTC), session=SESSION, cost="0.25"))
        session.add(rec("b", start=datetime(2026, 3, 15, 10, tzinfo=UTC), session="other", cost="1.5"))
        session.add(rec("c", start=datetime(2026, 3, 2, 10, tzinfo=UTC), session=SESSION, cost="2"))
        for i in range(extra):
            session.add(rec(f"x{i}", start=datetime(2026, 3, 15, 11, tzinfo=UTC), session=SESSION, cost="1"))
        session.finish(None)


def run(stdin: str | bytes, *args: str) -> tuple[int, str]:
    env = {"TOKENMETER_NOW": NOW, "TOKENMETER_LOAD_PLUGINS": "", "TZ": "UTC"}
    result = CliRunner().invoke(cli, ["statusline", *args], input=stdin, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout


def test_payload_fixture_has_the_clients_shape():
    payload = json.loads(PAYLOAD.read_text())
    assert list(payload) == ["session_id", "version", "model", "context_window", "workspace", "git", "metrics"]
    tokens = payload["metrics"]["models"]["qwen3-coder-plus"]["tokens"]
    assert set(tokens) == {"prompt", "completion", "total", "cached", "thoughts"}


def test_real_payload_one_line(tokenmeter_env):
    (tokenmeter_env / "config.toml").write_text(
        '[tokenmeter]\ntimezone = "UTC"\n[budgets.monthly]\nlimit = 10\ncurrency = "USD"\n'
        '[budgets.tokens]\nlimit = 1_000_000\nunit = "tokens"\n')
    _fill()
    code, out = run(PAYLOAD.read_text())
    assert code == 0 and out.count("\n") == 1
    assert out == "qwen3-coder-plus · session $2.25 · today $1.75 · month $3.75 · monthly 37% ok\n"


def test_figures_are_cached_for_ttl(tokenmeter_env):
    (tokenmeter_env / "config.toml").write_text('[tokenmeter]\ntimezone = "UTC"\n')
    _fill()
    first = run(PAYLOAD.read_text())[1]
    assert "session $2.25" in first
    cache = Path(str(tokenmeter_env / "tokenmeter.db") + ".statusline.json")
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    _fill(extra=2)
    assert run(PAYLOAD.read_text())[1] == first  # within --ttl: the cache, not the database
    assert "session $4.25" in run(PAYLOAD.read_text(), "--ttl", "0")[1]


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]", '{"session_id": 5, "model": "x"}',
                                   b"\xff\xfe\x00garbage", '{"model": {"display_name": "\\u001b]0;pwned\\u0007"}}',
                                   '{"a":' * 100000])
def test_garbage_payload_still_one_harmless_line(tokenmeter_env, stdin):
    code, out = run(stdin)
    assert code == 0 and out.count("\n") == 1 and "\x1b" not in out and "\x07" not in out
    assert "today" in out


BAD_SESSION = {"at": 1e99, "since": "2026-13-40", "cost": {"USD": "NaN"}}


@pytest.mark.parametrize("bad", [json.dumps({"v": 1, "figures": {"at": "x", "today": 3},
                                             "sessions": {SESSION: BAD_SESSION}}),
                                 '{"v": 1, "figures": {"at": 1e99, "today": {"USD": "Infinity"}, "month": {}}}',
                                 '{"v": 1, "figures": {"at": 1e99, "today": {"USD": "9"}, "month": {}}}',
                                 "[]", "{", ""])
def test_a_bad_cache_is_recomputed_not_shown(tokenmeter_env, bad):
    _fill()
    Path(os.environ["TOKENMETER_DB"] + ".statusline.json").write_text(bad)
    code, out = run(PAYLOAD.read_text())
    assert code == 0 and "session $2.25 · today $1.75" in out


def test_broken_database_still_one_line(tokenmeter_env):
    Path(os.environ["TOKENMETER_DB"]).write_text("not a database")
    code, out = run(PAYLOAD.read_text(), "--ttl", "0")
    assert code == 0 and out.startswith("qwen3-coder-plus · tokenmeter: unavailable (") and out.count("\n") == 1


def test_money_short_forms():
    assert money({"USD": "1234.5"}) == "$1,234.50"
    assert money({"USD": "0.01234"}) == "$0.012"
    assert money({"CNY": "3", "USD": "0.5"}) == "¥3.00 + $0.50"
    assert money({"XYZ": "2", "?": None}) == "? + 2.00 XYZ"
    assert money({}) == "0"


def test_read_payload_from_a_pipe_and_a_terminal_like_stream():
    r, w = os.pipe()
    os.write(w, PAYLOAD.read_bytes())
    os.close(w)
    with os.fdopen(r, "rb") as stream:
        assert read_payload(stream)["session_id"] == SESSION

    class Tty:
        def isatty(self) -> bool:
            return True

    assert read_payload(Tty()) == {}


def test_real_process_with_the_payload_on_stdin(tokenmeter_env):
    _fill()
    env = {**os.environ, "TOKENMETER_NOW": NOW, "TZ": "UTC"}
    proc = subprocess.run([sys.executable, "-m", "tokenmeter", "statusline"], input=PAYLOAD.read_bytes(),
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.decode().count("\n") == 1
    assert "session $2.25" in proc.stdout.decode()
