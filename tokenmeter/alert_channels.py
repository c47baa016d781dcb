"""Alert channels: the ``[[alerts]]`` config tables, parsed and checked (see ``alerts.py``)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .alerts import Alert

__all__ = [
    "ALERT_LEVELS",
    "FORMATS",
    "Channel",
    "CommandChannel",
    "WebhookChannel",
    "hide_urls",
    "parse_alerts",
    "parse_channel",
]

FORMATS = ("json", "slack", "discord")
ALERT_LEVELS = ("warning", "critical")


_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)(?:[^/\s'\"@]*@)?([^/\s'\"?#]*)[^\s'\"]*")


def hide_urls(text: str) -> str:
    """Every URL in ``text`` cut to ``scheme://host/…``: webhook URLs are secrets (their path, query
    or user info holds the token), so nothing printed (``--dry-run``, errors) shows more."""
    return _URL.sub(lambda m: f"{m.group(1)}{m.group(2)}/…", text)


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
