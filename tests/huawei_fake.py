"""A local fake of Huawei Cloud MaaS ShowStatistics + IAM project lookup, for tests.

It verifies every request's SDK-HMAC-SHA256 signature with its own stdlib implementation of the
algorithm (independent of huaweicloudsdkcore) and answers like the real API (tokens in thousands).

Used two ways:
- ``FakeHuawei`` is an ``httpx.MockTransport`` handler (``fake_context(handler=fake)``);
- ``FakeServer`` runs the same fake as a small ``http.server`` on 127.0.0.1, used once to record
  the vcrpy cassettes under ``cassettes/huawei_maas/``.

Re-record the cassettes (only needed when the source's requests change)::

    . .venv/bin/activate && python tests/huawei_fake.py record

The credentials here are obviously fake and are filtered out of the cassettes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

FAKE_AK = "FAKEAKFORTESTS0000001"
FAKE_SK = "FAKESKFORTESTS00000000000000000000000001"
FAKE_TOKEN = "FAKETOKENFORTESTS-gQpjbi1zb3V0aHdlc3QtMg-0000000001"
FAKE_PROJECT = "0123456789abcdef0123456789abcdef"
REGION = "cn-southwest-2"

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "huawei_maas"
# Requests are matched on everything but host and port, so replay needs no server; the body holds
# the day window, so each recorded answer goes back to the day it was recorded for.
VCR_MATCH_ON = ("method", "path", "query", "body")
VCR_FILTER_HEADERS = ("authorization", "x-security-token")

_AUTH = re.compile(r"^SDK-HMAC-SHA256 Access=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")
DAY_MS = 86_400_000


# -- signature verification (stdlib re-implementation of the algorithm) ------------------------
def canonical_request(method: str, path: str, query: str, headers: dict[str, str],
                      signed: list[str], body: bytes) -> str:
    segments = [quote(part, safe="~") for part in unquote(path).split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join([method.upper(), uri, canonical_query, canonical_headers, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])


def verify_signature(method: str, path: str, query: str, headers: dict[str, str], body: bytes, *,
                     ak: str = FAKE_AK, sk: str = FAKE_SK, token: str | None = None,
                     now: datetime | None = None) -> str | None:
    """Return None when the request is correctly signed, else why not. ``headers``: lower-case names."""
    match = _AUTH.match(headers.get("authorization", ""))
    if not match:
        return "no SDK-HMAC-SHA256 Authorization header"
    access, signed_text, signature = match.groups()
    if access != ak:
        return "unknown access key"
    signed = signed_text.split(";")
    if signed != sorted(signed) or "x-sdk-date" not in signed or "host" not in signed:
        return "x-sdk-date and host must be signed (sorted)"
    if any(name not in headers for name in signed):
        return "a signed header is missing"
    if token is not None and (headers.get("x-security-token") != token or "x-security-token" not in signed):
        return "X-Security-Token missing or not signed"
    try:
        when = datetime.strptime(headers["x-sdk-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "bad X-Sdk-Date"
    if now is not None and abs(now - when) > timedelta(minutes=15):
        return "X-Sdk-Date more than 15 minutes off"
    canonical = canonical_request(method, path, query, headers, signed, body)
    to_sign = f"SDK-HMAC-SHA256\n{headers['x-sdk-date']}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature) else "signature mismatch"


# -- the fake API -------------------------------------------------------------------------------
def default_usage(body: dict[str, Any]) -> dict[str, Any]:
    """Deterministic usage for a window; a partial window (today) scales down with its length."""
    day = body["start_time"] // DAY_MS
    share = Decimal(min(body["end_time"] - body["start_time"], DAY_MS)) / DAY_MS
    base = 100 + (day % 7) * 13 + body["service_type"] * 1000 + (500 if body["infer_type"] == "batch" else 0)
    requests = int(base * share)
    prompt = (Decimal(requests) * Decimal("1.2345")).quantize(Decimal("0.001"))
    completion = (Decimal(requests) * Decimal("0.0675")).quantize(Decimal("0.001"))
    return {
        "total_request_count": requests,
        "total_error_count": day % 5 if requests else 0,
        "total_token": float(prompt + completion + Decimal("0.5")),  # not prompt + completion
        "total_prompt_token": float(prompt),
        "total_completion_token": float(completion),
        "total_completion_tasks": 0,
        "total_infer_count": 0,
    }


class FakeHuawei:
    """The fake API as a callable ``httpx.MockTransport`` handler (also served by ``FakeServer``)."""

    def __init__(
        self,
        *,
        usage: Callable[[dict[str, Any]], dict[str, Any]] = default_usage,
        projects: list[dict[str, Any]] | None = None,
        token: str | None = None,
        check_clock: bool = False,
        script: list[tuple[int, Any, dict[str, str]]] | None = None,
    ) -> None:
        self.usage = usage
        self.projects = projects if projects is not None else [{"id": FAKE_PROJECT, "name": REGION}]
        self.token = token
        self.check_clock = check_clock
        self.script = list(script or [])  # answers given (in order) before the normal ones
        self.requests: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.lock = threading.Lock()

    # httpx.MockTransport entry point
    def __call__(self, request: Any) -> Any:
        import httpx

        raw = request.url.raw_path.decode()
        path, _, query = raw.partition("?")
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, payload, extra = self.handle(request.method, path, query, headers, request.content)
        return httpx.Response(status, content=json.dumps(payload).encode(),
                              headers={"Content-Type": "application/json", **extra})

    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append({"method": method, "path": path, "query": query, "headers": dict(headers),
                                  "body": json.loads(body) if body else None})
            problem = verify_signature(method, path, query, headers, body, token=self.token,
                                       now=datetime.now(UTC) if self.check_clock else None)
            if problem:
                self.rejected.append(problem)
                return 401, {"error_code": "APIGW.0301", "error_msg": "verify ak sk signature failed"}, {}
            if self.script:
                return self.script.pop(0)
        if method == "GET" and path == "/v3/projects":
            name = dict(parse_qsl(query)).get("name")
            return 200, {"projects": [p for p in self.projects if p.get("name") == name],
                         "links": {"self": "https://iam.example/v3/projects"}}, {}
        match = re.fullmatch(r"/v1/([0-9a-f]{32})/maas/monitoring/show-statistics", path)
        if method == "POST" and match:
            data = json.loads(body)
            if data.get("service_type") not in (1, 2, 4):
                message = "service_type must be one of [1 2 4]"
                return 400, {"error_code": "ModelArts.4101", "error_msg": message}, {}
            if data.get("infer_type") not in ("real_time", "batch"):
                return 400, {"error_code": "ModelArts.4101", "error_msg": "invalid infer_type"}, {}
            start, end = data.get("start_time"), data.get("end_time")
            if not isinstance(start, int) or not isinstance(end, int) or not 0 < end - start <= 30 * DAY_MS:
                return 400, {"error_code": "ModelArts.4101", "error_msg": "invalid time range"}, {}
            return 200, self.usage(data), {}
        message = "The API does not exist or has not been published"
        return 404, {"error_code": "APIGW.0101", "error_msg": message}, {}

    @property
    def statistics_bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["method"] == "POST"]


class FakeServer:
    """``FakeHuawei`` behind a real HTTP server on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, fake: FakeHuawei) -> None:
        self.fake = fake
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra = outer.fake.handle(self.command, path, query, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the two cassette scenarios (shared by the recorder and the tests) --------------------------
BACKFILL_NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
INCREMENTAL_NOW = datetime(2026, 3, 18, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
SCENARIO_ENV = {"HW_ACCESS_KEY": FAKE_AK, "HW_SECRET_KEY": FAKE_SK, "HW_SECURITY_TOKEN": FAKE_TOKEN}


def vcr_instance(record_mode: str) -> Any:
    import vcr

    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=VCR_MATCH_ON,
        filter_headers=list(VCR_FILTER_HEADERS),
        decode_compressed_response=True,
    )


def run_scenario(name: str, base_url: str, *, record_mode: str = "none",
                 cursor: dict[str, Any] | None = None) -> Any:
    """Run ``backfill`` (first run, project lookup) or ``incremental`` (from ``cursor``)."""
    from zoneinfo import ZoneInfo

    from tokenmeter_plugins.huawei_maas import HuaweiMaasSource

    from tokenmeter.testing import collect, fake_context

    now = BACKFILL_NOW if name == "backfill" else INCREMENTAL_NOW
    ctx = fake_context(HuaweiMaasSource.id, now=now, env=SCENARIO_ENV, timezone=ZoneInfo("Asia/Shanghai"))
    settings = {"endpoint": base_url, "iam_endpoint": base_url}
    with vcr_instance(record_mode).use_cassette(f"{name}.yaml"):
        try:
            return collect(HuaweiMaasSource, settings, ctx=ctx, cursor=cursor)
        finally:
            ctx.close()


def record() -> None:
    """Record both cassettes from the local fake (which checks every signature and the clock)."""
    CASSETTES.mkdir(parents=True, exist_ok=True)
    for name in ("backfill", "incremental"):
        (CASSETTES / f"{name}.yaml").unlink(missing_ok=True)
    fake = FakeHuawei(token=FAKE_TOKEN, check_clock=True)
    with FakeServer(fake) as server:
        first = run_scenario("backfill", server.url, record_mode="all")
        run_scenario("incremental", server.url, record_mode="all", cursor=dict(first.cursor or {}))
    if fake.rejected:
        raise SystemExit(f"the fake rejected requests: {fake.rejected}")
    for path in sorted(CASSETTES.glob("*.yaml")):
        text = path.read_text()
        for secret in (FAKE_AK, FAKE_SK, FAKE_TOKEN):
            assert secret not in text, f"a credential leaked into {path}"
        print(f"recorded {path} ({len(fake.requests)} requests in total)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:] != ["record"]:
        raise SystemExit("usage: python tests/huawei_fake.py record")
    record()
