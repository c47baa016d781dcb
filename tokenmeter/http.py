"""The one place tokenmeter builds HTTP clients: timeouts, retries, proxy env, user agent.

Sources get a client as ``ctx.http``. Retries live in ``RetryTransport``, which wraps the real
transport: it retries connection errors, timeouts and 429/500/502/503/504 with exponential
backoff, honours ``Retry-After`` (seconds or an HTTP date) up to ``max_wait``, and gives up after
``attempts``. Only idempotent methods are retried unless the request carries
``extensions={"retry": True}`` (read-only POST APIs). A source that must re-sign each attempt
(a timestamped signature) sends with ``extensions={"retry": False}`` and retries itself.

``raise_for_status`` maps an answer to the exceptions in ``tokenmeter.errors``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from .errors import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)

__all__ = ["RetryPolicy", "RetryTransport", "make_client", "parse_retry_after", "raise_for_status"]

log = logging.getLogger("tokenmeter.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def user_agent() -> str:
    from . import __version__

    return f"tokenmeter/{__version__} (+https://pypi.org/project/tokenmeter/)"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries, first included
    backoff: float = 0.5  # first wait; doubles each retry
    max_backoff: float = 8.0
    max_wait: float = 60.0  # longest Retry-After we are willing to sleep

    def delay(self, retry: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None to give up."""
        if response is not None:
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return after if after <= self.max_wait else None
        base = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return base * (0.75 + random.random() / 4)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RetryTransport(httpx.BaseTransport):
    """Wraps a transport and retries transient failures (see module docstring)."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport or httpx.HTTPTransport()
        self.policy = policy or RetryPolicy()
        self.sleep = sleep

    def _retryable(self, request: httpx.Request) -> bool:
        flag = request.extensions.get("retry")
        if flag is not None:
            return bool(flag)
        return request.method in IDEMPOTENT

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        retryable = self._retryable(request)
        retry = 0
        while True:
            try:
                response = self.transport.handle_request(request)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError):
                retry += 1
                if not retryable or retry >= self.policy.attempts:
                    raise
                wait = self.policy.delay(retry, None) or 0.0
                log.debug("retry %d of %s %s after a transport error, in %.1fs", retry, request.method,
                          request.url.copy_with(query=None), wait)
                self.sleep(wait)
                continue
            if not retryable or response.status_code not in RETRY_STATUSES:
                return response
            retry += 1
            if retry >= self.policy.attempts:
                return response
            wait = self.policy.delay(retry, response)
            if wait is None:
                return response
            response.read()
            response.close()
            log.debug("retry %d of %s %s after HTTP %d, in %.1fs", retry, request.method,
                      request.url.copy_with(query=None), response.status_code, wait)
            self.sleep(wait)

    def close(self) -> None:
        self.transport.close()


def make_client(
    *,
    transport: httpx.BaseTransport | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 30.0,
    **kwargs: Any,
) -> httpx.Client:
    """An ``httpx.Client`` with retries, timeouts, the proxy env (``trust_env``) and our user agent."""
    return httpx.Client(
        transport=RetryTransport(transport, policy, sleep),
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        headers={"User-Agent": user_agent()},
        follow_redirects=True,
        trust_env=True,
        **kwargs,
    )


def _body_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else ""
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            for key in ("message", "error_msg", "msg", "detail"):
                if isinstance(err.get(key), str):
                    return err[key][:200]
        elif isinstance(err, str):
            return err[:200]
    return ""


def raise_for_status(response: httpx.Response, *, source: str) -> None:
    """Raise the matching ``tokenmeter.errors`` exception for a non-2xx answer."""
    status = response.status_code
    if status < 400:
        return
    detail = _body_message(response)
    suffix = f": {detail}" if detail else ""
    where = f"{source}: HTTP {status} from {response.request.url.host}"
    if status in (401, 403):
        raise ProviderAuthError(f"{where}{suffix}", source=source)
    if status == 429:
        after = parse_retry_after(response.headers.get("Retry-After"))
        raise ProviderRateLimited(f"{where} (rate limited){suffix}", retry_after=after, source=source)
    if status >= 500:
        raise ProviderUnavailable(f"{where}{suffix}", source=source)
    raise ProviderResponseError(f"{where}{suffix}", source=source)


def send(client: httpx.Client, request: httpx.Request, *, source: str) -> httpx.Response:
    """Send a request, turning network failures into ``ProviderUnavailable``."""
    try:
        return client.send(request)
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(f"{source}: timed out talking to {request.url.host}", source=source) from exc
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"{source}: cannot reach {request.url.host} ({type(exc).__name__})", source=source
        ) from exc
