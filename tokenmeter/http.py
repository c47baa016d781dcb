"""The one place tokenmeter builds HTTP clients: timeouts, retries, proxy env, user agent.

Sources get a client as ``ctx.http``. Retries live in ``RetryTransport``, which wraps the real
transport: it retries connection errors, timeouts and 429/500/502/503/504 with exponential
backoff, honours ``Retry-After`` (seconds or an HTTP date) up to ``max_wait``, and gives up after
``attempts``. Only idempotent methods are retried unless the request carries
``extensions={"retry": True}`` (read-only POST APIs). A source that must re-sign each attempt
(a timestamped signature) sends with ``extensions={"retry": False}`` and retries itself.

Every request also has a total deadline (``request_deadline``, default 120 s): httpx's timeouts
are per read, so a server that answers and then drips one byte a second would otherwise hold a
fetch forever. ``DeadlineClient`` bounds each socket operation by the time left and checks the
clock between body chunks; retries never sleep past it. Running out raises ``DeadlineExceeded``.

``raise_for_status`` maps an answer to the exceptions in ``tokenmeter.errors``.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from .config import DEFAULT_REQUEST_DEADLINE, REQUEST_DEADLINE_ENV, request_deadline
from .errors import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)

__all__ = [
    "DEFAULT_DEADLINE",
    "DeadlineClient",
    "DeadlineExceeded",
    "RetryPolicy",
    "RetryTransport",
    "deadline_scope",
    "make_client",
    "parse_retry_after",
    "raise_for_status",
]

log = logging.getLogger("tokenmeter.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

DEFAULT_DEADLINE = DEFAULT_REQUEST_DEADLINE
DEADLINE_ENV = REQUEST_DEADLINE_ENV

# the monotonic time by which the request in progress on this thread must be done (None: no deadline)
_DEADLINE: ContextVar[float | None] = ContextVar("tokenmeter_http_deadline", default=None)


class DeadlineExceeded(httpx.TimeoutException):
    """A request did not complete (answer and whole body) within its total deadline."""

    def __init__(self, message: str, *, request: httpx.Request | None = None, seconds: float = 0.0) -> None:
        super().__init__(message, request=request)
        self.seconds = seconds


def time_left() -> float | None:
    """Seconds left before the current deadline (may be negative), or None without one."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[float | None]:
    """Run the block under a total deadline of ``seconds``; nested scopes keep the earlier end."""
    outer = _DEADLINE.get()
    end = None if seconds is None else time.monotonic() + seconds
    if outer is not None and (end is None or outer < end):
        end = outer
    token = _DEADLINE.set(end)
    try:
        yield end
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to the time left before the deadline; ``expired`` once it has passed."""
    left = time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise expired("request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineNetworkStream(httpcore.NetworkStream):
    """A socket whose every read and write gives up at the deadline (slow drips included)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: object, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname,  # type: ignore[arg-type]
                                      _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineNetworkStream(inner)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: object = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address,
                                         socket_options)  # type: ignore[arg-type]
        return _DeadlineNetworkStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: object = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout),
                                                 socket_options)  # type: ignore[arg-type]
        return _DeadlineNetworkStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_socket_reads(transport: object) -> None:
    """Make a real transport's sockets honour the deadline (best effort: httpx keeps its pool private;
    without it the deadline still holds between body chunks)."""
    transport = getattr(transport, "transport", transport)  # through a RetryTransport
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


class _DeadlineBody(httpx.SyncByteStream):
    """A response body that stops at the deadline, however the transport delivers it."""

    def __init__(self, inner: httpx.SyncByteStream, end: float, error: Callable[[], Exception]) -> None:
        self._inner = inner
        self._end = end
        self._error = error

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            if time.monotonic() > self._end:
                raise self._error()
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineClient(httpx.Client):
    """An ``httpx.Client`` whose every ``send`` (redirects, retries and body included) ends by
    ``deadline`` seconds; a request may carry its own in ``extensions={"deadline": seconds}``."""

    def __init__(self, *args: Any, deadline: float | None = DEFAULT_DEADLINE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        for transport in [self._transport, *getattr(self, "_mounts", {}).values()]:
            _bound_socket_reads(transport)

    def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        seconds = request.extensions.get("deadline", self.deadline)
        if seconds is None:
            return super().send(request, stream=stream, **kwargs)

        def expired() -> DeadlineExceeded:
            return DeadlineExceeded(
                f"no complete answer from {request.url.host} within the {seconds:g} s request deadline",
                request=request, seconds=seconds)

        with deadline_scope(seconds) as end:
            assert end is not None
            try:
                response = super().send(request, stream=True, **kwargs)
                response.stream = _DeadlineBody(response.stream, end, expired)  # type: ignore[arg-type]
                if not stream:
                    try:
                        response.read()
                    finally:
                        response.close()
            except DeadlineExceeded:
                raise
            except httpx.TimeoutException as exc:
                if time.monotonic() >= end - 0.01:  # our deadline, not a per-read timeout
                    raise expired() from exc
                raise
        return response


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

    @staticmethod
    def _time_for(wait: float) -> bool:
        """Whether waiting ``wait`` seconds still leaves time for another try before the deadline."""
        left = time_left()
        return left is None or wait < left

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
                if not self._time_for(wait):
                    raise
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
            if wait is None or not self._time_for(wait):
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
    deadline: float | None = None,
    **kwargs: Any,
) -> DeadlineClient:
    """An ``httpx.Client`` with retries, timeouts, a total deadline per request (``deadline`` seconds;
    default ``TOKENMETER_REQUEST_DEADLINE``, else 120), the proxy env and our user agent."""
    if deadline is None:
        deadline = request_deadline()
    return DeadlineClient(
        deadline=deadline,
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
    except DeadlineExceeded as exc:
        raise ProviderUnavailable(
            f"{source}: {exc}; check the network, or raise [tokenmeter] request_deadline "
            f"(or {DEADLINE_ENV})", source=source) from exc
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(f"{source}: timed out talking to {request.url.host}", source=source) from exc
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"{source}: cannot reach {request.url.host} ({type(exc).__name__})", source=source
        ) from exc
