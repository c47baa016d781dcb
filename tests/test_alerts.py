from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tokenmeter import ConfigError
from tokenmeter.alerts import (
    CommandChannel,
    WebhookChannel,
    deliver,
    dry_run,
    parse_alerts,
    payload,
    pending_alerts,
)
from tokenmeter.budgets import budget_window, evaluate, parse_budgets

MARCH = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
(TEST_BUDGET,) = parse_budgets({"test": {"limit": 1_000_000, "unit": "tokens"}})


def status(used: int, now: datetime = MARCH):
    return evaluate(TEST_BUDGET, used, window=budget_window(TEST_BUDGET, now))


def critical_alert():
    (alert,) = pending_alerts([status(812_000)], set())
    return alert


# -- config ----------------------------------------------------------------------------------------


def test_parse_channels():
    hook, cmd, shell = parse_alerts([
        {"type": "webhook", "url_env": "SLACK_URL", "format": "slack", "headers": {"X-Team": "ops"},
         "timeout": 5, "levels": ["critical"]},
        {"type": "command", "command": ["notify-send", "tokenmeter"], "budgets": ["test"]},
        {"type": "command", "command": "mail -s budget ops@example.com"},
    ])
    assert isinstance(hook, WebhookChannel) and hook.format == "slack" and hook.timeout == 5.0
    assert hook.levels == ("critical",) and hook.headers == {"X-Team": "ops"}
    assert hook.target() == "$SLACK_URL"
    assert isinstance(cmd, CommandChannel) and cmd.command == ("notify-send", "tokenmeter")
    assert cmd.levels == ("warning", "critical") and cmd.budgets == ("test",)
    assert shell.command == "mail -s budget ops@example.com" and shell.label == "alerts[2] (command)"
    assert parse_alerts(None) == []
    hook = parse_alerts([{"type": "webhook", "url": "https://hooks.example.com/services/T0/B0/fake-secret"}])[0]
    assert hook.target() == "https://hooks.example.com/…"  # the secret path never shows


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"type": "email"}, 'alerts[0].type: must be "webhook" or "command"'),
        ({"type": "webhook"}, "alerts[0].url: set exactly one of url or url_env"),
        ({"type": "webhook", "url": "ftp://x"}, "alerts[0].url: expected an http:// or https:// URL"),
        ({"type": "webhook", "url": "https://x", "format": "teams"}, "alerts[0].format: must be one of json"),
        ({"type": "webhook", "url": "https://x", "headers": {"A": 1}}, "alerts[0].headers: expected a table"),
        ({"type": "webhook", "url": "https://x", "timeout": 0}, "alerts[0].timeout: expected seconds"),
        ({"type": "webhook", "url": "https://x", "levels": ["ok"]}, "alerts[0].levels: each must be"),
        ({"type": "webhook", "url": "https://x", "command": "x"}, "alerts[0].command: unknown key"),
        ({"type": "command"}, "alerts[0].command: expected a non-empty list"),
        ({"type": "command", "command": []}, "alerts[0].command: expected a non-empty list"),
    ],
)
def test_config_errors_name_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        parse_alerts([table])
    assert message in str(info.value)


def test_alerts_must_be_an_array():
    with pytest.raises(ConfigError, match=r"alerts: expected an array of tables"):
        parse_alerts({"type": "webhook"})


# -- de-duplication --------------------------------------------------------------------------------


def test_once_per_level_per_period_across_runs():
    sent: set[tuple[str, str, str]] = set()

    def run(used, now=MARCH):
        due = pending_alerts([status(used, now)], sent)
        sent.update(a.key for a in due)  # what the host stores after a successful delivery
        return [(a.budget, a.level, a.period_key) for a in due]

    assert run(100_000) == []
    assert run(500_000) == [("test", "warning", "2026-03-01..2026-03-31")]
    assert run(600_000) == []  # cron again 5 minutes later: no spam
    assert run(800_000) == [("test", "critical", "2026-03-01..2026-03-31")]
    assert run(900_000) == []
    assert run(1_000_000) == []
    # a new month is a new period: alerts again
    assert run(850_000, APRIL) == [("test", "critical", "2026-04-01..2026-04-30")]
    assert run(900_000, APRIL) == []


def test_jump_to_critical_sends_one_alert():
    due = pending_alerts([status(950_000)], set())
    assert [a.level for a in due] == ["critical"]
    assert due[0].message == (
        "tokenmeter: budget 'test' is CRITICAL: 950,000 tokens of 1,000,000 tokens used (95.00%), "
        "50,000 tokens left, period 2026-03-01..2026-03-31"
    )


