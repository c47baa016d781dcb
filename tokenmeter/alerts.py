"""Which alerts are due, their payloads, and delivery; channels (``[[alerts]]``) are in ``alert_channels.py``.

No database here.

The flow for ``tokenmeter budget --notify``::

    channels = parse_alerts(config.get("alerts", []))
    due = pending_alerts(statuses, sent)          # sent: set of (budget, level, period_key) from the DB
    for alert in due:
        results = [deliver(alert, ch) for ch in channels if ch.wants(alert)]
        if any(r.ok for r in results): store alert.key   # all failed -> retried on the next run

An alert is due when a status is at ``warning`` or ``critical`` and its key
``(status.name, status.level, status.period_key)`` is not stored yet: once per level per budget
period, so cron every 5 minutes does not spam, and a new period (or a quota reset) alerts again.
``deliver`` retries (bounded, backoff; webhooks through ``tokenmeter.http``) and never raises;
``dry_run`` shows what would be sent.

Config::

    [[alerts]]
    type = "webhook"
    url_env = "SLACK_WEBHOOK_URL"   # or url = "https://..." (webhook URLs are secrets: prefer url_env)
    format = "slack"                # json (default) | slack | discord
    headers = { X-Team = "ops" }    # optional; headers_env = { Authorization = "HOOK_AUTH" } reads env
    timeout = 10                    # seconds per attempt; the whole delivery ends within 3 x timeout
    levels = ["critical"]           # optional: only these levels (default both)
    budgets = ["test"]              # optional: only these budgets/quotas (default all)

    [[alerts]]
    type = "command"
    command = ["notify-send", "tokenmeter"]   # or a string, run by the shell; the alert JSON on stdin
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# the channels live in alert_channels.py; imported here so `tokenmeter.alerts` still offers them
from .alert_channels import (
    ALERT_LEVELS,
    Channel,
    CommandChannel,
    WebhookChannel,
    hide_urls,
    parse_alerts,
)
from .budgets import BudgetStatus, format_amount, plain_decimal
from .errors import ProviderUnavailable

if TYPE_CHECKING:
    from .http import Client

__all__ = [
    "Alert",
    "Channel",
    "CommandChannel",
    "DeliveryResult",
    "WebhookChannel",
    "deliver",
    "dry_run",
    "parse_alerts",
    "payload",
    "pending_alerts",
]

SLACK_COLORS = {"ok": "good", "warning": "warning", "critical": "danger"}
DISCORD_COLORS = {"ok": 0x2E7D32, "warning": 0xE0A800, "critical": 0xD32F2F}
ATTEMPTS = 3
BACKOFF = 1.0  # seconds before the 2nd attempt; doubles
MAX_RETRY_AFTER = 30.0  # a longer Retry-After is cut to this
# timeout, rate limit and server errors may pass; another 4xx will not get better by retrying
RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})


# -- which alerts are due ------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One budget reaching one level in one period. ``key`` is what the host stores once sent."""

    budget: str
    level: str
    period_key: str
    status: BudgetStatus

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.budget, self.level, self.period_key)

    @property
    def message(self) -> str:
        s = self.status
        what = "quota" if s.kind == "quota" else "budget"
        period = _period_text(s)
        return (
            f"tokenmeter: {what} '{s.name}' is {s.level.upper()}: {format_amount(s.used, s.unit)} of "
            f"{format_amount(s.limit, s.unit)} used ({s.percent}%), "
            f"{format_amount(s.remaining, s.unit)} left{period}"
        )


def _period_text(s: BudgetStatus) -> str:
    if s.resets_at:
        return f", resets {s.resets_at.isoformat(timespec='minutes')}"
    if s.period_from or s.period_to:
        start = s.period_from.isoformat() if s.period_from else ""
        end = s.period_to.isoformat() if s.period_to else ""
        return f", period {start}..{end}"
    return ""


def pending_alerts(
    statuses: Iterable[BudgetStatus], sent_state: set[tuple[str, str, str]] | frozenset[tuple[str, str, str]]
) -> list[Alert]:
    """Alerts due now: statuses at warning/critical whose (name, level, period_key) was not sent.

    Only the current level is alerted (a jump from ok to critical sends one critical alert).
    """
    due = []
    for s in statuses:
        if s.level not in ALERT_LEVELS:
            continue
        alert = Alert(budget=s.name, level=s.level, period_key=s.period_key, status=s)
        if alert.key not in sent_state:
            due.append(alert)
    return due


