"""The host's HTTP client: retries with Retry-After and backoff, error mapping, user agent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tokenmeter import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    parse_retry_after,
    raise_for_status,
    send,
)
from tokenmeter.http import RetryPolicy, make_client
from tokenmeter.testing import fake_context


class Server:
    """Answers from a script of responses (or exceptions) and records every request."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, int):
            return httpx.Response(item, json={"ok": item < 400})
        return item


def client(server, sleeps, **policy):
    return make_client(transport=httpx.MockTransport(server), sleep=sleeps.append,
                       policy=RetryPolicy(**policy) if policy else None)


def test_429_with_retry_after_then_200():
    server = Server(httpx.Response(429, headers={"Retry-After": "7"}), 200)
    sleeps: list[float] = []
    r = client(server, sleeps).get("https://api.example.test/usage")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert sleeps == [7.0]
    assert len(server.requests) == 2


def test_retry_after_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    server = Server(httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)}), 200)
    sleeps: list[float] = []
    assert client(server, sleeps).get("https://api.example.test/").status_code == 200
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


def test_503_exhausts_attempts_with_exponential_backoff():
    server = Server(503)
    sleeps: list[float] = []
    r = client(server, sleeps, attempts=4, backoff=1.0, max_backoff=3.0).get("https://api.example.test/")
    assert r.status_code == 503
    assert len(server.requests) == 4 and len(sleeps) == 3
    # 1, 2, 4->capped at 3; each jittered to 75..100 %
    for got, base in zip(sleeps, (1.0, 2.0, 3.0), strict=True):
        assert 0.75 * base <= got <= base


def test_retry_after_beyond_max_wait_gives_up():
    server = Server(httpx.Response(429, headers={"Retry-After": "3600"}), 200)
    sleeps: list[float] = []
    r = client(server, sleeps, max_wait=60).get("https://api.example.test/")
    assert r.status_code == 429 and sleeps == [] and len(server.requests) == 1
    with pytest.raises(ProviderRateLimited) as info:
        raise_for_status(r, source="fake")
    assert info.value.retry_after == 3600


def test_post_not_retried_unless_asked():
    server = Server(503, 200)
    sleeps: list[float] = []
    c = client(server, sleeps)
    assert c.post("https://api.example.test/q", json={}).status_code == 503
    assert len(server.requests) == 1 and sleeps == []
    server = Server(503, 200)
    c = client(server, sleeps)
    r = c.post("https://api.example.test/q", json={}, extensions={"retry": True})
    assert r.status_code == 200 and len(server.requests) == 2
    # and a GET can opt out (a signed request that must be re-signed)
    server = Server(503, 200)
    r = client(server, []).get("https://api.example.test/", extensions={"retry": False})
    assert r.status_code == 503 and len(server.requests) == 1


def test_connection_errors_retried():
    server = Server(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 200)
    sleeps: list[float] = []
    assert client(server, sleeps).get("https://api.example.test/").status_code == 200
    assert len(server.requests) == 3 and len(sleeps) == 2
    server = Server(httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        client(server, [], attempts=3).get("https://api.example.test/")
    assert len(server.requests) == 3


def test_non_retryable_statuses_returned_at_once():
    for status in (400, 401, 404, 501):
        server = Server(status, 200)
        r = client(server, []).get("https://api.example.test/")
        assert r.status_code == status and len(server.requests) == 1


def test_raise_for_status_mapping():
    def resp(status, **kw):
        return httpx.Response(status, request=httpx.Request("GET", "https://api.example.test/x"), **kw)

    raise_for_status(resp(200), source="fake")
    raise_for_status(resp(304), source="fake")
    for status, exc in ((401, ProviderAuthError), (403, ProviderAuthError), (429, ProviderRateLimited),
                        (500, ProviderUnavailable), (503, ProviderUnavailable), (400, ProviderResponseError),
                        (404, ProviderResponseError)):
        with pytest.raises(exc) as info:
            raise_for_status(resp(status, json={"error": {"message": "nope"}}), source="fake")
        assert str(info.value) == f"fake: HTTP {status} from api.example.test" + (
            " (rate limited)" if status == 429 else "") + ": nope"
        assert info.value.source == "fake"
    with pytest.raises(ProviderRateLimited) as info:
        raise_for_status(resp(429, headers={"Retry-After": "12"}), source="fake")
    assert info.value.retry_after == 12 and info.value.exit_code == 3
    with pytest.raises(ProviderAuthError) as info:
        raise_for_status(resp(401, text="Unauthorized\nmore"), source="fake")
    assert str(info.value) == "fake: HTTP 401 from api.example.test: Unauthorized"
    assert info.value.exit_code == 5


def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    past = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_user_agent_and_defaults():
    server = Server(200)
    c = client(server, [])
    c.get("https://api.example.test/")
    ua = server.requests[0].headers["User-Agent"]
    assert ua.startswith("tokenmeter/0.1.0")
    assert c.timeout.read == 30.0 and c.timeout.connect == 10.0
    assert c.trust_env  # HTTPS_PROXY / NO_PROXY respected


def test_send_maps_network_errors():
    c = client(Server(httpx.ConnectError("refused")), [], attempts=1)
    with pytest.raises(ProviderUnavailable, match=r"fake: cannot reach api.example.test \(ConnectError\)"):
        send(c, c.build_request("GET", "https://api.example.test/"), source="fake")
    c = client(Server(httpx.ReadTimeout("slow")), [], attempts=1)
    with pytest.raises(ProviderUnavailable, match="fake: timed out talking to api.example.test"):
        send(c, c.build_request("GET", "https://api.example.test/"), source="fake")


def test_fake_context_http_uses_handler():
    server = Server(httpx.Response(429, headers={"Retry-After": "1"}), 200)
    slept: list[float] = []
    ctx = fake_context("fake", handler=server, sleep=slept.append)
    assert ctx.http.get("https://api.example.test/").status_code == 200
    assert slept == [1.0]
    assert server.requests[0].headers["User-Agent"].startswith("tokenmeter/")
    ctx.close()
