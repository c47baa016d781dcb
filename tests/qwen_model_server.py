"""A loopback OpenAI-compatible model server for running the real Qwen Code client in tests.

Speaks ``POST /v1/chat/completions`` (SSE ``chat.completion.chunk``s with a final ``usage`` chunk
when ``stream`` is true, one ``chat.completion`` otherwise) and ``GET /v1/models``. Every answered
call gets a distinct completion id and distinct usage numbers and is recorded in ``calls``: the
ground truth the conformance tests compare tokenmeter's totals with.

What it answers is decided from the request body; the kind of call from its system prompt:
- no system prompt: a side query (the next-speaker check) -> a call of its one tool, filled from the
  tool's JSON schema (first enum value, else "ok");
- the memory extractor's system prompt (a background agent) -> plain text;
- otherwise main (Qwen Code's own system prompt) or subagent (any other): when the last message is a
  tool result -> plain text (ends the turn); when the last user text contains ``[[agent]]`` (main only)
  -> a call of ``agent_tool`` (the client's subagent tool), ``[[tool]]`` -> a call of ``list_tool``;
  else plain text.
With ``pairing`` on, main and subagent answers are held until one of the other kind is waiting too,
so that a backgrounded subagent's lines and the parent's land in the chat file at the same moment.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAIN_MARKER = "You are Qwen Code"  # the main agent's system prompt (both versions)
BACKGROUND_MARKERS = ("managed memory extraction subagent",)  # the memory extractor's


@dataclass
class Call:
    """One answered API call."""

    id: str
    model: str
    kind: str  # "main", "subagent", "background" or "side" (a side query such as the next-speaker check)
    answer: str  # "text", "tool", "agent" or "schema"
    stream: bool
    usage: dict[str, Any]
    body: dict[str, Any] = field(repr=False)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class QwenModelServer:
    """``with QwenModelServer(...) as srv:`` -> ``srv.base_url``; ``srv.calls`` afterwards."""

    def __init__(self, list_tool: str, list_args: dict[str, Any], agent_tool: str,
                 agent_args: dict[str, Any]) -> None:
        self.list_tool, self.list_args = list_tool, list_args
        self.agent_tool, self.agent_args = agent_tool, agent_args
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.pairing, self.pair_timeout, self.paired = False, 1.5, 0
        self.waiting: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> QwenModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- deciding ------------------------------------------------------------------------------
    def classify(self, body: dict[str, Any]) -> tuple[str, str]:
        """-> (kind, answer) for a request body."""
        msgs = body.get("messages") or []
        system = "\n".join(_text(m.get("content")) for m in msgs if m.get("role") == "system")
        tools = body.get("tools") or []
        if not system:  # a side query (e.g. the next-speaker check): answer its one schema tool
            return "side", "schema" if len(tools) == 1 else "text"
        if any(mark in system for mark in BACKGROUND_MARKERS):
            kind = "background"
        else:
            kind = "main" if MAIN_MARKER in system else "subagent"
        last = msgs[-1] if msgs else {}
        if kind == "background" or last.get("role") == "tool" or not tools:
            return kind, "text"
        user = _text(last.get("content"))
        if "[[agent]]" in user and kind == "main":
            return kind, "agent"
        return kind, "tool" if "[[tool]]" in user else "text"

    def pair(self, call: Call) -> None:
        """With ``pairing`` on, a main or subagent call waits (up to ``pair_timeout`` s) for a call
        of the other kind, so that both answers arrive at the client at the same moment."""
        if not self.pairing or call.kind == "background":
            return
        with self.cond:
            if any(k != call.kind for k in self.waiting):
                self.waiting.clear()
                self.paired += 1
                self.cond.notify_all()
                return
            self.waiting.append(call.kind)
            self.cond.wait_for(lambda: call.kind not in self.waiting, timeout=self.pair_timeout)
            if call.kind in self.waiting:
                self.waiting.remove(call.kind)

    def answer(self, body: dict[str, Any]) -> Call:
        kind, answer = self.classify(body)
        with self.lock:
            n = len(self.calls) + 1
            prompt = 1000 + 97 * n + len(json.dumps(body.get("messages"))) % 89
            reasoning = 0 if n % 3 == 0 else 5 + 3 * n
            completion = 11 + 13 * n + reasoning  # reasoning is part of completion_tokens
            cached = 0 if n % 4 == 1 else 128 * (n % 5 + 1)
            usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion,
                     "prompt_tokens_details": {"cached_tokens": cached},
                     "completion_tokens_details": {"reasoning_tokens": reasoning}}
            call = Call(f"chatcmpl-fake{n:04d}{int(time.time() * 1000) % 100000:05d}",
                        str(body.get("model")), kind, answer, bool(body.get("stream")), usage, body)
            self.calls.append(call)
        return call

    def message(self, call: Call) -> dict[str, Any]:
        if call.answer == "text":
            return {"role": "assistant", "content": f"Done ({call.kind} call {call.id})."}
        if call.answer == "schema":  # fill the schema: first enum value, else a string
            fn = call.body["tools"][0]["function"]
            props = fn.get("parameters", {}).get("properties", {})
            name, args = fn["name"], {k: (v.get("enum") or ["ok"])[0] for k, v in props.items()}
        elif call.answer == "tool":
            name, args = self.list_tool, self.list_args
        else:
            name, args = self.agent_tool, self.agent_args
        return {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": f"call_{call.id[-9:]}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}]}

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": "fake-model", "object": "model", "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "bad JSON"}})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                call = server.answer(body)
                server.pair(call)
                msg = server.message(call)
                finish = "tool_calls" if msg.get("tool_calls") else "stop"
                base = {"id": call.id, "created": int(time.time()), "model": call.model}
                if not call.stream:
                    self._send(200, {**base, "object": "chat.completion", "usage": call.usage,
                                     "choices": [{"index": 0, "message": msg, "finish_reason": finish}]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                delta = {k: v for k, v in msg.items() if v is not None}
                chunks = [{"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                          {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
                          {"choices": [], "usage": call.usage}]
                for c in chunks:
                    data = {**base, "object": "chat.completion.chunk", **c}
                    self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler
