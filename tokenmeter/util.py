"""Small helpers every provider plugin needs (public: exported from ``tokenmeter``)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["check_base_url", "is_loopback", "parse_day", "parse_time"]


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(value: str, where: str) -> str:
    """Validate a configured API base URL: https, or plain http only for a loopback host (a local
    proxy or test server). Returns it without a trailing slash; ``ConfigError`` names ``where``."""
    url = str(value or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{where} = {value!r} is not an https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{where} must be a plain base URL (no user, password, query or fragment)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{where} must use https (http is allowed only for localhost, 127.0.0.1 or ::1)"
        )
    return url


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time from an API as an aware UTC datetime (naive means UTC); None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_day(value: Any) -> date | None:
    """A ``YYYY-MM-DD`` string (from an API or a cursor) as a ``date``; None if absent or bad."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
