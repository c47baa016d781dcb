"""Generate realistic Qwen Code chat trees and DashScope TSV usage logs (reproducible with --seed).

    python benchmarks/gen_logs.py qwen-code --lines 1000000 --out DIR   # DIR/projects/*/chats/*.jsonl
    python benchmarks/gen_logs.py tsv --lines 100000 --out FILE
    python benchmarks/gen_logs.py demo --out tokenmeter/demo/data       # the demo's sample data

Each run writes the per UTC day x model sums a correct reader must produce to ``<out>.expected.json``
(qwen-code: DIR/expected.json) and also returns them from ``gen_qwen_code`` / ``gen_tsv``.
Qwen Code trees have user, assistant (1-8 KB of message text, function calls, CJK and emoji),
tool_result and system lines (ui_telemetry carrying token numbers, custom_title, slash_command),
``/branch`` forks that copy earlier lines with the same uuid, and old-version assistant records
without ``thoughtsTokenCount``. ``--quirks`` adds a NUL garbage line and a truncated last line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid as uuidlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

MODELS = [  # (name, weight, thinks)
    ("qwen3-coder-plus", 40, False),
    ("qwen3.5-plus", 30, True),
    ("qwen3-coder-flash", 15, False),
    ("qwen-max", 8, True),
    ("qwen-plus", 7, True),
]
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
    "$ npm test -- --coverage\n  PASS  src/report.test.ts (12 tests)\n",
    "SELECT date, model, SUM(input_tokens) FROM usage GROUP BY 1, 2;\n",
    "\tindented\ttabs and a backslash \\ and quotes \"like this\"\n",
]
TOOLS = ["read_file", "run_shell_command", "list_directory", "write_file", "grep_search", "edit"]


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
        i = self.rng.randrange(0, len(self.pool) - n - 1)
        return self.pool[i:i + n]


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def gen_qwen_code(out: str | Path, lines: int, *, seed: int = 1, days: int = 7, start: str = "2026-03-02",
                  projects: int = 3, fork_rate: float = 0.1, old_version_rate: float = 0.08,
                  quirks: bool = False, session_lines: tuple[int, int] = (20, 400)) -> dict[str, Any]:
    """Write ``out/projects/<p>/chats/<session>.jsonl`` with about ``lines`` lines; return expected sums."""
    rng = random.Random(seed)
    text = _Text(rng)
    out = Path(out)
    t0 = datetime.fromisoformat(start).replace(tzinfo=UTC)
    span = days * 86400
    names = ("tokenmeter", "web-shop", "infra", "ml-lab", "docs")[:projects]
    cwds = [f"/home/dev/work/{name}" for name in names]
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    naive_requests = 0
    written = 0
    nbytes = 0
    files = 0
    models = [m for m in MODELS]
    weights = [m[1] for m in models]

    def uid() -> str:
        return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))

    while written < lines:
        cwd = rng.choice(cwds)
        proj_dir = out / "projects" / cwd.replace("/", "-") / "chats"
        proj_dir.mkdir(parents=True, exist_ok=True)
        session = uid()
        old = rng.random() < old_version_rate
        version = "0.9.1" if old else rng.choice(["0.14.2", "0.16.0"])
        branch = rng.choice(["main", "main", "fix/cache-bug", "feat/report"])
        ts = t0 + timedelta(seconds=rng.uniform(0, span))
        n_lines = min(rng.randint(*session_lines), lines - written)
        model, _, thinks = rng.choices(models, weights)[0]
        prompt = rng.randint(8_000, 20_000)
        parent: str | None = None
        out_lines: list[str] = []
        calls: list[tuple[int, str, str, dict[str, int]]] = []  # (line index, day, model, usage)

        def base(typ: str, sub: str | None = None, session: str = session, cwd: str = cwd,
                 version: str = version, branch: str = branch) -> dict[str, Any]:
            nonlocal parent, ts
            ts += timedelta(seconds=rng.expovariate(1 / 20))
            u = uid()
            rec: dict[str, Any] = {"uuid": u, "parentUuid": parent, "sessionId": session,
                                   "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                                   "type": typ}
            if sub:
                rec["subtype"] = sub
            rec.update({"cwd": cwd, "version": version, "gitBranch": branch})
            parent = u
            return rec

        state = "user"
        while len(out_lines) < n_lines:
            if state == "user":
                if rng.random() < 0.05:
                    r = base("system", "slash_command")
                    new_model = rng.choices(models, weights)[0]
                    model, thinks = new_model[0], new_model[2]
                    r["systemPayload"] = {"phase": "invocation", "rawCommand": f"/model {model}"}
                    out_lines.append(_dumps(r))
                    continue
                r = base("user")
                r["provenance"] = "real_user"
                r["message"] = {"role": "user", "parts": [{"text": text.get(rng.randint(60, 900))}]}
                out_lines.append(_dumps(r))
                state = "assistant"
            elif state == "assistant":
                r = base("assistant")
                r["provenance"] = "assistant_output"
                size = rng.randint(600, 6800)
                parts: list[dict[str, Any]] = [{"text": text.get(size)}]
                tool = rng.random() < 0.6
                if tool:
                    parts.append({"functionCall": {"id": f"call_{rng.getrandbits(96):024x}",
                                                   "name": rng.choice(TOOLS),
                                                   "args": {"command": text.get(rng.randint(10, 120))}}})
                r["message"] = {"role": "model", "parts": parts}
                r["model"] = model
                prompt += rng.randint(200, 4000)
                cached = 0 if rng.random() < 0.3 else (int(prompt * rng.uniform(0.3, 0.9)) // 64) * 64
                cand = rng.randint(20, 3000)
                thoughts = rng.randint(0, cand // 2) if thinks else 0
                usage = {"promptTokenCount": prompt, "candidatesTokenCount": cand}
                if not old:
                    usage["thoughtsTokenCount"] = thoughts
                usage["totalTokenCount"] = prompt + cand
                usage["cachedContentTokenCount"] = cached
                r["usageMetadata"] = usage
                r["contextWindowSize"] = 1_000_000
                out_lines.append(_dumps(r))
                calls.append((len(out_lines) - 1, r["timestamp"][:10], model, usage))
                tel = base("system", "ui_telemetry")
                tel["systemPayload"] = {"uiEvent": {
                    "event.name": "qwen-code.api_response", "event.timestamp": tel["timestamp"],
                    "model": model, "status_code": 200, "duration_ms": rng.randint(800, 60000),
                    "input_token_count": prompt, "output_token_count": cand,
                    "cached_content_token_count": cached, "thoughts_token_count": thoughts,
                    "tool_token_count": 0, "total_token_count": prompt + cand, "auth_type": "openai"}}
                out_lines.append(_dumps(tel))
                if rng.random() < 0.1:
                    t = base("system", "custom_title")
                    t["systemPayload"] = {"customTitle": text.get(30), "titleSource": "auto"}
                    out_lines.append(_dumps(t))
                state = "tool" if tool else "user"
            else:
                r = base("tool_result")
                r["provenance"] = "tool_result"
                call = f"call_{rng.getrandbits(96):024x}"
                output = text.get(rng.randint(100, 2000))
                r["message"] = {"role": "user", "parts": [{"functionResponse": {
                    "id": call, "name": rng.choice(TOOLS), "response": {"output": output}}}]}
                r["toolCallResult"] = {"callId": call, "status": "success"}
                out_lines.append(_dumps(r))
                tel = base("system", "ui_telemetry")
                tel["systemPayload"] = {"uiEvent": {"event.name": "qwen-code.tool_call", "duration_ms": 120,
                                                    "status": "success", "success": True}}
                out_lines.append(_dumps(tel))
                state = "assistant" if rng.random() < 0.7 else "user"
        out_lines = out_lines[:n_lines]
        body = "\n".join(out_lines) + "\n"
        (proj_dir / f"{session}.jsonl").write_text(body, encoding="utf-8")
        files += 1
        written += len(out_lines)
        nbytes += len(body.encode())
        for idx, day, m, usage in calls:
            if idx < len(out_lines):
                _add(sums[(day, m)], usage)
                naive_requests += 1
        # a /branch fork: a new session file starting with a verbatim copy of earlier lines
        if rng.random() < fork_rate and written < lines and len(out_lines) > 4:
            k = min(rng.randint(2, len(out_lines) - 1), lines - written)
            fork = uid()
            copied = [line.replace(session, fork) for line in out_lines[:k]]
            for line in copied:
                if '"type":"assistant"' in line[:250]:
                    naive_requests += 1
            fbody = "\n".join(copied) + "\n"
            (proj_dir / f"{fork}.jsonl").write_text(fbody, encoding="utf-8")
            files += 1
            written += k
            nbytes += len(fbody.encode())

    expected_extra: dict[str, Any] = {}
    if quirks:
        chats = sorted((out / "projects").glob("*/chats/*.jsonl"))
        with open(chats[0], "ab") as f:  # a NUL garbage line, as left by a crash on some filesystems
            f.write(b"\x00" * 64 + b"\n")
        expected_extra["garbage"] = f"{chats[0]}:{_count_lines(chats[0])}"
        # a truncated last line (no newline): not counted until it is completed
        trunc = _dumps({"uuid": uid(), "parentUuid": None, "sessionId": "x",
                        "timestamp": "2026-03-02T10:00:00Z", "type": "assistant",
                        "cwd": cwds[0], "message": {"role": "model", "parts": []},
                        "model": "qwen3-coder-plus", "usageMetadata": {"promptTokenCount": 5}})[:-30]
        with open(chats[-1], "ab") as f:
            f.write(trunc.encode())
        nbytes += 65 + len(trunc)

    by_day_model = [{"date": d, "model": m, **dict(v)} for (d, m), v in sorted(sums.items())]
    totals: dict[str, int] = defaultdict(int)
    for row in by_day_model:
        for k, v in row.items():
            if k not in ("date", "model"):
                totals[k] += v
    result = {"generator": "benchmarks/gen_logs.py", "args": {"lines": lines, "seed": seed, "days": days,
              "start": start, "projects": projects, "fork_rate": fork_rate, "quirks": quirks},
              "stats": {"lines": written, "bytes": nbytes, "files": files, "naive_requests": naive_requests},
              "totals": dict(totals), "by_day_model": by_day_model, **expected_extra}
    (out / "expected.json").write_text(json.dumps(result, indent=1))
    return result


def _add(acc: dict[str, int], usage: dict[str, int]) -> None:
    acc["prompt"] += usage["promptTokenCount"]
    acc["candidates"] += usage["candidatesTokenCount"]
    acc["cached"] += usage["cachedContentTokenCount"]
    acc["thoughts"] += usage.get("thoughtsTokenCount", 0)
    acc["total"] += usage["totalTokenCount"]
    acc["requests"] += 1


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


def gen_demo(out: str | Path, *, seed: int = 2026) -> dict[str, Any]:
    """The sample data ``tokenmeter demo`` ships (tokenmeter/demo/data): a week in March 2026.

    Message texts are cut short so the package stays small; token numbers are untouched.
    """
    import shutil
    import tempfile

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        qc = gen_qwen_code(tmp / "qwen", 420, seed=seed, days=5, start="2026-03-09", projects=2,
                           fork_rate=0.25, old_version_rate=0.1, session_lines=(15, 60))
        shutil.rmtree(out / "qwen", ignore_errors=True)
        for f in sorted((tmp / "qwen").glob("projects/*/chats/*.jsonl")):
            lines = []
            for line in f.read_text(encoding="utf-8").splitlines():
                d = json.loads(line)
                for part in (d.get("message") or {}).get("parts", []):
                    if "text" in part:
                        part["text"] = part["text"][:160]
                    if "functionResponse" in part:
                        resp = part["functionResponse"]["response"]
                        resp["output"] = resp["output"][:160]
                    if "functionCall" in part:
                        args = part["functionCall"]["args"]
                        args["command"] = args["command"][:60]
                if d.get("subtype") == "custom_title":
                    d["systemPayload"]["customTitle"] = d["systemPayload"]["customTitle"][:30]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["qwen-code", "tsv", "demo"])
    ap.add_argument("--lines", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--start", default="2026-03-02")
    ap.add_argument("--quirks", action="store_true", help="qwen-code: add a garbage and a truncated line")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.kind == "demo":
        res = gen_demo(args.out, seed=args.seed if args.seed != 1 else 2026)
        print(f"demo data -> {args.out}: {res['qwen-code']['totals']['requests']} Qwen Code calls, "
              f"{res['dashscope-log']['totals']['requests']} TSV rows")
    elif args.kind == "qwen-code":
        res = gen_qwen_code(args.out, args.lines, seed=args.seed, days=args.days, start=args.start,
                            quirks=args.quirks)
        st = res["stats"]
        print(f"{st['lines']} lines, {st['bytes'] / 1e6:.0f} MB, {st['files']} files,"
              f" {res['totals']['requests']} API calls in {time.perf_counter() - t0:.1f} s -> {args.out}")
    else:
        res = gen_tsv(args.out, args.lines, seed=args.seed, days=args.days, start=args.start)
        print(f"{res['totals']['requests']} rows in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
