"""Issue 13 item 3: every request has a total deadline, against a real loopback server that drips.

httpx's timeouts are per read, so a server that answers and then sends one byte at a time never
trips them. These tests use a threaded ``http.server`` on 127.0.0.1 and a deadline of about a
second, so each finishes in one to two seconds.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers_host import cli_run, make_source, rec, register

from tokenmeter import Cursor, ProviderUnavailable
from tokenmeter.alerts import CommandChannel, WebhookChannel, deliver, pending_alerts
from tokenmeter.budgets import budget_window, evaluate, parse_budgets
from tokenmeter.http import DeadlineExceeded, make_client

FAKE_QWENCLOUD = str(Path(__file__).resolve().parent / "fake_qwencloud" / "qwencloud")


class _Dripper(http.server.BaseHTTPRequestHandler):
    """``/headers``: drips the header block; anything else: 200, then the body a byte at a time."""

    protocol_version = "HTTP/1.1"
    stop = threading.Event()
    hits: list[str] = []

    def _drip(self) -> None:
        type(self).hits.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        try:
            if self.path.endswith("/headers"):
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                while not self.stop.is_set():
                    self.wfile.write(b"X-Slow: y\r\n")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b'{"data": [')
            while not self.stop.is_set():
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client gave up: that is the point
            return

    do_GET = do_POST = _drip  # noqa: N815 - http.server's naming

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dripping() -> Iterator[str]:
    """The base URL of a server that answers 200 and then drips its body forever."""
    _Dripper.stop.clear()
    _Dripper.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Dripper)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Dripper.stop.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path", ["/body", "/headers"])
def test_the_client_gives_up_at_the_deadline(dripping, path):
    began = time.monotonic()
    with make_client(deadline=1.0) as client, pytest.raises(DeadlineExceeded) as info:
        client.get(dripping + path)
    assert 0.9 < time.monotonic() - began < 3.0
    assert "within the 1 s request deadline" in str(info.value)


def test_the_deadline_comes_from_the_environment(dripping, monkeypatch):
    monkeypatch.setenv("TOKENMETER_REQUEST_DEADLINE", "0.5")
    began = time.monotonic()
    with make_client() as client, pytest.raises(DeadlineExceeded):
        client.get(dripping + "/body")
    assert time.monotonic() - began < 1.5


def test_a_bad_deadline_is_a_config_error_naming_the_key(tokenmeter_env, monkeypatch):
    (tokenmeter_env / "config.toml").write_text("[tokenmeter]\nrequest_deadline = -1\n")
    result = cli_run(["report", "--json"])
    assert result.exit_code == 4 and "tokenmeter.request_deadline" in result.stderr
    (tokenmeter_env / "config.toml").write_text("[tokenmeter]\nrequest_deadline = 2.5\n")
    assert cli_run(["report", "--json"]).exit_code == 0
    monkeypatch.setenv("TOKENMETER_REQUEST_DEADLINE", "soon")
    from tokenmeter.config import request_deadline

    with pytest.raises(Exception, match="TOKENMETER_REQUEST_DEADLINE"):
        request_deadline()


def test_fetch_openrouter_from_a_dripping_server_fails_that_source_only(tokenmeter_env, dripping):
    (tokenmeter_env / "config.toml").write_text(
        f'[tokenmeter]\nrequest_deadline = 1\n\n[sources.openrouter]\nbase_url = "{dripping}/api/v1"\n')
    register(make_source("local", [rec("a"), Cursor({"n": 1})]))
    env = {"TOKENMETER_LOAD_PLUGINS": "openrouter", "OPENROUTER_MANAGEMENT_KEY": "sk-or-v1-FAKE-deadline",
           "TOKENMETER_NOW": "2026-03-15T12:00:00Z"}
    began = time.monotonic()
    result = cli_run(["fetch", "openrouter", "local", "--json"], env)
    assert time.monotonic() - began < 5
    assert result.exit_code == 6, result.output
    errors = [line for line in result.stderr.splitlines() if "openrouter" in line]
    assert len(errors) == 1 and "FAILED" in errors[0] and "request deadline" in errors[0]
    assert "Traceback" not in result.stderr
    by_source = {r["source"]: r for r in json.loads(result.stdout)["sources"]}
    assert by_source["local"]["status"] == "ok" and by_source["local"]["new"] == 1
    assert by_source["openrouter"]["status"] == "error"
    report = json.loads(cli_run(["--all", "--by", "source", "--json", "--offline"], env).stdout)
    assert [r["source"] for r in report["rows"]] == ["local"]  # the other source's data is stored


def _alert():
    (budget,) = parse_budgets({"test": {"limit": 1_000_000, "unit": "tokens"}})
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    (alert,) = pending_alerts([evaluate(budget, 812_000, window=budget_window(budget, now))], set())
    return alert


def test_a_dripping_webhook_is_reported_and_delivery_ends(dripping):
    channel = WebhookChannel(index=0, timeout=10.0, levels=("warning", "critical"), budgets=None,
                             url=dripping + "/hook")
    began = time.monotonic()
    result = deliver(_alert(), channel, sleep=lambda s: None, deadline=0.5)
    assert time.monotonic() - began < 3  # 3 attempts of 0.5 s, not 3 x forever
    assert not result.ok and result.attempts == 3
    assert "timed out after 0.5s talking to 127.0.0.1" in (result.error or "")
    assert len(_Dripper.hits) == 3


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie nobody reaped is gone for our purpose


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_command_that_leaves_a_child_behind_ends_at_its_timeout(tmp_path):
    # the shell is killed at the timeout; its child (a curl to a hung webhook, here `sleep`) must go too
    pidfile = tmp_path / "child.pid"
    channel = CommandChannel(index=1, timeout=0.5, levels=("warning", "critical"), budgets=None,
                             command=f"sleep 20 & echo $! > {pidfile}; wait")
    began = time.monotonic()
    result = deliver(_alert(), channel, sleep=lambda s: None, attempts=1)
    assert time.monotonic() - began < 4
    assert not result.ok and "command timed out after 0.5s" in (result.error or "")
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_budget_notify_against_a_dripping_webhook_still_ends(tokenmeter_env, dripping, monkeypatch):
    import tokenmeter.alerts

    monkeypatch.setattr(tokenmeter.alerts, "BACKOFF", 0.01)
    register(make_source("usage", [rec("d1", input_tokens=300_000), Cursor({"n": 1})]))
    (tokenmeter_env / "config.toml").write_text(
        '[tokenmeter]\nrequest_deadline = 0.5\n\n[budgets.test]\nlimit = 200000\nunit = "tokens"\n\n'
        f'[[alerts]]\ntype = "webhook"\nurl = "{dripping}/hook"\n')
    env = {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}
    assert cli_run(["fetch", "usage"], env).exit_code == 0
    began = time.monotonic()
    result = cli_run(["budget", "--notify", "-f", "table"], env)
    assert time.monotonic() - began < 5
    assert result.exit_code == 2  # the budget's level, not a crash
    assert "alert NOT sent" in result.stderr and "timed out after 0.5s talking to 127.0.0.1" in result.stderr


def test_qwencloud_cli_call_ends_at_the_request_deadline(monkeypatch):
    from tokenmeter_plugins.qwencloud import QwenCloudSource

    from tokenmeter.testing import collect

    monkeypatch.setenv("FAKE_QWENCLOUD_SCENARIO", "hang")  # the fake CLI sleeps 5 s before answering
    monkeypatch.setenv("TOKENMETER_REQUEST_DEADLINE", "1")
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="did not answer within the 1 s timeout"):
        collect(QwenCloudSource, {"command": FAKE_QWENCLOUD})
    assert time.monotonic() - began < 4


def test_alert_python_command_is_unaffected(tmp_path):
    # a quick command still delivers: the deadline only ends what overruns
    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    channel = CommandChannel(index=0, timeout=10.0, levels=("warning", "critical"), budgets=None,
                             command=(sys.executable, "-c", script))
    result = deliver(_alert(), channel, sleep=lambda s: None, deadline=5)
    assert result.ok and json.loads(out.read_text())["budget"] == "test"
