"""Issue 14 part 4: one retry path, above the transport, that re-signs every attempt.

Webhook alerts and the Huawei source send through ``tokenmeter.http`` (``send`` / ``Client.send``)
instead of looping themselves; the retry policy and the total deadline apply there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from huawei_fake import FAKE_AK, FAKE_PROJECT, FAKE_SK, FAKE_TOKEN, FakeHuawei
from tokenmeter_plugins.huawei_maas import HuaweiMaasSource
from tokenmeter_plugins.huawei_maas.credentials import Credentials
from tokenmeter_plugins.huawei_maas.signing import AkSkSigner

from tokenmeter import ProviderUnavailable, RequestSigner, RetryPolicy, send
from tokenmeter.alerts import WebhookChannel, deliver, pending_alerts
from tokenmeter.budgets import budget_window, evaluate, parse_budgets
from tokenmeter.http import Client, make_client
from tokenmeter.testing import collect, fake_context

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:8765"


class TickingClock:
    """A wall clock that moves only when the source sleeps (pacing or a retry wait)."""

    def __init__(self) -> None:
        self.wall = NOW
        self.sleeps: list[float] = []

    def utcnow(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.wall.timestamp()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> TickingClock:
    fake = TickingClock()
    monkeypatch.setattr(HuaweiMaasSource, "clock", fake)
    return fake


def _day() -> dict[str, datetime]:
    start = datetime(2026, 3, 14, tzinfo=UTC)
    return {"start": start, "end": start + timedelta(days=1)}


# -- Huawei: every retry is signed again, by the host's path ------------------------------------


@pytest.mark.parametrize("first", [
    (503, {"error_msg": "Service Unavailable"}, {}),
    (429, {"error_msg": "Too Many Requests"}, {"Retry-After": "7"}),
])
def test_huawei_retries_through_the_host_path_with_a_fresh_signature(clock, first):
    from tokenmeter import Window

    fake = FakeHuawei(token=FAKE_TOKEN, script=[first])
    env = {"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": FAKE_SK, "HW_SECURITY_TOKEN": FAKE_TOKEN}
    ctx = fake_context(HuaweiMaasSource.id, now=NOW, env=env, handler=fake)
    assert isinstance(ctx.http, Client)  # the host's client: its send is the retry path
    out = collect(HuaweiMaasSource, {"endpoint": BASE, "iam_endpoint": BASE, "project_id": FAKE_PROJECT},
                  ctx=ctx, window=Window(**_day()))
    assert len(out.records) == 1 and fake.rejected == []  # every attempt verified
    one, two = fake.requests
    assert one["body"] == two["body"]
    assert clock.sleeps == ([2.0] if first[0] == 503 else [7.0])
    assert one["headers"]["x-sdk-date"] != two["headers"]["x-sdk-date"]
    assert one["headers"]["authorization"] != two["headers"]["authorization"]


def test_the_shared_send_reruns_a_signer_on_each_attempt():
    fake = FakeHuawei(script=[(502, {}, {}), (500, {}, {})])
    times = iter(datetime(2026, 3, 15, 12, 0, s, tzinfo=UTC) for s in range(0, 60, 10))
    signer = AkSkSigner(Credentials(FAKE_AK, FAKE_SK, None, "test"), lambda: next(times))
    assert isinstance(signer, RequestSigner)
    client = make_client(transport=httpx.MockTransport(fake), sleep=lambda s: None)
    request = client.build_request("GET", f"{BASE}/v3/projects", params={"name": "cn-southwest-2"})
    response = send(client, request, source="huawei-maas", auth=signer,
                    retry=RetryPolicy(attempts=3, backoff=0, jitter=False))
    assert response.status_code == 200 and fake.rejected == []
    assert [r["headers"]["x-sdk-date"] for r in fake.requests] == [
        "20260315T120000Z", "20260315T120010Z", "20260315T120020Z"]
    assert request.extensions["attempts"] == 3


def test_huawei_network_errors_end_in_one_line_naming_the_tries(clock):
    from tokenmeter import Window

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ctx = fake_context(HuaweiMaasSource.id, now=NOW, env={"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": FAKE_SK},
                       handler=refuse)
    with pytest.raises(ProviderUnavailable) as err:
        collect(HuaweiMaasSource, {"endpoint": BASE, "iam_endpoint": BASE, "project_id": FAKE_PROJECT},
                ctx=ctx, window=Window(**_day()))
    assert str(err.value) == "huawei-maas: cannot reach 127.0.0.1:8765 (ConnectError) after 4 tries"
    assert clock.sleeps == [2.0, 4.0, 8.0]


# -- alert webhooks ---------------------------------------------------------------------------------


def _alert():
    (budget,) = parse_budgets({"test": {"limit": 1_000_000, "unit": "tokens"}})
    (alert,) = pending_alerts([evaluate(budget, 950_000, window=budget_window(budget, NOW))], set())
    return alert


def _hook(timeout: float = 10.0) -> WebhookChannel:
    return WebhookChannel(index=0, timeout=timeout, levels=("warning", "critical"), budgets=None,
                          url="https://hooks.example.test/T0/secret")


def _answers(*responses: httpx.Response) -> tuple[Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    script = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return script.pop(0)

    # the client's own sleep would fail the test: the delivery must use the one it is given
    def never(seconds: float) -> None:
        raise AssertionError("slept through the client's default")

    return make_client(transport=httpx.MockTransport(handler), sleep=never), seen


def test_webhook_503_with_retry_after_is_retried_after_that_wait():
    client, seen = _answers(httpx.Response(503, headers={"Retry-After": "7"}, text="busy"), httpx.Response(200))
    sleeps: list[float] = []
    result = deliver(_alert(), _hook(), client, sleep=sleeps.append)
    assert (result.ok, result.attempts, result.error) == (True, 2, None)
    assert sleeps == [7.0]
    assert [r.method for r in seen] == ["POST", "POST"] and seen[0].content == seen[1].content


def test_webhook_retry_after_is_cut_to_30_seconds():
    # timeout 20 s: 3 attempts make a 60 s delivery, so a 30 s wait still fits
    client, _ = _answers(httpx.Response(429, headers={"Retry-After": "600"}), httpx.Response(204))
    sleeps: list[float] = []
    assert deliver(_alert(), _hook(timeout=20), client, sleep=sleeps.append).ok
    assert sleeps == [30.0]


def test_webhook_not_retried_past_its_deadline():
    # timeout 2 s per attempt, 3 attempts: the delivery ends within 6 s, so a 10 s wait is not taken
    client, seen = _answers(httpx.Response(503, headers={"Retry-After": "10"}, text="busy"), httpx.Response(200))
    sleeps: list[float] = []
    result = deliver(_alert(), _hook(timeout=2), client, sleep=sleeps.append)
    assert not result.ok and result.attempts == 1 and sleeps == [] and len(seen) == 1
    assert result.error == "HTTP 503 from hooks.example.test: busy (gave up after 1 attempts)"
    assert "secret" not in result.error


def test_webhook_network_error_is_one_line_without_the_url():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_client(transport=httpx.MockTransport(refuse))
    result = deliver(_alert(), _hook(), client, sleep=lambda s: None)
    assert not result.ok and result.attempts == 3
    assert result.error == "cannot reach hooks.example.test (ConnectError) after 3 tries"


def test_a_sources_call_is_not_retried_past_the_deadline():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, headers={"Retry-After": "7"})

    sleeps: list[float] = []
    client = make_client(transport=httpx.MockTransport(handler), sleep=sleeps.append, deadline=5)
    assert client.get("https://api.example.test/usage").status_code == 429
    assert sleeps == [] and len(seen) == 1


# -- no second retry path ---------------------------------------------------------------------------


OWN_LOOPS_BEFORE = [ROOT / "tokenmeter" / "alerts.py", *sorted((ROOT / "plugins" / "huawei_maas").rglob("*.py"))]


@pytest.mark.parametrize("path", OWN_LOOPS_BEFORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_direct_httpx_use_left(path):
    text = path.read_text()
    assert not re.search(r"httpx\.(Client|post|get|request|HTTPTransport)\(", text)
    assert not re.search(r"^\s*(import httpx|from httpx)", text, re.M)



def test_plain_client_calls_are_signed_again_on_every_retry_too():
    class Counter(RequestSigner):
        def __init__(self) -> None:
            self.n = 0

        def sign(self, request: httpx.Request) -> None:
            self.n += 1
            request.headers["X-Signature"] = f"sig-{self.n}"

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["X-Signature"])
        return httpx.Response(503 if len(seen) < 3 else 200)

    ctx = fake_context("fake", handler=handler)
    assert ctx.http.get("https://api.example.test/usage", auth=Counter()).status_code == 200
    assert seen == ["sig-1", "sig-2", "sig-3"]
    ctx.close()
