"""A fake OpenRouter API for the openrouter plugin's tests (never the real service).

``FakeOpenRouter`` answers ``/activity``, ``/credits``, ``/keys`` and ``/key`` like provider-apis.md
§B describes, from deterministic made-up data, with the documented error bodies. It is used two
ways: as an ``httpx.MockTransport`` handler (``fake.handler``) in unit tests, and served on
127.0.0.1 (``fake.serve(port)``) to record the vcrpy cassettes under ``cassettes/openrouter/``.

The keys are obviously fake and short, so they never look like real OpenRouter keys.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MANAGEMENT_KEY = "sk-or-v1-FAKE-management-key-for-tests"
API_KEY = "sk-or-v1-FAKE-ordinary-key-for-tests"
PREFIX = "/api/v1"

GPT_ENDPOINT = "0b6e1d1e-0000-4000-8000-00000000a001"
CLAUDE_ENDPOINT = "0b6e1d1e-0000-4000-8000-00000000b002"

MANAGEMENT_ONLY = {"/activity", "/credits", "/keys"}


def _num(value: Decimal) -> float | int:
    """A Decimal as the JSON number OpenRouter would send (floats print exactly as written)."""
    return int(value) if value == value.to_integral_value() else float(value)


def activity_rows(day: date, revision: int = 1, late_days: frozenset[date] = frozenset()) -> list[dict]:
    """Rows for one UTC day: GPT-4.1 (credits) and Claude via BYOK; nothing on the 10th/20th/30th.

    With ``revision`` 2, the days in ``late_days`` carry 5 more GPT requests and 0.05 USD more, as
    if OpenRouter had settled them late.
    """
    if day.day % 10 == 0:
        return []
    d = day.day
    late = revision >= 2 and day in late_days
    gpt_usage = Decimal(d) * Decimal("0.01") + Decimal("0.005") + (Decimal("0.05") if late else 0)
    return [
        {
            "date": day.isoformat(),
            "model": "openai/gpt-4.1",
            "model_permaslug": "openai/gpt-4.1-2025-04-14",
            "endpoint_id": GPT_ENDPOINT,
            "provider_name": "OpenAI",
            "usage": _num(gpt_usage),
            "byok_usage_inference": 0,
            "requests": 10 + d + (5 if late else 0),
            "prompt_tokens": 1000 * d + 17,
            "completion_tokens": 300 * d + 5,
            "reasoning_tokens": 0,
        },
        {
            "date": day.isoformat(),
            "model": "anthropic/claude-sonnet-4",
            "model_permaslug": "anthropic/claude-4-sonnet-20250522",
            "endpoint_id": CLAUDE_ENDPOINT,
            "provider_name": "Anthropic",
            "usage": 0.0125,
            "byok_usage_inference": 0.25,
            "requests": 3,
            "prompt_tokens": 2000 + d,
            "completion_tokens": 800,
            "reasoning_tokens": 120,
        },
    ]


def make_keys(count: int) -> list[dict]:
    """``count`` keys as /keys lists them; key 0 has a monthly 20 USD limit, the rest none."""
    keys = []
    for i in range(count):
        limited = i == 0
        keys.append(
            {
                "hash": f"{i:04d}" + "ab" * 30,
                "name": f"fake key {i}",
                "label": f"sk-or-v1-f{i:02d}...{i:03d}",
                "disabled": False,
                "limit": 20 if limited else None,
                "limit_remaining": 12.5 if limited else None,
                "limit_reset": "monthly" if limited else None,
                "include_byok_in_limit": False,
                "usage": 30.25 + i,
                "usage_daily": 0.5,
                "usage_weekly": 2.0,
                "usage_monthly": 7.5,
                "byok_usage": 1.0,
                "byok_usage_daily": 0.25,
                "byok_usage_weekly": 0.5,
                "byok_usage_monthly": 0.75,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": None,
                "workspace_id": None,
            }
        )
    return keys


def error(code: int, message: str, **metadata: Any) -> dict:
    body: dict[str, Any] = {"code": code, "message": message}
    if metadata:
        body["metadata"] = metadata
    return {"error": body}


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests to ``path``, before normal handling."""

    path: str
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class FakeOpenRouter:
    today: date
    revision: int = 1
    late_days: frozenset[date] = frozenset()
    key_count: int = 3
    faults: list[Fault] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    # -- the API -------------------------------------------------------------------------------
    def answer(self, path: str, query: dict[str, str], authorization: str | None) -> tuple[int, dict, dict]:
        """(status, headers, body) for a GET of ``path`` (without /api/v1) and its query."""
        query_text = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
        self.calls.append(f"{path}?{query_text}" if query_text else path)
        for fault in self.faults:
            if fault.path == path and fault.times > 0:
                fault.times -= 1
                return fault.status, dict(fault.headers), fault.body
        if not authorization or not authorization.startswith("Bearer "):
            return 401, {}, error(401, "Missing Authentication header")
        key = authorization.removeprefix("Bearer ")
        if key not in (MANAGEMENT_KEY, API_KEY):
            return 401, {}, error(401, "User not found.")
        management = key == MANAGEMENT_KEY
        if path in MANAGEMENT_ONLY and not management:
            return 403, {}, error(403, "Only management keys can perform this operation")
        if path == "/activity":
            return self._activity(query)
        if path == "/credits":
            return 200, {}, {"data": {"total_credits": 50, "total_usage": 18.37}}
        if path == "/keys":
            offset = int(query.get("offset", "0"))
            return 200, {}, {"data": make_keys(self.key_count)[offset : offset + 100]}
        if path == "/key":
            return 200, {}, {"data": self._key(management)}
        return 404, {}, error(404, "Not Found")

    def _activity(self, query: dict[str, str]) -> tuple[int, dict, dict]:
        first, last = self.today - timedelta(days=30), self.today - timedelta(days=1)
        if "date" in query:
            try:
                day = date.fromisoformat(query["date"])
            except ValueError:
                return 400, {}, error(400, "Invalid request parameters")
            if not first <= day <= last:
                return 400, {}, error(400, "Invalid request parameters")
            days = [day]
        else:
            days = [first + timedelta(days=i) for i in range(30)]
        rows = [row for day in days for row in activity_rows(day, self.revision, self.late_days)]
        if query.get("group_by") == "workspace":
            rows = [dict(row, workspace_id="11111111-2222-4333-8444-555555555555") for row in rows]
        return 200, {}, {"data": rows}

    def _key(self, management: bool) -> dict:
        return {
            "label": "sk-or-v1-FAK...sts",
            "limit": 100,
            "limit_remaining": 74.5,
            "limit_reset": "monthly",
            "include_byok_in_limit": False,
            "usage": 25.5,
            "usage_daily": 1.23,
            "usage_weekly": 8.5,
            "usage_monthly": 25.5,
            "byok_usage": 17.38,
            "byok_usage_daily": 0.4,
            "byok_usage_weekly": 3.0,
            "byok_usage_monthly": 17.38,
            "is_free_tier": False,
            "is_management_key": management,
            "is_provisioning_key": management,
            "creator_user_id": "user_fake",
            "expires_at": None,
            "rate_limit": {"requests": 1000, "interval": "1h", "note": "deprecated"},
        }

    # -- as an httpx.MockTransport handler -------------------------------------------------------
    def handler(self, request: Any) -> Any:
        import httpx

        path = request.url.path.removeprefix(PREFIX)
        query = dict(request.url.params)
        status, headers, body = self.answer(path, query, request.headers.get("Authorization"))
        return httpx.Response(status, headers=headers, json=body)

    # -- as a local HTTP server (for recording cassettes) ---------------------------------------
    @contextmanager
    def serve(self, port: int) -> Iterator[str]:
        """Serve on 127.0.0.1:``port``; yields the base URL to put in the source's settings."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, headers, body = fake.answer(
                    url.path.removeprefix(PREFIX), query, self.headers.get("Authorization")
                )
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{port}{PREFIX}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