def test_unsent_alerts_stay_pending():
    # delivery failed, so the host stored nothing: the next run tries again
    assert len(pending_alerts([status(812_000)], set())) == 1
    assert len(pending_alerts([status(812_000)], set())) == 1


# -- payloads --------------------------------------------------------------------------------------


def test_payload_shapes():
    alert = critical_alert()
    generic = payload(alert, "json")
    assert generic["budget"] == "test" and generic["level"] == "critical"
    assert (generic["used"], generic["limit"], generic["percent"], generic["unit"]) == ("812000", "1000000",
                                                                                         81.2, "tokens")
    assert generic["period"] == {"from": "2026-03-01", "to": "2026-03-31", "key": "2026-03-01..2026-03-31"}
    assert generic["message"].startswith("tokenmeter: budget 'test' is CRITICAL")

    slack = payload(alert, "slack")
    assert slack["text"] == alert.message
    (att,) = slack["attachments"]
    assert att["color"] == "danger"
    assert {"title": "Used", "value": "812,000 tokens", "short": True} in att["fields"]
    assert {"title": "Percentage", "value": "81.20%", "short": True} in att["fields"]

    discord = payload(alert, "discord")
    assert discord["content"] == alert.message and discord["allowed_mentions"] == {"parse": []}
    (embed,) = discord["embeds"]
    assert embed["color"] == 0xD32F2F and embed["title"] == "Budget test: CRITICAL"
    assert {"name": "Remaining", "value": "188,000 tokens", "inline": True} in embed["fields"]

    (money,) = parse_budgets({"spend": {"limit": 10, "currency": "USD"}})
    (warn,) = pending_alerts([evaluate(money, Decimal("5.5"))], set())
    assert payload(warn)["currency"] == "USD" and "unit" not in payload(warn)
    assert payload(warn, "slack")["attachments"][0]["color"] == "warning"


def test_dry_run_respects_channel_filters():
    channels = parse_alerts([
        {"type": "webhook", "url": "https://hooks.example.com/secret", "format": "discord",
         "levels": ["warning"]},
        {"type": "command", "command": ["cat"], "budgets": ["test"]},
    ])
    out = dry_run([critical_alert()], channels)
    assert [(o["channel"], o["target"], o["level"]) for o in out] == [
        ("alerts[1] (command)", "cat", "critical")
    ]
    assert out[0]["payload"]["budget"] == "test"


# -- delivery against a real loopback server -------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    statuses: list[int] = []
    received: list[tuple[str, dict, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), json.loads(body)))
        code = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if code < 300 else b"internal error")

    def log_message(self, *args):
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"statuses": [], "received": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("fmt", ["json", "slack", "discord"])
def test_webhook_delivery(server, fmt):
    base, handler = server
    (ch,) = parse_alerts([{"type": "webhook", "url": f"{base}/hook/{fmt}", "format": fmt,
                           "headers": {"X-Team": "ops"}, "headers_env": {"Authorization": "HOOK_AUTH"}}])
    result = deliver(critical_alert(), ch, sleep=lambda s: None, env={"HOOK_AUTH": "Bearer fake-token"})
    assert (result.ok, result.attempts, result.error) == (True, 1, None)
    ((path, headers, body),) = handler.received
    assert path == f"/hook/{fmt}" and headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "ops" and headers["Authorization"] == "Bearer fake-token"
    assert body == json.loads(json.dumps(payload(critical_alert(), fmt)))


def test_webhook_retries_then_succeeds(server):
    base, handler = server
    handler.statuses = [503, 200]
    sleeps: list[float] = []
    (ch,) = parse_alerts([{"type": "webhook", "url": base}])
    result = deliver(critical_alert(), ch, sleep=sleeps.append)
    assert (result.ok, result.attempts) == (True, 2) and sleeps == [1.0]
    assert len(handler.received) == 2


def test_failing_webhook_gives_up_and_reports(server):
    base, handler = server
    handler.statuses = [500, 500, 500, 500]
    sleeps: list[float] = []
    (ch,) = parse_alerts([{"type": "webhook", "url": f"{base}/secret-path"}])
    result = deliver(critical_alert(), ch, sleep=sleeps.append)  # returns, never raises
    assert not result.ok and result.attempts == 3 and sleeps == [1.0, 2.0]
    assert result.error == "HTTP 500 from 127.0.0.1: internal error (gave up after 3 attempts)"
    assert "secret-path" not in result.error
    assert len(handler.received) == 3
    assert result.alert_key == ("test", "critical", "2026-03-01..2026-03-31")


