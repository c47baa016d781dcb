"""Generate realistic Qwen Code trees and DashScope TSV usage logs (reproducible with --seed).

    python benchmarks/gen_logs.py qwen-code --lines 1000000 --out DIR   # DIR = a Qwen Code runtime dir
    python benchmarks/gen_logs.py tsv --lines 100000 --out FILE
    python benchmarks/gen_logs.py demo      # the demo's sample data, into plugins/dashscope_log/demo_data

A Qwen Code tree is written in the shapes the real client writes (as observed running
``@qwen-code/qwen-code`` 0.24.4 and 0.15.10 against a local model server; key order included):

- ``DIR/projects/<p>/chats/<sessionId>.jsonl`` (and ``chats/archive/``): user, attribution_snapshot,
  a ``system``/``ui_telemetry`` ``qwen-code.api_response`` event for EVERY API call, the main
  turn's ``assistant`` line after it (``parentUuid`` = the event line's uuid), ``qwen-code.tool_call``
  events and ``tool_result`` lines, custom_title and slash_command lines. Background-agent
  (``managed-auto-memory-extractor``) and subagent (``general-purpose``, ``Explore``) calls have ONLY
  the event in the chat file. A few events are errors (status 429/500: not usage); a few calls report
  only a total (input/output 0 in the event, absent in the assistant line).
- three client generations: new (0.24.x: + subagent transcripts
  ``projects/<p>/subagents/<sessionId>/agent-<name>-<callId>.jsonl`` + ``.meta.json``, the per-call
  ledger ``usage/token-usage-YYYY-MM.jsonl`` and per-session sums in ``usage_record.jsonl``), mid
  (0.15.x: telemetry, no ledger or transcripts) and old (0.0.x/0.1.x: assistant lines only, 0.0.x
  without ``thoughtsTokenCount``).
- ``/branch`` forks: a new session file that starts with a verbatim copy of an earlier session's
  lines (same uuids and response_ids, new ``sessionId``, a ``forkedFrom`` field), with or without
  the telemetry lines, then goes on with calls of its own.
- a truncated last line (an api_response event cut short: not a call until it is completed);
  ``--quirks`` adds a NUL garbage line.

Each run writes the exact sums a correct reader must produce to ``DIR/expected.json`` (TSV:
``<out>.expected.json``) and returns them from ``gen_qwen_code`` / ``gen_tsv``: each distinct API
call once, per UTC day x model, per agent, per client generation, plus the naive
every-assistant-line sums. The rules are spelled out in its ``semantics`` field.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 3
MODELS = [  # (name, weight, thinks)
    ("qwen3-coder-plus", 40, False),
    ("qwen3.5-plus", 30, True),
    ("qwen3-coder-flash", 15, False),
    ("qwen-max", 8, True),
    ("qwen-plus", 7, True),
]
CONTEXT_WINDOW = {"qwen3-coder-plus": 1_000_000, "qwen3.5-plus": 1_000_000, "qwen3-coder-flash": 1_000_000,
                  "qwen-max": 262_144, "qwen-plus": 1_000_000}
WORDS = ("the usage token cost cached prompt model output input budget report session project line "
         "parse json stream buffer file path export import verify build test data record field value "
         "price daily group sort total count error handle refactor update module function class").split()
SNIPPETS = [
    "```python\ndef parse_line(raw: bytes) -> dict | None:\n    try:\n        return json.loads(raw)\n"
    "    except ValueError:\n        return None\n```\n",
    "let path = \"C:\\\\Users\\\\dev\\\\project\\\\src\\\\main.rs\";\n",
    "<div class=\"usage\" data-model='qwen3-coder-plus'>&nbsp;</div>\n",
    "上下文窗口已满，正在压缩历史记录。缓存命中率很高。",
    "⚠️ 📊 思考过程：先读取日志，再汇总。",
    "토큰 사용량：입력과 출력을 합산합니다.",
    "$ npm test -- --coverage\n  PASS  src/report.test.ts (12 tests)\n",
    "SELECT date, model, SUM(input_tokens) FROM usage GROUP BY 1, 2;\n",
    "\tindented\ttabs and a backslash \\ and quotes \"like this\"\n",
    'for (const rec of records) { total += rec.usageMetadata?.promptTokenCount ?? 0; }\n',
]
TOOLS = ["read_file", "run_shell_command", "list_directory", "write_file", "grep_search", "edit", "glob",
         "todo_write", "web_fetch", "read_many_files"]
CLIENT_VERSIONS = {"new": ("0.24.0", "0.24.4"), "mid": ("0.15.0", "0.15.10"), "old": ("0.0.14", "0.1.2", "0.1.5")}
BG_AGENT = "managed-auto-memory-extractor"
SUBAGENTS = ("general-purpose", "Explore")
SUMS = ("prompt", "candidates", "cached", "thoughts", "total", "requests")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class _Text:
    """Fast pseudo-random text: slices of a big pre-built pool (generation must not dominate)."""

    def __init__(self, rng: random.Random) -> None:
        parts: list[str] = []
        size = 0
        while size < 400_000:
            if rng.random() < 0.08:
                s = rng.choice(SNIPPETS)
            else:
                n = rng.randint(6, 20)
                s = " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice(".?!,:") + " "
            parts.append(s)
            size += len(s)
        self.pool = "".join(parts)
        self.rng = rng

    def get(self, n: int) -> str:
        i = int(self.rng.random() * (len(self.pool) - n - 1))
        return self.pool[i:i + n]


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # one encoder, not one per line


def _acc() -> list[int]:
    return [0, 0, 0, 0, 0, 0]


def _named(acc: list[int]) -> dict[str, int]:
    return dict(zip(SUMS, acc, strict=True))


_PROVENANCE = {"user": "real_user", "assistant": "assistant_output", "system": "system", "tool_result": "tool_result"}
_TELEMETRY = frozenset(("api_response", "api_error", "tool_call"))  # kinds of ui_telemetry lines
_DAY_MS = 86_400_000


class _Session:
    """One chat file being written (a session, or a fork: copied lines first)."""

    def __init__(self, sid: str, proj: str, cwd: str, client: str, version: str, branch: str, model: str,
                 thinks: bool, t: int, ctx: int) -> None:
        self.sid, self.proj, self.cwd, self.client, self.version, self.branch = sid, proj, cwd, client, version, branch
        self.model, self.thinks, self.t, self.ctx = model, thinks, t, ctx
        self.start = t
        self.parent: str | None = None
        self.lines: list[str] = []
        self.kinds: list[str] = []
        self.ms: list[int] = []  # each line's time (fork points)
        self.asst: dict[int, tuple[Any, ...]] = {}  # line index -> (day, model, usageMetadata) of assistant lines
        self.prompts = 0
        self.prompt_id = ""
        # usage_record: model -> [requests, input, output, cached, thoughts, total, latency ms]
        self.models: dict[str, list[int]] = {}
        self.tools: Counter[str] = Counter()
        self.tool_ms: Counter[str] = Counter()
        self.side_files: list[tuple[str, str]] = []  # (relative path, content): subagent transcripts + meta


class _Tree:
    def __init__(self, out: Path, rng: random.Random, opts: dict[str, Any]) -> None:
        self.out = out
        self.rng = rng
        self.text = _Text(rng)
        self.o = opts
        self.new_dirs: set[Path] = set()
        self.sums: dict[tuple[str, str], list[int]] = defaultdict(_acc)  # (day, model)
        self.sums_agent: dict[tuple[str, str, str], list[int]] = defaultdict(_acc)  # (day, model, agent)
        self.by_agent: dict[str, list[int]] = defaultdict(_acc)
        self.by_client: dict[str, list[int]] = defaultdict(_acc)
        self.naive: dict[tuple[str, str], list[int]] = defaultdict(_acc)
        self.total_only = [0, 0, 0]  # requests, total, estimated thoughts
        self.no_assistant = 0
        self.calls = Counter()  # main / agent / error
        self.kinds: Counter[str] = Counter()
        self.fork_copied: Counter[str] = Counter()
        self.ledger: list[tuple[str, str]] = []  # (timestamp, line)
        self.usage_record: list[tuple[int, str]] = []
        self.clients: Counter[str] = Counter()
        self.extra = Counter()
        self.extra_bytes = 0
        self.files = self.fork_files = self.archived = self.forks_with_telemetry = 0
        self.cwds: list[str] = []
        self.projs: set[str] = set()
        self._sec = -1
        self._sec_s = ""

    # -- small helpers -----------------------------------------------------------------------------
    def uid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def hexid(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def fmt(self, ms: int) -> str:
        s, r = divmod(ms, 1000)
        if s != self._sec:
            self._sec = s
            self._sec_s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
        return f"{self._sec_s}.{r:03d}Z"

    def env(self, S: _Session, typ: str, ms: int, sub: str | None = None) -> dict[str, Any]:
        u = self.uid()
        rec: dict[str, Any] = {"uuid": u, "parentUuid": S.parent, "sessionId": S.sid, "timestamp": self.fmt(ms),
                               "type": typ}
        if S.client == "new":
            rec["provenance"] = _PROVENANCE[typ]
        rec["cwd"] = S.cwd
        rec["version"] = S.version
        rec["gitBranch"] = S.branch
        if sub:
            rec["subtype"] = sub
        S.parent = u
        return rec

    def emit(self, S: _Session, rec: dict[str, Any], kind: str, ms: int) -> int:
        S.lines.append(_dumps(rec))
        S.kinds.append(kind)
        S.ms.append(ms)
        return len(S.lines) - 1

    def usage(self, ctx: int, thinks: bool, thoughts_key: bool = True) -> tuple[Any, ...]:
        """-> (prompt, candidates, cached, thoughts, total, total_only, usageMetadata dict)."""
        rng = self.rng
        cand = rng.randint(20, 3000)
        if rng.random() < self.o["total_only_rate"]:
            # the backend reported only total_tokens: prompt/candidates are omitted, an estimated
            # thoughtsTokenCount (from the reasoning text) may still be written
            est = rng.randint(40, 900) if thinks else 0
            um: dict[str, int] = {"thoughtsTokenCount": est} if est else {}
            um["totalTokenCount"] = ctx + cand
            return (0, 0, 0, est, ctx + cand, True, um)
        cached = 0 if rng.random() < 0.3 else (int(ctx * rng.uniform(0.3, 0.9)) // 64) * 64
        thoughts = rng.randint(0, cand // 2) if thinks else 0
        um = {"promptTokenCount": ctx, "candidatesTokenCount": cand}
        if thoughts_key:
            um["thoughtsTokenCount"] = thoughts
        um["totalTokenCount"] = ctx + cand
        um["cachedContentTokenCount"] = cached
        return (ctx, cand, cached, thoughts if thoughts_key else 0, ctx + cand, False, um)

    def count(self, day: str, model: str, agent: str, client: str, u: tuple[Any, ...]) -> None:
        p, c, k, t, total, total_only = u[:6]
        if total_only:  # a request with a total and nothing else reliable (unpriced)
            p = c = k = t = 0
            self.total_only[0] += 1
            self.total_only[1] += total
            self.total_only[2] += u[3]
        for acc in (self.sums[(day, model)], self.sums_agent[(day, model, agent)], self.by_agent[agent],
                    self.by_client[client]):
            acc[0] += p
            acc[1] += c
            acc[2] += k
            acc[3] += t
            acc[4] += total
            acc[5] += 1

    def add_naive(self, day: str, model: str, um: dict[str, int]) -> None:
        acc = self.naive[(day, model)]
        acc[0] += um.get("promptTokenCount", 0)
        acc[1] += um.get("candidatesTokenCount", 0)
        acc[2] += um.get("cachedContentTokenCount", 0)
        acc[3] += um.get("thoughtsTokenCount", 0)
        acc[4] += um.get("totalTokenCount", 0)
        acc[5] += 1

    def advance(self, S: _Session, ms: int) -> int:
        """Move the session clock; an API call's records never straddle UTC midnight."""
        t = S.t + ms
        if t % _DAY_MS > _DAY_MS - 50:
            t += 100
        S.t = t
        return t

    # -- API calls -----------------------------------------------------------------------------------
    def api_event(self, S: _Session, model: str, u: tuple[Any, ...], *, response_text: str | None,
                  prompt_id: str, agent: str | None = None, agent_fields: dict[str, Any] | None = None) -> str:
        """The ui_telemetry api_response event of one successful call; counts the call. -> response_id."""
        rng = self.rng
        dur = rng.randint(800, 60000)
        ms = self.advance(S, dur)
        rid = "chatcmpl-" + self.hexid(32)
        rec = self.env(S, "system", ms + 1, "ui_telemetry")
        ts = self.fmt(ms)
        ev: dict[str, Any] = {"event.name": "qwen-code.api_response", "event.timestamp": ts, "response_id": rid,
                              "model": model, "status_code": 200, "duration_ms": dur,
                              "input_token_count": u[0], "output_token_count": u[1],
                              "cached_content_token_count": u[2], "thoughts_token_count": u[3],
                              "total_token_count": u[4]}
        if response_text is not None:
            ev["response_text"] = response_text
        ev["prompt_id"] = prompt_id
        ev["auth_type"] = "openai"
        if S.client == "new":
            ev["ttft_ms"] = rng.randint(200, min(dur, 25000))
        if agent_fields:
            ev.update(agent_fields)
        rec["systemPayload"] = {"uiEvent": ev}
        self.emit(S, rec, "api_response", ms + 1)
        day = ts[:10]
        self.count(day, model, agent or "main", S.client, u)
        self.calls["agent" if agent else "main"] += 1
        if agent:
            self.no_assistant += 1
        m = S.models.setdefault(model, [0, 0, 0, 0, 0, 0, 0])
        for i, v in enumerate((1, u[0], u[1], u[2], u[3], u[4], dur)):
            m[i] += v
        if S.client == "new":
            self.ledger.append((ts, _dumps({
                "schemaVersion": 1, "id": self.uid(), "timestamp": ts, "localDate": day, "localMonth": ts[:7],
                "sessionId": S.sid, "model": model, "authType": "openai", "source": agent or "main",
                "inputTokens": u[0], "outputTokens": u[1], "cachedTokens": u[2], "thoughtsTokens": u[3],
                "totalTokens": u[4], "apiDurationMs": dur})))
        return rid

    def error_event(self, S: _Session, model: str, prompt_id: str) -> None:
        """A failed call (rate limit, server error): an api_response event that is not usage."""
        rng = self.rng
        dur = rng.randint(200, 30000)
        ms = self.advance(S, dur)
        status = rng.choice((429, 429, 500))
        rec = self.env(S, "system", ms + 1, "ui_telemetry")
        ev: dict[str, Any] = {"event.name": "qwen-code.api_response", "event.timestamp": self.fmt(ms)}
        if status == 500:  # the stream started, then died: the server's id is known
            ev["response_id"] = "chatcmpl-" + self.hexid(32)
        ev.update({"model": model, "status_code": status, "duration_ms": dur, "input_token_count": 0,
                   "output_token_count": 0, "cached_content_token_count": 0, "thoughts_token_count": 0,
                   "total_token_count": 0, "prompt_id": prompt_id, "auth_type": "openai",
                   "error": "429 Too Many Requests: rate limit exceeded" if status == 429
                   else "500 Internal Server Error: stream terminated"})
        rec["systemPayload"] = {"uiEvent": ev}
        self.emit(S, rec, "api_error", ms + 1)
        self.calls["error"] += 1
        S.t += rng.randint(500, 5000)  # backoff before the retry

    def main_call(self, S: _Session) -> tuple[list[tuple[str, str, dict[str, Any], str | None]], str]:
        """One main-turn model round: [error event], api_response event, assistant line."""
        rng, text = self.rng, self.text
        S.ctx += rng.randint(200, 4000)
        if S.ctx > 240_000:  # chat compression
            S.ctx = rng.randint(20_000, 40_000)
        if S.client != "old" and rng.random() < self.o["error_rate"]:
            self.error_event(S, S.model, S.prompt_id)
        u = self.usage(S.ctx, S.thinks, thoughts_key=not S.version.startswith("0.0."))
        fcalls: list[tuple[str, str, dict[str, Any], str | None]] = []
        if rng.random() < 0.55:
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                cid = "call_" + self.hexid(24)
                if S.client != "old" and rng.random() < self.o["agent_rate"]:
                    name = SUBAGENTS[0] if rng.random() < 0.7 else SUBAGENTS[1]
                    fcalls.append(("agent", cid, {"description": text.get(rng.randint(10, 40)),
                                                  "prompt": text.get(rng.randint(100, 600)),
                                                  "subagent_type": name, "run_in_background": False}, name))
                else:
                    tool = rng.choice(TOOLS)
                    args: dict[str, Any] = {"file_path": f"{S.cwd}/src/{rng.choice(WORDS)}_{rng.randint(1, 99)}.py"}
                    if tool in ("write_file", "edit", "run_shell_command"):
                        args["content" if tool != "run_shell_command" else "command"] = text.get(rng.randint(20, 400))
                    fcalls.append((tool, cid, args, None))
        reply = text.get(rng.randint(200, 2500) if fcalls else rng.randint(600, 6800))
        parts: list[dict[str, Any]] = []
        if u[3] and S.thinks and not u[5]:
            parts.append({"text": text.get(rng.randint(100, 1200)), "thought": True})
        parts.append({"text": reply})
        for tool, cid, args, _ in fcalls:
            parts.append({"functionCall": {"id": cid, "name": tool, "args": args}})
        rid = ""
        if S.client != "old":
            rid = self.api_event(S, S.model, u, response_text=None if fcalls else reply, prompt_id=S.prompt_id)
            ms = S.t + 3
        else:
            ms = self.advance(S, rng.randint(800, 60000))
            self.count(self.fmt(ms)[:10], S.model, "main", "old", u)
            self.calls["main"] += 1
        rec = self.env(S, "assistant", ms)
        rec["model"] = S.model
        rec["message"] = {"role": "model", "parts": parts}
        rec["usageMetadata"] = u[6]
        if S.client == "new":
            rec["contextWindowSize"] = CONTEXT_WINDOW[S.model]
        i = self.emit(S, rec, "assistant", ms)
        day = rec["timestamp"][:10]
        S.asst[i] = (day, S.model, u[6])
        self.add_naive(day, S.model, u[6])
        return fcalls, rid

    def tool(self, S: _Session, tool: str, cid: str, args: dict[str, Any], rid: str,
             display: dict[str, Any] | None = None) -> None:
        rng = self.rng
        dur = rng.randint(50, 15000)
        output = display["result"] if display else self.text.get(rng.randint(100, 2000))
        S.tools[tool] += 1
        S.tool_ms[tool] += dur
        if S.client != "old":
            ms = self.advance(S, dur)
            rec = self.env(S, "system", ms, "ui_telemetry")
            ev: dict[str, Any] = {"event.name": "qwen-code.tool_call", "event.timestamp": self.fmt(ms)}
            if S.client == "new":
                ev["call_id"] = cid
            ev.update({"function_name": tool, "function_args": args, "duration_ms": dur, "status": "success"})
            if S.client == "new":
                ev["execution_status"] = "success"
            ev.update({"success": True, "decision": "auto_accept", "prompt_id": S.prompt_id, "response_id": rid,
                       "tool_type": "native", "content_length": len(output)})
            rec["systemPayload"] = {"uiEvent": ev}
            self.emit(S, rec, "tool_call", ms)
        ms = self.advance(S, rng.randint(5, 30))
        rec = self.env(S, "tool_result", ms)
        rec["message"] = {"role": "user", "parts": [{"functionResponse": {"id": cid, "name": tool,
                                                                          "response": {"output": output}}}]}
        tcr: dict[str, Any] = {"callId": cid, "status": "success", "resultDisplay": display or output}
        if S.client == "new":
            tcr["executionStatus"] = "success"
        rec["toolCallResult"] = tcr
        self.emit(S, rec, "tool_result", ms)

    def subagent(self, S: _Session, name: str, cid: str, args: dict[str, Any]) -> dict[str, Any]:
        """A subagent started by the agent tool: events in the parent's chat file, a transcript (new)."""
        rng, text = self.rng, self.text
        agent_id = f"{name}-{cid}"
        run_id = self.uid()
        rounds = rng.choice((1, 1, 2, 3))
        created = S.t + 1
        tr: list[str] = []
        base = {"sessionId": S.sid, "cwd": S.cwd, "version": S.version, "gitBranch": S.branch,
                "agentId": agent_id, "agentName": name, "isSidechain": True}
        new = S.client == "new"
        tparent: str | None = None
        if new:
            tparent = self.uid()
            tr.append(_dumps({"uuid": tparent, "parentUuid": None, "sessionId": S.sid, "timestamp": self.fmt(S.t + 130),
                              "type": "user", **{k: v for k, v in base.items() if k != "sessionId"},
                              "message": {"role": "user", "parts": [{"text": args["prompt"]}]}}))
        fields = {"subagent_name": name, "subagent_id": agent_id, "subagent_type": name}
        if name == "general-purpose" and new:
            fields["subagent_task_name"] = args["description"]
        tot = [0, 0, 0, 0, 0]
        result = ""
        model = S.model
        for r in range(1, rounds + 1):
            u = self.usage(rng.randint(8_000, 40_000) + r * 2_500, S.thinks)
            for i in range(5):
                tot[i] += u[i]
            result = text.get(rng.randint(100, 1500))
            self.api_event(S, model, u, response_text=result, prompt_id=f"{S.sid}#{agent_id}#0", agent=name,
                           agent_fields=fields)
            if new:
                u_ = self.uid()
                parts: list[dict[str, Any]] = [{"text": result}]
                tcid = "call_" + self.hexid(24)
                if r < rounds:
                    parts.append({"functionCall": {"id": tcid, "name": "read_file",
                                                   "args": {"file_path": f"{S.cwd}/src/main.py"}}})
                tr.append(_dumps({"uuid": u_, "parentUuid": tparent, "sessionId": S.sid,
                                  "timestamp": self.fmt(S.t + 2), "type": "assistant",
                                  **{k: v for k, v in base.items() if k != "sessionId"},
                                  "message": {"role": "model", "parts": parts}, "usageMetadata": u[6],
                                  "agentRunId": run_id, "agentRound": r}))
                tparent = u_
                if r < rounds:
                    t2 = self.uid()
                    tr.append(_dumps({"uuid": t2, "parentUuid": tparent, "sessionId": S.sid,
                                      "timestamp": self.fmt(S.t + 400), "type": "tool_result",
                                      **{k: v for k, v in base.items() if k != "sessionId"},
                                      "message": {"role": "user", "parts": [{"functionResponse": {
                                          "id": tcid, "name": "read_file",
                                          "response": {"output": text.get(rng.randint(100, 800))}}}]},
                                      "toolCallResult": {"callId": tcid, "status": "success"}}))
                    tparent = t2
                    S.t += 500
        if new:
            rel = f"projects/{S.proj}/subagents/{S.sid}/agent-{name}-{cid}"
            S.side_files.append((rel + ".jsonl", "\n".join(tr) + "\n"))
            meta = {"agentId": agent_id, "agentType": name, "description": args["description"],
                    "parentSessionId": S.sid, "toolUseId": cid, "parentAgentId": None,
                    "createdAt": self.fmt(created), "status": "completed", "isBackgrounded": False,
                    "lastUpdatedAt": self.fmt(S.t + 40), "resolvedApprovalMode": "yolo", "subagentName": name,
                    "resumeCount": 0, "depth": 0}
            S.side_files.append((rel + ".meta.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n"))
            self.extra["subagent_files"] += 1
            self.extra["subagent_transcript"] += len(tr)
        # the tool result repeats the agent's token sums: not a call either
        return {"type": "task_execution", "subagentName": name, "taskDescription": args["description"],
                "taskPrompt": args["prompt"], "executionMode": "foreground", "status": "completed",
                "tokenCount": tot[1], "terminateReason": "GOAL", "result": result,
                "executionSummary": {"rounds": rounds, "inputTokens": tot[0], "outputTokens": tot[1],
                                     "thoughtTokens": tot[3], "cachedTokens": tot[2], "totalTokens": tot[4]}}

    def background(self, S: _Session) -> None:
        """A background agent run after a turn: only its api_response event in the chat file."""
        rng = self.rng
        if S.client == "new":
            suffix = self.hexid(8)
            agent_id = f"{BG_AGENT}-{suffix}"
            fields = {"subagent_name": BG_AGENT, "subagent_id": agent_id, "subagent_type": BG_AGENT}
        else:
            suffix = "".join(rng.choice(_B36) for _ in range(6))
            agent_id = f"{BG_AGENT}-{suffix}"
            fields = {"subagent_name": BG_AGENT}
        model = S.model if rng.random() < 0.8 else "qwen3-coder-flash"
        u = self.usage(S.ctx // 2 + rng.randint(2_000, 9_000), model != "qwen3-coder-flash" and S.thinks)
        S.t += rng.randint(100, 3000)
        self.api_event(S, model, u, response_text=self.text.get(rng.randint(100, 900)),
                       prompt_id=f"{S.sid}#{agent_id}#0", agent=BG_AGENT, agent_fields=fields)

    # -- turns and sessions --------------------------------------------------------------------------
    def turn(self, S: _Session) -> None:
        rng, text = self.rng, self.text
        S.t += int(rng.expovariate(1 / 240_000)) + 1000
        if S.client != "old" and rng.random() < 0.04:
            S.model, _, S.thinks = rng.choices(MODELS, [m[1] for m in MODELS])[0]
            rec = self.env(S, "system", S.t, "slash_command")
            rec["systemPayload"] = {"phase": "invocation", "rawCommand": f"/model {S.model}"}
            self.emit(S, rec, "system:slash_command", S.t)
            S.t += rng.randint(2000, 30000)
        rec = self.env(S, "user", S.t)
        rec["message"] = {"role": "user", "parts": [{"text": text.get(rng.randint(60, 900))}]}
        self.emit(S, rec, "user", S.t)
        S.prompts += 1
        S.prompt_id = f"{S.sid}########{S.prompts - 1}" if S.client == "new" else self.hexid(13)
        if S.client != "old":
            ms = self.advance(S, rng.randint(5, 30))
            rec = self.env(S, "system", ms, "attribution_snapshot")
            rec["systemPayload"] = {"snapshot": {"type": "attribution-snapshot", "version": 1, "surface": "cli",
                                                 "fileStates": {}, "promptCount": S.prompts,
                                                 "promptCountAtLastCommit": 0}}
            self.emit(S, rec, "system:attribution_snapshot", ms)
        for rnd in range(12):
            fcalls, rid = self.main_call(S)
            if rnd == 0 and S.client != "old" and rng.random() < 0.35:
                rec = self.env(S, "system", S.t + 3, "custom_title")
                rec["systemPayload"] = {"customTitle": text.get(rng.randint(20, 60)), "titleSource": "auto"}
                self.emit(S, rec, "system:custom_title", S.t + 3)
            if not fcalls:
                break
            for tool, cid, args, agent in fcalls:
                display = self.subagent(S, agent, cid, args) if agent else None
                self.tool(S, tool, cid, args, rid, display)
        if S.client != "old" and rng.random() < self.o["bg_rate"]:
            self.background(S)

    def new_session(self, t: int) -> _Session:
        rng = self.rng
        cwd = rng.choice(self.cwds)
        r = rng.random()
        client = "old" if r < self.o["old_version_rate"] else (
            "new" if rng.random() < self.o["new_client_rate"] else "mid")
        model, _, thinks = rng.choices(MODELS, [m[1] for m in MODELS])[0]
        return _Session(self.uid(), cwd.replace("/", "-"), cwd, client, rng.choice(CLIENT_VERSIONS[client]),
                        rng.choice(("main", "main", "fix/cache-bug", "feature/usage-report")), model, thinks, t,
                        rng.randint(8_000, 20_000))

    def fork(self, S: _Session) -> _Session:
        """/branch: a new session whose file starts with a verbatim copy of S's first lines."""
        rng = self.rng
        k = rng.randint(2, len(S.lines) - 1)
        with_tel = S.client != "old" and rng.random() < self.o["fork_telemetry_rate"]
        F = _Session(self.uid(), S.proj, S.cwd, S.client, S.version, S.branch, S.model, S.thinks,
                     S.ms[k - 1] + rng.randint(60_000, 3_600_000), S.ctx)
        old_sid = f'"sessionId":"{S.sid}"'
        new_sid = f'"sessionId":"{F.sid}"'
        for i in range(k):
            kind = S.kinds[i]
            if kind in _TELEMETRY and not with_tel:
                continue
            line = S.lines[i]
            uuid = line[9:45]  # {"uuid":"<36>"
            F.lines.append(line.replace(old_sid, new_sid, 1)[:-1]
                           + f',"forkedFrom":{{"sessionId":"{S.sid}","messageUuid":"{uuid}"}}}}')
            F.kinds.append(kind)
            F.ms.append(S.ms[i])
            F.parent = uuid
            if kind == "assistant":
                day, model, um = S.asst[i]
                self.add_naive(day, model, um)
                self.fork_copied["assistant_with_usage"] += 1
            elif kind == "api_response":
                self.fork_copied["api_response"] += 1
            elif kind == "user":
                F.prompts += 1
        self.fork_files += 1
        self.forks_with_telemetry += with_tel
        return F

    def write_session(self, S: _Session) -> tuple[Path, int]:
        archived = self.rng.random() < self.o["archive_rate"]
        d = self.out / "projects" / S.proj / "chats"
        if archived:
            d = d / "archive"
            self.archived += 1
        if d not in self.new_dirs:
            d.mkdir(parents=True, exist_ok=True)
            self.new_dirs.add(d)
        path = d / f"{S.sid}.jsonl"
        data = ("\n".join(S.lines) + "\n").encode()
        path.write_bytes(data)
        self.files += 1
        self.projs.add(S.proj)
        self.clients[S.client] += 1
        self.kinds.update(S.kinds)
        for rel, content in S.side_files:
            p = self.out / rel
            if p.parent not in self.new_dirs:
                p.parent.mkdir(parents=True, exist_ok=True)
                self.new_dirs.add(p.parent)
            raw = content.encode()
            p.write_bytes(raw)
            self.extra_bytes += len(raw)
        if S.client == "new" and S.models:
            self.usage_record.append((S.t, _dumps({
                "version": 1, "sessionId": S.sid, "timestamp": S.t + 5000, "startTime": S.start,
                "project": S.cwd, "durationMs": S.t + 5000 - S.start,
                "totalLatencyMs": sum(m[6] for m in S.models.values()),
                "models": {name: {"requests": m[0], "inputTokens": m[1], "outputTokens": m[2], "cachedTokens": m[3],
                                  "thoughtsTokens": m[4], "totalTokens": m[5], "totalLatencyMs": m[6]}
                           for name, m in S.models.items()},
                "tools": {"totalCalls": sum(S.tools.values()), "totalSuccess": sum(S.tools.values()), "totalFail": 0,
                          "byName": {n: {"count": c, "success": c, "fail": 0, "totalDurationMs": S.tool_ms[n]}
                                     for n, c in S.tools.items()}},
                "files": {"linesAdded": 0, "linesRemoved": 0},
                "skills": {"totalCalls": 0, "totalSuccess": 0, "totalFail": 0, "byName": {}}})))
        return path, len(data)

    def truncated_event(self, S: _Session) -> tuple[str, dict[str, Any]]:
        """The last line of a crashed session: an api_response event cut short (its call never counts)."""
        rng = self.rng
        S.ctx += rng.randint(200, 4000)
        u = self.usage(S.ctx, S.thinks)
        while u[5]:
            u = self.usage(S.ctx, S.thinks)
        dur = rng.randint(800, 60000)
        ms = self.advance(S, dur)
        rec = self.env(S, "system", ms + 1, "ui_telemetry")
        ev = {"event.name": "qwen-code.api_response", "event.timestamp": self.fmt(ms),
              "response_id": "chatcmpl-" + self.hexid(32), "model": S.model, "status_code": 200, "duration_ms": dur,
              "input_token_count": u[0], "output_token_count": u[1], "cached_content_token_count": u[2],
              "thoughts_token_count": u[3], "total_token_count": u[4], "prompt_id": S.prompt_id or S.sid,
              "auth_type": "openai"}
        rec["systemPayload"] = {"uiEvent": ev}
        line = _dumps(rec)
        line = line[:line.index('"total_token_count"')]
        return line, {"date": ev["event.timestamp"][:10], "model": S.model, "record": "ui_telemetry api_response",
                      "promptTokenCount": u[0], "candidatesTokenCount": u[1], "thoughtsTokenCount": u[3],
                      "totalTokenCount": u[4], "cachedContentTokenCount": u[2]}


def _rows(acc: dict[tuple[str, str], list[int]]) -> list[dict[str, Any]]:
    return [{"date": d, "model": m, **_named(v)} for (d, m), v in sorted(acc.items())]


def _group(acc: dict[tuple[str, str], list[int]], idx: int) -> dict[str, dict[str, int]]:
    out: dict[str, list[int]] = defaultdict(_acc)
    for key, v in acc.items():
        o = out[key[idx]]
        for i in range(6):
            o[i] += v[i]
    return {k: _named(v) for k, v in sorted(out.items())}


def _total(acc: dict[Any, list[int]]) -> dict[str, int]:
    t = _acc()
    for v in acc.values():
        for i in range(6):
            t[i] += v[i]
    return _named(t)


def gen_qwen_code(out: str | Path, lines: int, *, seed: int = 1, days: int = 7, start: str = "2026-03-02",
                  projects: int = 3, fork_rate: float = 0.1, fork_telemetry_rate: float = 0.5,
                  old_version_rate: float = 0.08, new_client_rate: float = 0.6, bg_rate: float = 0.3,
                  agent_rate: float = 0.05, archive_rate: float = 0.03, error_rate: float = 0.005,
                  total_only_rate: float = 0.003, truncated: bool = True, quirks: bool = False,
                  session_lines: tuple[int, int] = (20, 400)) -> dict[str, Any]:
    """Write a Qwen Code runtime dir ``out`` with about ``lines`` chat-file lines; return the expected sums.

    ``old_version_rate``: share of old-client (0.0.x/0.1.x) sessions; ``new_client_rate``: share of
    the others that are new-client (0.24.x), the rest mid-client (0.15.x). ``fork_rate``: chance a
    session is forked with ``/branch``; ``fork_telemetry_rate``: chance a fork copies the telemetry
    lines too. ``bg_rate``: chance a turn ends with a background-agent call; ``agent_rate``: chance a
    tool call is a subagent (1-3 calls). ``error_rate``: chance a main round is preceded by a failed
    call; ``total_only_rate``: chance a call reports only its total. ``truncated``: end one chat file
    with a truncated api_response event; ``quirks``: also add a NUL garbage line.
    """
    t_start = time.perf_counter()
    rng = random.Random(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opts = {"fork_rate": fork_rate, "fork_telemetry_rate": fork_telemetry_rate, "old_version_rate": old_version_rate,
            "new_client_rate": new_client_rate, "bg_rate": bg_rate, "agent_rate": agent_rate,
            "archive_rate": archive_rate, "error_rate": error_rate, "total_only_rate": total_only_rate}
    g = _Tree(out, rng, opts)
    names = ("tokenmeter", "web-shop", "infra", "ml-lab", "docs")
    g.cwds = [f"/home/dev/work/{names[i] if i < len(names) else f'project-{i}'}" for i in range(projects)]
    t0 = int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp() * 1000)
    span = days * _DAY_MS
    written = 0
    nbytes = 0
    trunc_target: tuple[Path, _Session] | None = None
    while written < lines:
        S = g.new_session(t0 + rng.randrange(span))
        n_lines = min(rng.randint(*session_lines), lines - written)
        while len(S.lines) < n_lines:
            g.turn(S)
        path, n = g.write_session(S)
        written += len(S.lines)
        nbytes += n
        if S.client != "old" and "archive" not in path.parts:
            trunc_target = (path, S)
        if rng.random() < fork_rate and written < lines and len(S.lines) > 4:
            F = g.fork(S)
            more = min(rng.randint(0, session_lines[1] // 2), lines - written - len(F.lines))
            if more > 0:
                n_lines = len(F.lines) + more
                while len(F.lines) < n_lines:
                    g.turn(F)
            path, n = g.write_session(F)
            written += len(F.lines)
            nbytes += n
        del S

    # the ledger (one line per call of new clients, in time order) and the per-session sums
    ledger_files = 0
    by_month: dict[str, list[str]] = defaultdict(list)
    for ts, line in sorted(g.ledger):
        by_month[ts[:7]].append(line)
    if by_month:
        (out / "usage").mkdir(exist_ok=True)
    for month, rows in sorted(by_month.items()):
        data = ("\n".join(rows) + "\n").encode()
        (out / "usage" / f"token-usage-{month}.jsonl").write_bytes(data)
        g.extra_bytes += len(data)
        ledger_files += 1
    if g.usage_record:
        data = ("\n".join(line for _, line in sorted(g.usage_record)) + "\n").encode()
        (out / "usage_record.jsonl").write_bytes(data)
        g.extra_bytes += len(data)

    expected_extra: dict[str, Any] = {}
    excluded: dict[str, Any] = {}
    line_counts = Counter(g.kinds)
    chats = sorted((out / "projects").glob("*/chats/*.jsonl"))
    if quirks and chats:  # a NUL garbage line, as left by a crash on some filesystems
        target = chats[0] if trunc_target is None or chats[0] != trunc_target[0] or len(chats) < 2 else chats[1]
        with open(target, "ab") as f:
            f.write(b"\x00" * 64 + b"\n")
        expected_extra["garbage"] = f"{target}:{_count_lines(target)}"
        line_counts["garbage"] += 1
        written += 1
        nbytes += 65
    if truncated and trunc_target is not None:  # not counted until the writer completes it
        path, S = trunc_target
        tline, excluded["truncated_line_usage"] = g.truncated_event(S)
        with open(path, "ab") as f:
            f.write(tline.encode())
        excluded["truncated_line_file"] = str(path.relative_to(out))
        line_counts["truncated"] += 1
        written += 1
        nbytes += len(tline.encode())
    g.extra["ledger"] = len(g.ledger)
    g.extra["usage_record"] = len(g.usage_record)

    by_day_model = _rows(g.sums)
    totals = _total(g.sums)
    naive_totals = _total(g.naive)
    counts = {k: v for k, v in sorted(line_counts.items())}
    kinds_out = {("system:ui_telemetry:" + k if k in _TELEMETRY else k): v for k, v in counts.items()}
    result: dict[str, Any] = {
        "generator": "benchmarks/gen_logs.py",
        "generator_version": GENERATOR_VERSION,
        "args": {"lines": lines, "seed": seed, "days": days, "start": start, "projects": projects, **opts,
                 "truncated": truncated, "quirks": quirks, "session_lines": list(session_lines)},
        "layout": {
            "root": ".",
            "glob": "projects/*/chats/*.jsonl",
            "archive_glob": "projects/*/chats/archive/*.jsonl",
            "subagents_glob": "projects/*/subagents/*/agent-*.jsonl",
            "ledger_glob": "usage/token-usage-*.jsonl",
            "usage_record": "usage_record.jsonl (per-session summaries: never count)",
        },
        "day_basis": "UTC date of each API call's event.timestamp (= its assistant line's date; a call's records "
                     "never straddle midnight)",
        "semantics": {
            "prompt": "sum input_token_count / promptTokenCount (includes cached) = input",
            "candidates": "sum output_token_count / candidatesTokenCount (includes thoughts) = output",
            "cached": "sum cached_content_token_count / cachedContentTokenCount (subset of prompt) = cache reads",
            "thoughts": "sum thoughts_token_count / thoughtsTokenCount (subset of candidates; key absent on 0.0.x "
                        "records) = reasoning",
            "total": "sum total_token_count / totalTokenCount (= prompt + candidates)",
            "requests": "distinct API calls, main and background/subagent",
            "totals": "each API call once: one per distinct response_id of successful (status_code 200) "
                      "ui_telemetry qwen-code.api_response events in chats/ and chats/archive/, plus one per "
                      "distinct assistant uuid for calls without such an event (old clients); fork copies, "
                      "subagent transcripts, the usage ledger and usage_record.jsonl never add calls",
            "errors": "api_response events with status_code 429/500 (input/output 0, some with a response_id) "
                      "are not usage and not requests",
            "total_only": "calls whose backend reported only total_tokens (event: input/output/cached 0; assistant "
                          "line: no promptTokenCount/candidatesTokenCount): requests with their total, prompt/"
                          "candidates/cached/thoughts 0 (any thoughtsTokenCount on them is the client's estimate), "
                          "unpriced",
            "naive_totals": "every assistant line with usageMetadata in chats/ and chats/archive/, fork copies "
                            "included; background/subagent calls without an assistant line missing",
            "by_agent": "totals split by caller: main, or the subagent name (subagent_name / agentName); "
                        "by_day_model_agent: per UTC day x model x caller",
            "by_client": "totals split by client generation: new (0.24.x, also in the usage ledger), mid (0.15.x), "
                         "old (0.0.x/0.1.x)",
            "calls_without_assistant_line": "calls whose only chats-file record is the api_response event",
        },
        "stats": {
            "lines": written, "bytes": nbytes, "files": g.files, "session_files": g.files - g.fork_files,
            "fork_files": g.fork_files, "archived_files": g.archived, "forks_with_telemetry": g.forks_with_telemetry,
            "files_by_client": dict(sorted(g.clients.items())), "projects_used": len(g.projs),
            "extra_lines": dict(sorted(g.extra.items())), "extra_bytes": g.extra_bytes, "ledger_files": ledger_files,
            "line_counts": kinds_out,
            "api_calls": {"main": g.calls["main"], "agent": g.calls["agent"], "errors": g.calls["error"],
                          "total_only": g.total_only[0]},
            "fork_copied": dict(sorted(g.fork_copied.items())),
            "naive_requests": naive_totals["requests"],
        },
        "excluded": excluded,
        "totals": totals,
        "by_model": _group(g.sums, 1),
        "by_day": _group(g.sums, 0),
        "by_day_model": by_day_model,
        "by_agent": {k: _named(v) for k, v in sorted(g.by_agent.items())},
        "by_day_model_agent": [{"date": d, "model": m, "agent": a, **_named(v)}
                               for (d, m, a), v in sorted(g.sums_agent.items())],
        "by_client": {k: _named(v) for k, v in sorted(g.by_client.items())},
        "total_only": {"requests": g.total_only[0], "total": g.total_only[1],
                       "estimated_thoughts_not_counted": g.total_only[2]},
        "calls_without_assistant_line": g.no_assistant,
        "naive_totals": naive_totals,
        "naive_by_day": _group(g.naive, 0),
        "naive_by_day_model": _rows(g.naive),
        **expected_extra,
    }
    (out / "expected.json").write_text(json.dumps(result, indent=1) + "\n")
    result["stats"]["gen_seconds"] = round(time.perf_counter() - t_start, 1)  # returned, not written
    return result


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


TSV_PRICES = {  # USD per 1M tokens (input, output), as the orchestrator logged them
    "qwen-plus-latest": ("0.4", "1.2"),
    "qwen-max-latest": ("1.6", "6.4"),
    "qwen3-coder-plus": ("1.0", "5.0"),
    "qwen3.5-plus": ("0.4", "2.4"),
    "qwen-flash": ("0.05", "0.4"),
}
PROVIDERS = ("qwen-singapore", "qwen-virginia", "qwen-beijing")
HEADER = "timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd"


def gen_tsv(out: str | Path, lines: int, *, seed: int = 1, days: int = 7, start: str = "2026-03-02",
            quirks: bool = True) -> dict[str, Any]:
    """Write a TSV usage log with ``lines`` data rows; return per day x model x provider sums.

    Quirks: a repeated header mid-file, identical adjacent lines (two calls), no final newline.
    """
    rng = random.Random(seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t = datetime.fromisoformat(start).replace(tzinfo=UTC)
    step = days * 86400 / max(lines, 1)
    sums: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    rows = [HEADER]
    last = ""
    for i in range(lines):
        if quirks and i == lines // 2:
            rows.append(HEADER)
        if quirks and last and rng.random() < 0.02:
            row = last  # the same call logged twice in the same second: two calls
        else:
            t += timedelta(seconds=rng.expovariate(1 / step))
            model = rng.choice(list(TSV_PRICES))
            prov = rng.choice(PROVIDERS)
            inp, outp = rng.randint(50, 20_000), rng.randint(1, 3_000)
            pin, pout = (Decimal(x) for x in TSV_PRICES[model])
            cost = (inp * pin + outp * pout) / Decimal(1_000_000)
            cost_s = cost.quantize(Decimal("0.000001"))
            row = f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')}\t{model}\t{prov}\t{inp}\t{outp}\t{cost_s}"
        rows.append(row)
        last = row
        ts, model, prov, inp_s, out_s, cost_s = row.split("\t")
        acc = sums[(ts[:10], model, prov)]
        acc["requests"] += 1
        acc["input_tokens"] += int(inp_s)
        acc["output_tokens"] += int(out_s)
        acc["cost_usd"] = str(Decimal(acc["cost_usd"] or 0) + Decimal(cost_s))
    body = "\n".join(rows) + ("" if quirks else "\n")
    out.write_text(body, encoding="utf-8")
    by = [{"date": d, "model": m, "provider": p, **dict(v)} for (d, m, p), v in sorted(sums.items())]
    result = {"generator": "benchmarks/gen_logs.py", "args": {"lines": lines, "seed": seed, "quirks": quirks},
              "totals": {"requests": sum(r["requests"] for r in by),
                         "input_tokens": sum(r["input_tokens"] for r in by),
                         "output_tokens": sum(r["output_tokens"] for r in by),
                         "cost_usd": str(sum((Decimal(r["cost_usd"]) for r in by), Decimal(0)))},
              "by_day_model_provider": by}
    Path(str(out) + ".expected.json").write_text(json.dumps(result, indent=1))
    return result


def _shorten(obj: Any, n: int = 160) -> Any:
    if isinstance(obj, str):
        return obj[:n]
    if isinstance(obj, list):
        return [_shorten(v, n) for v in obj]
    if isinstance(obj, dict):
        return {k: _shorten(v, n) for k, v in obj.items()}
    return obj


def gen_demo(out: str | Path, *, seed: int = 2026) -> dict[str, Any]:
    """The sample data ``tokenmeter demo`` runs (plugins/dashscope_log/demo_data): a week in March 2026.

    Only the chat files are shipped (no archive, transcripts or ledger); message texts are cut short
    so the package stays small; token numbers are untouched.
    """
    import shutil
    import tempfile

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        qc = gen_qwen_code(tmp / "qwen", 420, seed=seed, days=5, start="2026-03-09", projects=2,
                           fork_rate=0.25, old_version_rate=0.1, archive_rate=0.0, truncated=False,
                           session_lines=(15, 60))
        shutil.rmtree(out / "qwen", ignore_errors=True)
        for f in sorted((tmp / "qwen").glob("projects/*/chats/*.jsonl")):
            lines = []
            for line in f.read_text(encoding="utf-8").splitlines():
                d = json.loads(line)
                for key in ("message", "systemPayload", "toolCallResult"):
                    if key in d:
                        d[key] = _shorten(d[key])
                lines.append(_dumps(d))
            dest = out / "qwen" / f.relative_to(tmp / "qwen")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tsv = gen_tsv(tmp / "qwen-usage.tsv", 150, seed=seed, days=5, start="2026-03-09", quirks=False)
        shutil.copy(tmp / "qwen-usage.tsv", out / "qwen-usage.tsv")
    expected = {"note": "totals `tokenmeter demo` must show; made by benchmarks/gen_logs.py demo",
                "qwen-code": {"totals": qc["totals"], "by_day_model": qc["by_day_model"]},
                "dashscope-log": {"totals": tsv["totals"], "by_day_model_provider": tsv["by_day_model_provider"]}}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return expected


# the dashscope-log plugin ships the demo data and offers it through Source.demo_settings
DEMO_DATA = Path(__file__).resolve().parent.parent / "plugins" / "dashscope_log" / "demo_data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("kind", choices=["qwen-code", "tsv", "demo"])
    ap.add_argument("--lines", type=int, default=0, help="qwen-code: chat-file lines; tsv: rows")
    ap.add_argument("--out", help=f"output folder (required, except for demo: default {DEMO_DATA})")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--start", default="2026-03-02")
    ap.add_argument("--quirks", action="store_true", help="qwen-code: add a NUL garbage line")
    q = ap.add_argument_group("qwen-code shapes (rates are probabilities)")
    q.add_argument("--projects", type=int, default=3)
    q.add_argument("--fork-rate", type=float, default=0.1, help="a session is forked with /branch")
    q.add_argument("--fork-telemetry-rate", type=float, default=0.5, help="a fork copies the telemetry lines too")
    q.add_argument("--old-version-rate", type=float, default=0.08, help="old-client (0.0.x/0.1.x) sessions")
    q.add_argument("--new-client-rate", type=float, default=0.6,
                   help="of the other sessions: new client (0.24.x, ledger + transcripts); the rest 0.15.x")
    q.add_argument("--bg-rate", type=float, default=0.3, help="a turn ends with a background-agent call")
    q.add_argument("--agent-rate", type=float, default=0.05, help="a tool call starts a subagent")
    q.add_argument("--archive-rate", type=float, default=0.03, help="a session file is in chats/archive/")
    q.add_argument("--error-rate", type=float, default=0.005, help="a main round follows a 429/500 error event")
    q.add_argument("--total-only-rate", type=float, default=0.003, help="a call reports only total_tokens")
    q.add_argument("--no-truncated", dest="truncated", action="store_false",
                   help="do not end a chat file with a truncated line (e.g. for trees that get appended to)")
    args = ap.parse_args(argv)
    if args.out is None:
        if args.kind != "demo":
            ap.error("--out is required")
        args.out = str(DEMO_DATA)
    t0 = time.perf_counter()
    if args.kind == "demo":
        res = gen_demo(args.out, seed=args.seed if args.seed != 1 else 2026)
        print(f"demo data -> {args.out}: {res['qwen-code']['totals']['requests']} Qwen Code calls, "
              f"{res['dashscope-log']['totals']['requests']} TSV rows")
    elif args.kind == "qwen-code":
        res = gen_qwen_code(args.out, args.lines, seed=args.seed, days=args.days, start=args.start,
                            projects=args.projects, fork_rate=args.fork_rate,
                            fork_telemetry_rate=args.fork_telemetry_rate, old_version_rate=args.old_version_rate,
                            new_client_rate=args.new_client_rate, bg_rate=args.bg_rate, agent_rate=args.agent_rate,
                            archive_rate=args.archive_rate, error_rate=args.error_rate,
                            total_only_rate=args.total_only_rate, truncated=args.truncated, quirks=args.quirks)
        st = res["stats"]
        print(f"{st['lines']} lines, {st['bytes'] / 1e6:.0f} MB, {st['files']} files"
              f" (+{sum(st['extra_lines'].values())} ledger/transcript/usage_record lines),"
              f" {res['totals']['requests']} API calls ({st['api_calls']['agent']} by agents,"
              f" naive {st['naive_requests']}) in {time.perf_counter() - t0:.1f} s -> {args.out}")
    else:
        res = gen_tsv(args.out, args.lines, seed=args.seed, days=args.days, start=args.start)
        print(f"{res['totals']['requests']} rows in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