# -- payloads ------------------------------------------------------------------------------------


def _generic(alert: Alert) -> dict[str, Any]:
    s = alert.status
    body: dict[str, Any] = {
        "source": "tokenmeter",
        "kind": s.kind,
        "budget": s.name,
        "level": s.level,
        "used": plain_decimal(s.used),
        "limit": plain_decimal(s.limit),
        "remaining": plain_decimal(s.remaining),
        "percent": float(s.percent),
    }
    body["currency" if s.is_money else "unit"] = s.unit
    body["period"] = {
        "from": s.period_from.isoformat() if s.period_from else None,
        "to": s.period_to.isoformat() if s.period_to else None,
        "key": s.period_key,
    }
    body["resets_at"] = s.resets_at.isoformat() if s.resets_at else None
    body["message"] = alert.message
    return body


def _fields(alert: Alert) -> list[tuple[str, str]]:
    s = alert.status
    fields = [
        ("Used", format_amount(s.used, s.unit)),
        ("Remaining", format_amount(s.remaining, s.unit)),
        ("Limit", format_amount(s.limit, s.unit)),
        ("Percentage", f"{s.percent}%"),
    ]
    period = _period_text(s).removeprefix(", ")
    if period:
        fields.append(("Period", period))
    return fields


def payload(alert: Alert, fmt: str = "json") -> dict[str, Any]:
    """The JSON body for a webhook format (``json``, ``slack``, ``discord``); commands get ``json``."""
    s = alert.status
    title = f"{'Quota' if s.kind == 'quota' else 'Budget'} {s.name}: {s.level.upper()}"
    if fmt == "slack":
        return {
            "text": alert.message,
            "attachments": [{
                "color": SLACK_COLORS[s.level],
                "title": title,
                "fields": [{"title": k, "value": v, "short": True} for k, v in _fields(alert)],
            }],
        }
    if fmt == "discord":
        return {
            "content": alert.message,
            # budget and model names come from config and logs: never let them ping anyone
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": title,
                "color": DISCORD_COLORS[s.level],
                "fields": [{"name": k, "value": v, "inline": True} for k, v in _fields(alert)],
            }],
        }
    return _generic(alert)


def dry_run(alerts: Iterable[Alert], channels: Iterable[Channel]) -> list[dict[str, Any]]:
    """What ``deliver`` would send, one entry per (alert, channel), without sending anything."""
    channels = list(channels)
    out = []
    for alert in alerts:
        for ch in channels:
            if not ch.wants(alert):
                continue
            fmt = ch.format if isinstance(ch, WebhookChannel) else "json"
            out.append({"channel": ch.label, "type": ch.type, "target": ch.target(),
                        "budget": alert.budget, "level": alert.level, "payload": payload(alert, fmt)})
    return out


# -- delivery ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery: ``ok``, how many attempts, and a one-line ``error``."""

    channel: str
    alert_key: tuple[str, str, str]
    ok: bool
    attempts: int
    error: str | None = None


def _gave_up(error: str, attempts: int) -> str:
    return f"{error} (gave up after {attempts} attempts)"


def _post(alert: Alert, ch: WebhookChannel, client: Client | None, sleep: Callable[[float], None],
          env: Mapping[str, str], attempts: int, limit: float) -> DeliveryResult:
    """POST through the host's one retry path (``tokenmeter.http``): each try ends after ``limit``
    seconds, the whole delivery, waits included, after ``ch.timeout`` x ``attempts``."""
    from .http import RetryPolicy, make_client, send

    try:
        url, headers = ch.resolve(env)
    except LookupError as exc:
        return DeliveryResult(ch.label, alert.key, False, 0, str(exc))
    body = json.dumps(payload(alert, ch.format)).encode()
    headers = {"Content-Type": "application/json", **headers}
    policy = RetryPolicy(attempts=attempts, backoff=BACKOFF, max_backoff=BACKOFF * 2 ** attempts,
                         max_wait=MAX_RETRY_AFTER, cap_wait=True, jitter=False, statuses=RETRY_STATUSES,
                         attempt_deadline=limit)
    own = client is None
    if client is None:
        client = make_client(timeout=limit, sleep=sleep)
    try:
        request = client.build_request("POST", url, content=body, headers=headers, timeout=limit,
                                       extensions={"deadline": ch.timeout * attempts})
        try:
            # no redirects: a webhook's custom headers often hold its secret, and would follow
            response = send(client, request, retry=policy, sleep=sleep, follow_redirects=False)
        except ProviderUnavailable as exc:
            return DeliveryResult(ch.label, alert.key, False, request.extensions.get("attempts", 1), str(exc))
        tries = request.extensions.get("attempts", 1)
        if response.status_code < 300:
            return DeliveryResult(ch.label, alert.key, True, tries)
        text = response.text.strip()
        detail = f": {text.splitlines()[0][:120]}" if text else ""
        error = f"HTTP {response.status_code} from {request.url.host}{detail}"
        if response.status_code in RETRY_STATUSES:
            error = _gave_up(error, tries)
        return DeliveryResult(ch.label, alert.key, False, tries, error)
    finally:
        if own:
            client.close()


