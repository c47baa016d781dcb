"""The one HTTP path: client construction, retries, the total deadline and the error mapping.

Every request tokenmeter makes goes through ``Client.send``: a source's ``ctx.http``, a
source's signed calls, an alert webhook. ``make_client`` builds one with our timeouts, proxy env
and user agent. Retries sit *above* the transport, the way httpx layers auth: each attempt runs
the whole ``httpx.Client.send`` again, auth flow included, so a request signed with a timestamp
(a ``RequestSigner``, e.g. an access-key HMAC) carries a fresh signature on every try.

Retry policy (``RetryPolicy``; its defaults are what ``ctx.http`` does)
    *What is retried*: connection errors, timeouts and protocol errors, and the statuses in
    ``statuses`` (429, 500, 502, 503, 504), up to ``attempts`` tries in all.
    *Which requests*: GET, HEAD, OPTIONS, PUT and DELETE. Another method is retried only when the
    request says so (``extensions={"retry": True}`` for a read-only POST API) or a policy is passed
    to ``send``; ``extensions={"retry": False}`` turns retries off for one request.
    *How long to wait*: ``Retry-After`` (seconds or an HTTP date) when the answer has one, up to
    ``max_wait`` (a longer one ends the retries, or with ``cap_wait`` is cut to ``max_wait``);
    else ``rate_limit_wait`` after a 429 if set; else ``backoff`` doubling per retry up to
    ``max_backoff``, with 75-100 % jitter unless ``jitter`` is off.

Deadlines
    httpx's timeouts are per read, so a server that answers and then drips one byte a second would
    hold a call forever. Every call has a total deadline covering all its attempts and the waits
    between them: ``request_deadline`` (``[tokenmeter] request_deadline`` or
    ``TOKENMETER_REQUEST_DEADLINE``, default 120 s), or the request's own
    ``extensions={"deadline": seconds}``. No retry waits past it. A policy's ``attempt_deadline``
    also ends each single try (an alert channel's ``timeout``); a try that runs out of it is retried
    like any timeout. Sockets are bounded by the time left, and the body is checked between chunks.
    Running out raises ``DeadlineExceeded`` (an ``httpx.TimeoutException``). The machinery below
    httpx (sockets, bodies, the per-thread end time) is in ``http_deadline.py``.

Exception mapping
    ``send(client, request, source=...)`` turns a call that got no answer into
    ``ProviderUnavailable`` (exit 3), with the original as ``__cause__``:

    =============================  ==========================================================
    call's deadline ran out        ``no complete answer from HOST within the N s request
                                   deadline; check the network, or raise ...``
    a try's deadline ran out       ``timed out after Ns talking to HOST``
    other timeout                  ``timed out talking to HOST``
    connection or protocol error   ``cannot reach HOST (ConnectError)``
    =============================  ==========================================================

    each followed by ``after N tries`` when there was more than one (the deadline case aside).
    An answer is returned as it is, whatever its status; ``raise_for_status`` then maps it:
    401/403 ``ProviderAuthError``, 429 ``ProviderRateLimited`` (``retry_after`` from the header),
    5xx ``ProviderUnavailable``, other 4xx ``ProviderResponseError``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from ._version import __version__
from .config import DEFAULT_REQUEST_DEADLINE, REQUEST_DEADLINE_ENV, request_deadline
from .errors import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)

# the deadline machinery lives in http_deadline.py; DeadlineExceeded and deadline_scope stay importable here
from .http_deadline import (
    DeadlineBody,
    DeadlineExceeded,
    bound_socket_reads,
    current_deadline,
    deadline_scope,
    time_left,
)

__all__ = [
    "DEFAULT_DEADLINE",
    "Client",
    "DeadlineExceeded",
    "RequestSigner",
    "RetryEvent",
    "RetryPolicy",
    "deadline_scope",
    "make_client",
    "parse_retry_after",
    "raise_for_status",
    "send",
]

log = logging.getLogger("tokenmeter.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# failures another try may fix; a proxy, TLS-setup or URL error will not get better by repeating it
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

DEFAULT_DEADLINE = DEFAULT_REQUEST_DEADLINE
DEADLINE_ENV = REQUEST_DEADLINE_ENV


def user_agent() -> str:
    return f"tokenmeter/{__version__} (+https://pypi.org/project/tokenmeter/)"


# -- retry policy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again and how long to wait first (see the module docstring)."""

    attempts: int = 4  # total tries, first included
    backoff: float = 0.5  # first wait after an error or a retryable status; doubles each retry
    max_backoff: float = 8.0
    max_wait: float = 60.0  # longest Retry-After we are willing to sleep
    cap_wait: bool = False  # a longer Retry-After: give up (False) or wait max_wait (True)
    rate_limit_wait: float | None = None  # after a 429 without Retry-After (None: backoff)
    jitter: bool = True  # 75-100 % of the backoff, so many clients do not retry in step
    statuses: frozenset[int] = RETRY_STATUSES
    attempt_deadline: float | None = None  # seconds one try may take in total (None: only the call's)

    def delay(self, retry: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None to give up."""
        if response is not None:
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None:
                if after <= self.max_wait:
                    return after
                return self.max_wait if self.cap_wait else None
            if response.status_code == 429 and self.rate_limit_wait is not None:
                return self.rate_limit_wait
        base = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return base * (0.75 + random.random() / 4) if self.jitter else base


@dataclass(frozen=True)
class RetryEvent:
    """What ``on_retry`` is told before each wait: which try failed, how, and the wait ahead."""

    request: httpx.Request
    attempt: int  # the try that just failed, 1-based
    attempts: int  # tries allowed in all
    wait: float  # seconds before the next try
    status: int | None  # the retryable status, or None after a transport error
    error: Exception | None  # the transport error, or None after a status


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


class RequestSigner(httpx.Auth):
    """Sign a request right before every try: subclass it and implement ``sign``.

    Pass an instance as ``auth=`` to ``send``: the retry path runs it again on each attempt, so a
    timestamped signature (valid for minutes) is never reused by a retry.
    """

    requires_request_body = True  # a signature usually covers the body

    def sign(self, request: httpx.Request) -> None:
        """Set the headers (and, if the scheme needs it, the URL) of ``request`` for this try."""
        raise NotImplementedError

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request


# -- the client --------------------------------------------------------------------------------------


def _host(request: httpx.Request) -> str:
    return request.url.netloc.decode("ascii", "replace")


class Client(httpx.Client):
    """An ``httpx.Client`` whose every ``send`` retries by its policy within a total deadline.

    ``get``/``post``/... use the client's ``policy``, ``sleep`` and ``deadline``; ``send`` (or the
    module's ``send``) can take another policy, sleep and an ``on_retry`` callback for one call.
    ``request.extensions["attempts"]`` says afterwards how many tries the call made.
    """

    def __init__(self, *args: Any, deadline: float | None = DEFAULT_DEADLINE, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        for transport in [self._transport, *getattr(self, "_mounts", {}).values()]:
            bound_socket_reads(transport)

    def _policy_for(self, request: httpx.Request) -> RetryPolicy | None:
        flag = request.extensions.get("retry")
        if isinstance(flag, RetryPolicy):
            return flag
        if flag is not None:
            return self.policy if flag else None
        return self.policy if request.method in IDEMPOTENT else None

    def send(  # type: ignore[override]
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send ``request``, retrying by ``retry`` (default: the client's policy, for idempotent
        methods); ``kwargs`` (``auth``, ``follow_redirects``) go to ``httpx.Client.send`` each try."""
        policy = retry or self._policy_for(request)
        attempts = policy.attempts if policy else 1
        seconds = request.extensions.get("deadline", self.deadline)
        if seconds is None:
            seconds = time_left()  # inside a caller's deadline_scope: that one, for the messages
        with deadline_scope(seconds):
            attempt = 0
            while True:
                attempt += 1
                request.extensions["attempts"] = attempt
                response: httpx.Response | None = None
                error: httpx.HTTPError | None = None
                try:
                    response = self._attempt(request, policy.attempt_deadline if policy else None, stream,
                                             seconds, **kwargs)
                except DeadlineExceeded as exc:
                    if not exc.attempt:
                        raise  # the call's own deadline: no time for another try
                    error = exc
                except TRANSIENT as exc:
                    error = exc
                if response is not None and (policy is None or response.status_code not in policy.statuses):
                    return response
                wait = policy.delay(attempt, response) if policy and attempt < attempts else None
                left = time_left()
                if wait is None or (left is not None and wait >= left):
                    if error is not None:
                        raise error
                    assert response is not None
                    return response
                if response is not None:
                    response.close()
                status = response.status_code if response is not None else None
                log.debug("retry %d of %s %s after %s, in %.1fs", attempt, request.method,
                          request.url.copy_with(query=None), f"HTTP {status}" if status else type(error).__name__,
                          wait)
                if on_retry is not None:
                    on_retry(RetryEvent(request, attempt, attempts, wait, status, error))
                (sleep or self.sleep)(wait)

    def _attempt(self, request: httpx.Request, limit: float | None, stream: bool, seconds: float | None,
                 **kwargs: Any) -> httpx.Response:
        """One try (auth flow and redirects included), its body read unless ``stream``."""
        call_end = current_deadline()
        with deadline_scope(limit) as end:
            # which deadline binds this try: its own (retried) or the whole call's (final)
            own = limit is not None and (call_end is None or end != call_end)

            def expired() -> DeadlineExceeded:
                bound = limit if own else seconds
                what = f"{bound:g} s (one try)" if own else f"the {bound:g} s request deadline"
                return DeadlineExceeded(f"no complete answer from {request.url.host} within {what}",
                                        request=request, seconds=bound or 0.0, attempt=own)

            try:
                response = super().send(request, stream=True, **kwargs)
                if end is not None:
                    response.stream = DeadlineBody(response.stream, end, expired)  # type: ignore[arg-type]
                if not stream:
                    try:
                        response.read()
                    finally:
                        response.close()
            except DeadlineExceeded:
                raise
            except httpx.TimeoutException as exc:
                if end is not None and time.monotonic() >= end - 0.01:  # our deadline, not a per-read timeout
                    raise expired() from exc
                raise
        return response


def make_client(
    *,
    transport: httpx.BaseTransport | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 30.0,
    deadline: float | None = None,
    **kwargs: Any,
) -> Client:
    """A ``Client`` with retries, timeouts, a total deadline per call (``deadline`` seconds;
    default ``TOKENMETER_REQUEST_DEADLINE``, else 120), the proxy env and our user agent."""
    if deadline is None:
        deadline = request_deadline()
    return Client(
        deadline=deadline,
        policy=policy,
        sleep=sleep,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        headers={"User-Agent": user_agent()},
        follow_redirects=True,
        trust_env=True,
        **kwargs,
    )


# -- error mapping ---------------------------------------------------------------------------------


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


def failure_message(exc: httpx.HTTPError, request: httpx.Request) -> str:
    """One line for a call that got no answer (see the module docstring's table)."""
    host = _host(request)
    if isinstance(exc, DeadlineExceeded) and not exc.attempt:
        return (f"no complete answer from {host} within the {exc.seconds:g} s request deadline; check the "
                f"network, or raise [tokenmeter] request_deadline (or {DEADLINE_ENV})")
    if isinstance(exc, DeadlineExceeded):
        text = f"timed out after {exc.seconds:g}s talking to {host}"
    elif isinstance(exc, httpx.TimeoutException):
        text = f"timed out talking to {host}"
    else:
        text = f"cannot reach {host} ({type(exc).__name__})"
    tries = request.extensions.get("attempts", 1)
    return f"{text} after {tries} tries" if tries > 1 else text


def send(
    client: httpx.Client,
    request: httpx.Request,
    *,
    source: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request through the retry path; a call that gets no answer raises ``ProviderUnavailable``.

    ``retry`` replaces the client's policy for this call (and retries any method); ``sleep`` and
    ``on_retry(RetryEvent)`` are called before each retry; ``kwargs`` (``auth=`` a ``RequestSigner``,
    ``follow_redirects``) go to every try. Any answer is returned: see ``raise_for_status``.
    """
    try:
        if isinstance(client, Client):
            return client.send(request, retry=retry, sleep=sleep, on_retry=on_retry, **kwargs)
        return client.send(request, **kwargs)  # a plain httpx.Client: no retries of ours
    except httpx.HTTPError as exc:
        prefix = f"{source}: " if source else ""
        raise ProviderUnavailable(prefix + failure_message(exc, request), source=source) from exc