def test_client_error_is_not_retried(server):
    base, handler = server
    handler.statuses = [404]
    (ch,) = parse_alerts([{"type": "webhook", "url": base}])
    result = deliver(critical_alert(), ch, sleep=lambda s: None)
    assert (result.ok, result.attempts, result.error) == (False, 1, "HTTP 404 from 127.0.0.1: internal error")


def test_unreachable_and_unset_env_are_reported():
    (ch,) = parse_alerts([{"type": "webhook", "url": "http://127.0.0.1:9/", "timeout": 2}])
    result = deliver(critical_alert(), ch, sleep=lambda s: None)
    assert not result.ok and result.error.startswith("cannot reach 127.0.0.1")
    (ch,) = parse_alerts([{"type": "webhook", "url_env": "TM_TEST_HOOK"}])
    result = deliver(critical_alert(), ch, env={})
    assert result.error == "environment variable TM_TEST_HOOK (url_env) is not set"


# -- command channel -------------------------------------------------------------------------------


def test_command_receives_alert_on_stdin(tmp_path):
    out = tmp_path / "alert.json"
    script = "import os, sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.stdin.read() + '\\n' + " \
             "os.environ['TOKENMETER_ALERT_LEVEL'])"
    (ch,) = parse_alerts([{"type": "command", "command": [sys.executable, "-c", script, str(out)]}])
    result = deliver(critical_alert(), ch, sleep=lambda s: None)
    assert (result.ok, result.attempts) == (True, 1)
    body, level = out.read_text().rsplit("\n", 1)
    assert json.loads(body) == payload(critical_alert(), "json") and level == "critical"


def test_shell_command_string(tmp_path):
    out = tmp_path / "alert.json"
    (ch,) = parse_alerts([{"type": "command", "command": f"cat > '{out}'"}])
    assert deliver(critical_alert(), ch).ok
    assert json.loads(out.read_text())["budget"] == "test"


def test_failing_command_is_retried_and_reported(tmp_path):
    script = "import sys; sys.stdin.read(); print('mail: no relay', file=sys.stderr); sys.exit(3)"
    sleeps: list[float] = []
    (ch,) = parse_alerts([{"type": "command", "command": [sys.executable, "-c", script]}])
    result = deliver(critical_alert(), ch, sleep=sleeps.append)
    assert not result.ok and result.attempts == 3 and sleeps == [1.0, 2.0]
    assert result.error == "command exited with 3: mail: no relay (gave up after 3 attempts)"
    (missing,) = parse_alerts([{"type": "command", "command": [str(tmp_path / "no-such-notifier")]}])
    result = deliver(critical_alert(), missing)
    assert not result.ok and result.error.startswith("command not found")


def test_command_targets_and_errors_hide_urls(tmp_path):
    # webhook URLs are secrets wherever they appear: a curl command to a Slack hook shows its host only,
    # in --dry-run output and in delivery errors, like a webhook channel's url
    secret = "https://hooks.slack.com/services/T0/B0/fake-secret"
    shell, argv, missing = parse_alerts([
        {"type": "command", "command": f"curl -fsS -d @- '{secret}'"},
        {"type": "command", "command": ["curl", "-d", "@-", "https://user:pw@hooks.example.com/x?token=t"]},
        {"type": "command", "command": [str(tmp_path / "no-such-notifier"), secret]},
    ])
    assert shell.target() == "curl -fsS -d @- 'https://hooks.slack.com/…'"
    assert argv.target() == "curl -d @- 'https://hooks.example.com/…'"
    out = dry_run([critical_alert()], [shell, argv])
    assert "fake-secret" not in json.dumps(out) and "pw@" not in json.dumps(out)
    result = deliver(critical_alert(), missing)
    assert not result.ok and result.error.startswith("command not found") and "fake-secret" not in result.error
    script = f"import sys; sys.stdin.read(); print('curl: (22) 404 for {secret}', file=sys.stderr); sys.exit(22)"
    (loud,) = parse_alerts([{"type": "command", "command": [sys.executable, "-c", script]}])
    result = deliver(critical_alert(), loud, sleep=lambda s: None, attempts=1)
    assert result.error == ("command exited with 22: curl: (22) 404 for https://hooks.slack.com/… "
                            "(gave up after 1 attempts)")


def test_generic_payload_decimals_are_plain():
    (money,) = parse_budgets({"spend": {"limit": 1, "currency": "USD"}})
    (alert,) = pending_alerts([evaluate(money, Decimal("0.900000000"))], set())
    body = payload(alert)
    assert (body["used"], body["limit"], body["remaining"]) == ("0.9", "1", "0.1")
