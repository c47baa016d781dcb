"""Alert channels (``[[alerts]]``), which alerts are due, and delivery. No database here.

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
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .budgets import BudgetStatus, format_amount, plain_decimal
from .errors import ConfigError, ProviderUnavailable

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

FORMATS = ("json", "slack", "discord")
ALERT_LEVELS = ("warning", "critical")
SLACK_COLORS = {"ok": "good", "warning": "warning", "critical": "danger"}
DISCORD_COLORS = {"ok": 0x2E7D32, "warning": 0xE0A800, "critical": 0xD32F2F}
ATTEMPTS = 3
BACKOFF = 1.0  # seconds before the 2nd attempt; doubles
MAX_RETRY_AFTER = 30.0  # a longer Retry-After is cut to this
# timeout, rate limit and server errors may pass; another 4xx will not get better by retrying
RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})


_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)(?:[^/\s'\"@]*@)?([^/\s'\"?#]*)[^\s'\"]*")


def hide_urls(text: str) -> str:
    """Every URL in ``text`` cut to ``scheme://host/…``: webhook URLs are secrets (their path, query
    or user info holds the token), so nothing printed (``--dry-run``, errors) shows more."""
    return _URL.sub(lambda m: f"{m.group(1)}{m.group(2)}/…", text)


# -- channels ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ChannelBase:
    index: int
    timeout: float
    levels: tuple[str, ...]
    budgets: tuple[str, ...] | None

    @property
    def label(self) -> str:
        return f"alerts[{self.index}] ({self.type})"  # type: ignore[attr-defined]

    def wants(self, alert: Alert) -> bool:
        """True when this channel takes alerts of this level and budget."""
        return alert.level in self.levels and (self.budgets is None or alert.budget in self.budgets)


@dataclass(frozen=True)
class WebhookChannel(_ChannelBase):
    """POST the alert as JSON (generic, Slack or Discord shape) to a URL."""

    url: str | None = None
    url_env: str | None = None
    format: str = "json"
    headers: Mapping[str, str] = field(default_factory=dict)
    headers_env: Mapping[str, str] = field(default_factory=dict)
    type: str = "webhook"

    def resolve(self, env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The URL and headers with env references filled in; ``LookupError`` names a missing var."""
        url = self.url
        if url is None:
            url = env.get(self.url_env or "")
            if not url:
                raise LookupError(f"environment variable {self.url_env} (url_env) is not set")
        headers = dict(self.headers)
        for name, var in self.headers_env.items():
            if not env.get(var):
                raise LookupError(f"environment variable {var} (headers_env.{name}) is not set")
            headers[name] = env[var]
        return url, headers

    def target(self) -> str:
        """Where it goes, safe to print: the host only (webhook paths often hold a secret)."""
        if self.url is None:
            return f"${self.url_env}"
        return hide_urls(self.url)


@dataclass(frozen=True)
class CommandChannel(_ChannelBase):
    """Run a command with the alert as JSON on stdin (a string runs through the shell)."""

    command: tuple[str, ...] | str = ()
    type: str = "command"

    def target(self) -> str:
        """The command, safe to print: URLs in it (a curl to a webhook) show their host only."""
        return hide_urls(self.command if isinstance(self.command, str) else shlex.join(self.command))


Channel = WebhookChannel | CommandChannel

_COMMON_KEYS = ("type", "timeout", "levels", "budgets")
_WEBHOOK_KEYS = (*_COMMON_KEYS, "url", "url_env", "format", "headers", "headers_env")
_COMMAND_KEYS = (*_COMMON_KEYS, "command")


def _str_table(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f"{where}: expected a table of strings, e.g. {{ X-Token = \"...\" }}")
    return dict(value)


def _str_list(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def parse_channel(index: int, table: Mapping[str, Any]) -> Channel:
    """Parse one ``[[alerts]]`` table; ``ConfigError`` names the offending key (``alerts[0].url``)."""
    at = f"alerts[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{at}: expected a table ([[alerts]]), got {type(table).__name__}")
    kind = table.get("type")
    if kind not in ("webhook", "command"):
        raise ConfigError(f"{at}.type: must be \"webhook\" or \"command\", got {kind!r}")
    known = _WEBHOOK_KEYS if kind == "webhook" else _COMMAND_KEYS
    for key in table:
        if key not in known:
            raise ConfigError(f"{at}.{key}: unknown key for a {kind} alert (known: {', '.join(known)})")

    timeout = table.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise ConfigError(f"{at}.timeout: expected seconds between 0 and 300, got {timeout!r}")
    levels = _str_list(f"{at}.levels", table["levels"]) if "levels" in table else ALERT_LEVELS
    for level in levels:
        if level not in ALERT_LEVELS:
            raise ConfigError(f"{at}.levels: each must be \"warning\" or \"critical\", got {level!r}")
    budgets = _str_list(f"{at}.budgets", table["budgets"]) if "budgets" in table else None
    common = {"index": index, "timeout": float(timeout), "levels": levels, "budgets": budgets}

    if kind == "command":
        command = table.get("command")
        if isinstance(command, str) and command.strip():
            return CommandChannel(**common, command=command)
        if isinstance(command, list) and command and all(isinstance(c, str) and c for c in command):
            return CommandChannel(**common, command=tuple(command))
        raise ConfigError(f"{at}.command: expected a non-empty list of strings or a string, got {command!r}")

    url, url_env = table.get("url"), table.get("url_env")
    if (url is None) == (url_env is None):
        raise ConfigError(f"{at}.url: set exactly one of url or url_env (an env var holding the URL)")
    if url is not None:
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"{at}.url: expected an http:// or https:// URL")
    elif not isinstance(url_env, str) or not url_env:
        raise ConfigError(f"{at}.url_env: expected the name of an environment variable")
    fmt = table.get("format", "json")
    if fmt not in FORMATS:
        raise ConfigError(f"{at}.format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    headers = _str_table(f"{at}.headers", table["headers"]) if "headers" in table else {}
    headers_env = _str_table(f"{at}.headers_env", table["headers_env"]) if "headers_env" in table else {}
    return WebhookChannel(**common, url=url, url_env=url_env, format=fmt, headers=headers,
                          headers_env=headers_env)


def parse_alerts(tables: Iterable[Mapping[str, Any]] | None) -> list[Channel]:
    """Parse the ``[[alerts]]`` array of tables."""
    if not tables:
        return []
    if isinstance(tables, Mapping) or isinstance(tables, str):
        raise ConfigError("alerts: expected an array of tables ([[alerts]]), not a single table")
    return [parse_channel(i, t) for i, t in enumerate(tables)]


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

