"""The total deadline of one HTTP call, enforced below httpx (see ``tokenmeter.http``).

httpx's timeouts are per read, so a server that drips one byte a second would hold a call
forever. ``deadline_scope`` sets the monotonic end time for the calls made inside it; sockets
(``_DeadlineBackend``) and response bodies (``DeadlineBody``) give up when it passes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import httpcore
import httpx

__all__ = [
    "DeadlineBody",
    "DeadlineExceeded",
    "bound_socket_reads",
    "current_deadline",
    "deadline_scope",
    "time_left",
]

# the monotonic time by which the request in progress on this thread must be done (None: no deadline)
_DEADLINE: ContextVar[float | None] = ContextVar("tokenmeter_http_deadline", default=None)


class DeadlineExceeded(httpx.TimeoutException):
    """A request did not complete (answer and whole body) within its deadline.

    ``seconds`` is the deadline that ran out; ``attempt`` is True when it was one try's
    (``RetryPolicy.attempt_deadline``), which is retried, and False for the whole call's.
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None, seconds: float = 0.0,
                 attempt: bool = False) -> None:
        super().__init__(message, request=request)
        self.seconds = seconds
        self.attempt = attempt


def current_deadline() -> float | None:
    """The monotonic time the call in progress must end by, or None without a deadline."""
    return _DEADLINE.get()


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


def bound_socket_reads(transport: object) -> None:
    """Make a real transport's sockets honour the deadline (best effort: httpx keeps its pool private;
    without it the deadline still holds between body chunks)."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


class DeadlineBody(httpx.SyncByteStream):
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