def _run_command(argv: str | list[str], body: str, *, shell: bool, env: Mapping[str, str],
                 timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``body`` on stdin; at ``timeout`` kill it *and its children*.

    ``subprocess.run`` kills only the direct child and then waits for its pipes to close, which a
    grandchild (the curl a shell command started) can hold open forever.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, shell=shell, env=dict(env), start_new_session=os.name == "posix")
    try:
        out, err = proc.communicate(body, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=2)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass  # something outside the group still holds a pipe: give up on the output
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        if os.name == "posix":
            import signal

            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def _run(alert: Alert, ch: CommandChannel, sleep: Callable[[float], None], env: Mapping[str, str],
         attempts: int, limit: float) -> DeliveryResult:
    s = alert.status
    body = json.dumps(payload(alert, "json"))
    run_env = {**env, "TOKENMETER_ALERT_BUDGET": s.name, "TOKENMETER_ALERT_LEVEL": s.level,
               "TOKENMETER_ALERT_PERCENT": str(s.percent), "TOKENMETER_ALERT_MESSAGE": alert.message}
    shell = isinstance(ch.command, str)
    argv: str | list[str] = ch.command if shell else list(ch.command)  # type: ignore[arg-type]
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            done = _run_command(argv, body, shell=shell, env=run_env, timeout=limit)
        except FileNotFoundError:
            return DeliveryResult(ch.label, alert.key, False, attempt, f"command not found: {ch.target()}")
        except subprocess.TimeoutExpired:
            error = f"command timed out after {limit:g}s"
        except OSError as exc:
            return DeliveryResult(ch.label, alert.key, False, attempt, f"cannot run command: {exc}")
        else:
            if done.returncode == 0:
                return DeliveryResult(ch.label, alert.key, True, attempt)
            last = (done.stderr or "").strip().splitlines()
            error = f"command exited with {done.returncode}" + (f": {hide_urls(last[-1])[:160]}" if last else "")
        if attempt < attempts:
            sleep(BACKOFF * 2 ** (attempt - 1))
    return DeliveryResult(ch.label, alert.key, False, attempts, _gave_up(error, attempts))


def deliver(
    alert: Alert,
    channel: Channel,
    client: Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    *,
    env: Mapping[str, str] | None = None,
    attempts: int = ATTEMPTS,
    deadline: float | None = None,
) -> DeliveryResult:
    """Send one alert through one channel, retrying failures; never raises.

    Webhooks go through the host's retry path (``tokenmeter.http``): network errors, timeouts,
    408/429 and 5xx are retried (``Retry-After`` honoured, cut to 30 s), and the whole delivery,
    waits included, ends within the channel's ``timeout`` x ``attempts``: a wait that would pass
    it is not taken. Commands retry a non-zero exit or a timeout. Each attempt ends, in total, after
    the channel's ``timeout`` or ``deadline`` seconds (default: the request deadline), whichever is
    shorter, even when the server drips its answer or the command leaves children behind. Error
    texts never contain the webhook URL.
    """
    env = os.environ if env is None else env
    try:
        if deadline is None:
            from .config import request_deadline

            deadline = request_deadline()
        limit = min(channel.timeout, deadline)
        if isinstance(channel, WebhookChannel):
            return _post(alert, channel, client, sleep, env, attempts, limit)
        return _run(alert, channel, sleep, env, attempts, limit)
    except Exception as exc:  # noqa: BLE001 - an alert must never break the budget check
        return DeliveryResult(channel.label, alert.key, False, 0, f"unexpected {type(exc).__name__}: {exc}")

