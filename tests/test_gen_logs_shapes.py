"""benchmarks/gen_logs.py writes what the real Qwen Code client writes, and its expected.json is right.

The tree is re-read here independently of the generator's internals: every distinct API call once
(one per distinct response_id of successful api_response events in chats/ and chats/archive/, plus
one per assistant line without such an event), and the generator's own invariants (telemetry +
assistant line for main calls, events only for agent calls, ledger = calls of new clients, forks
copy lines verbatim, transcripts repeat agent calls).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from helpers_logs import gen_logs

ROOT = Path(__file__).resolve().parent.parent
SUMS = ("prompt", "candidates", "cached", "thoughts", "total", "requests")
ARGS: dict[str, Any] = dict(seed=11, days=3, fork_rate=0.3, fork_telemetry_rate=0.5, old_version_rate=0.2,
                            new_client_rate=0.6, bg_rate=0.3, agent_rate=0.1, archive_rate=0.15, error_rate=0.03,
                            total_only_rate=0.02, quirks=True, session_lines=(20, 150))
LINES = 3000


def _gen_logs() -> Any:
    return gen_logs()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("gen") / "qwen"
    expected = _gen_logs().gen_qwen_code(root, LINES, **ARGS)
    return root, expected


class Tree:
    """The generated tree, parsed line by line (complete lines only)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = sorted(root.glob("projects/*/chats/*.jsonl"))
        self.files += sorted(root.glob("projects/*/chats/archive/*.jsonl"))
        self.recs: dict[Path, list[dict[str, Any]]] = {}
        self.tails: dict[Path, bytes] = {}
        self.garbage: list[str] = []
        for f in self.files:
            lines = f.read_bytes().split(b"\n")
            tail = lines.pop()
            if tail:
                self.tails[f] = tail
            recs = []
            for n, raw in enumerate(lines, 1):
                try:
                    recs.append(json.loads(raw))
                except ValueError:
                    self.garbage.append(f"{f}:{n}")
            self.recs[f] = recs

    def all(self) -> list[tuple[Path, dict[str, Any]]]:
        return [(f, d) for f, recs in self.recs.items() for d in recs]


def ui_event(d: dict[str, Any]) -> dict[str, Any] | None:
    if d.get("type") == "system" and d.get("subtype") == "ui_telemetry":
        return d["systemPayload"]["uiEvent"]
    return None


def is_call_event(d: dict[str, Any]) -> bool:
    ev = ui_event(d)
    return ev is not None and ev["event.name"] == "qwen-code.api_response" and ev["status_code"] == 200


def generation(version: str) -> str:
    return "new" if version.startswith("0.24.") else "mid" if version.startswith("0.15.") else "old"


def from_event(ev: dict[str, Any]) -> tuple[int, ...]:
    p, c, total = ev["input_token_count"], ev["output_token_count"], ev["total_token_count"]
    if not p and not c:  # only a total: a request with a total and nothing else
        return (0, 0, 0, 0, total, 1)
    return (p, c, ev["cached_content_token_count"], ev["thoughts_token_count"], total, 1)


def from_usage(um: dict[str, int]) -> tuple[int, ...]:
    if "promptTokenCount" not in um and "candidatesTokenCount" not in um:
        return (0, 0, 0, 0, um["totalTokenCount"], 1)
    return (um["promptTokenCount"], um["candidatesTokenCount"], um["cachedContentTokenCount"],
            um.get("thoughtsTokenCount", 0), um["totalTokenCount"], 1)


def distinct_calls(t: Tree) -> dict[str, tuple[str, str, str, tuple[int, ...]]]:
    """key -> (day, model, agent, sums): the counting rule, applied to the files."""
    calls: dict[str, tuple[str, str, str, tuple[int, ...]]] = {}
    event_uuids: set[str] = set()
    for _, d in t.all():
        if is_call_event(d):
            ev = ui_event(d)
            assert ev is not None
            val = (ev["event.timestamp"][:10], ev["model"], ev.get("subagent_name") or "main", from_event(ev))
            assert calls.setdefault(ev["response_id"], val) == val  # a copy says the same
            event_uuids.add(d["uuid"])
    for _, d in t.all():
        if d.get("type") == "assistant" and "usageMetadata" in d and d["parentUuid"] not in event_uuids:
            val = (d["timestamp"][:10], d["model"], "main", from_usage(d["usageMetadata"]))
            assert calls.setdefault(d["uuid"], val) == val
    return calls


def sums_by(calls: dict[str, Any], key: Any) -> dict[Any, dict[str, int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0] * 6)
    for day, model, agent, vals in calls.values():
        acc = out[key(day, model, agent)]
        for i, v in enumerate(vals):
            acc[i] += v
    return {k: dict(zip(SUMS, v, strict=True)) for k, v in out.items()}


def expected_rows(expected: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    return {(r["date"], r["model"]): {k: r[k] for k in SUMS} for r in expected["by_day_model"]}


# -- the counting rule ------------------------------------------------------------------------------

def test_expected_json_is_the_distinct_calls_of_the_files(tree: tuple[Path, dict[str, Any]]) -> None:
    root, expected = tree
    assert json.loads((root / "expected.json").read_text()) == {
        k: v for k, v in expected.items() if k != "stats"} | {
        "stats": {k: v for k, v in expected["stats"].items() if k != "gen_seconds"}}
    calls = distinct_calls(Tree(root))
    assert sums_by(calls, lambda d, m, a: (d, m)) == expected_rows(expected)
    assert sums_by(calls, lambda d, m, a: a) == expected["by_agent"]
    assert sums_by(calls, lambda d, m, a: (d, m, a)) == {
        (r["date"], r["model"], r["agent"]): {k: r[k] for k in SUMS} for r in expected["by_day_model_agent"]}
    assert len(calls) == expected["totals"]["requests"]


def test_expected_sums_are_consistent(tree: tuple[Path, dict[str, Any]]) -> None:
    _, e = tree

    def add(rows: Any) -> dict[str, int]:
        rows = list(rows)
        return {k: sum(r[k] for r in rows) for k in SUMS}

    assert add(e["by_day_model"]) == e["totals"]
    for split in ("by_model", "by_day", "by_agent", "by_client"):
        assert add(e[split].values()) == e["totals"], split
    assert e["by_model"] == {m: add(r for r in e["by_day_model"] if r["model"] == m) for m in e["by_model"]}
    assert e["by_day"] == {d: add(r for r in e["by_day_model"] if r["date"] == d) for d in e["by_day"]}
    t = e["totals"]
    assert t["cached"] <= t["prompt"] and t["thoughts"] <= t["candidates"]
    assert t["total"] == t["prompt"] + t["candidates"] + e["total_only"]["total"]
    assert t["requests"] == e["stats"]["api_calls"]["main"] + e["stats"]["api_calls"]["agent"]
    agents = sum(v["requests"] for k, v in e["by_agent"].items() if k != "main")
    assert e["calls_without_assistant_line"] == agents == e["stats"]["api_calls"]["agent"]
    assert add(e["naive_by_day_model"]) == e["naive_totals"]
    assert e["naive_totals"]["requests"] == e["stats"]["naive_requests"]
    assert set(e["by_client"]) == {"new", "mid", "old"}
    assert set(e["by_agent"]) == {"main", "managed-auto-memory-extractor", "general-purpose", "Explore"}


def test_every_shape_is_present(tree: tuple[Path, dict[str, Any]]) -> None:
    root, e = tree
    st = e["stats"]
    assert st["fork_files"] > st["forks_with_telemetry"] > 0  # forks with and without the telemetry lines
    assert st["archived_files"] > 0 and list(root.glob("projects/*/chats/archive/*.jsonl"))
    assert st["api_calls"]["errors"] > 0 and st["api_calls"]["total_only"] > 0
    assert e["total_only"]["requests"] == st["api_calls"]["total_only"]
    assert st["extra_lines"]["subagent_files"] > 0 and st["extra_lines"]["ledger"] > 0
    assert e["naive_totals"]["requests"] != e["totals"]["requests"]
    assert LINES <= st["lines"] < LINES * 1.2
    t = Tree(root)
    assert sum(len(r) for r in t.recs.values()) + len(t.tails) + len(t.garbage) == st["lines"]
    versions = {generation(d["version"]) for _, d in t.all()}
    assert versions == {"new", "mid", "old"}


# -- the generator's invariants ------------------------------------------------------------------------

def test_main_calls_have_event_then_assistant_agent_calls_only_the_event(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    t = Tree(root)
    event_uuids: set[str] = set()
    agent_event_uuids: set[str] = set()
    main = agent = 0
    statuses: Counter[int] = Counter()
    for f, recs in t.recs.items():
        gen = generation(recs[0]["version"])
        for i, d in enumerate(recs):
            ev = ui_event(d)
            if gen == "old":
                assert d["type"] in ("user", "assistant", "tool_result"), d
                continue
            if ev is None or ev["event.name"] != "qwen-code.api_response":
                continue
            statuses[ev["status_code"]] += 1
            if ev["status_code"] != 200:  # an error: no usage, no assistant line
                assert ev["input_token_count"] == ev["output_token_count"] == ev["total_token_count"] == 0
                assert i + 1 < len(recs) and recs[i + 1]["type"] == "system"
                continue
            event_uuids.add(d["uuid"])
            if ev.get("subagent_name"):
                agent_event_uuids.add(d["uuid"])
                agent += "forkedFrom" not in d
                assert ev["prompt_id"].startswith(f"{ev['prompt_id'].split('#')[0]}#{ev['subagent_name']}-")
                if gen == "new":
                    assert ev["subagent_id"].startswith(ev["subagent_name"] + "-")
                    assert ev["subagent_type"] == ev["subagent_name"] and "ttft_ms" in ev
                continue
            if "forkedFrom" in d:
                continue  # a fork's copy may stop right after an event
            main += 1
            nxt = recs[i + 1]
            assert nxt["type"] == "assistant" and nxt["parentUuid"] == d["uuid"], (f, i)
            assert nxt["model"] == ev["model"] and nxt["timestamp"][:10] == ev["event.timestamp"][:10]
            assert from_usage(nxt["usageMetadata"])[4] == ev["total_token_count"]
            if "promptTokenCount" in nxt["usageMetadata"]:
                assert from_usage(nxt["usageMetadata"]) == from_event(ev)
            assert ev["response_id"].startswith("chatcmpl-")
            assert (gen == "new") == ev["prompt_id"].startswith(d["sessionId"] + "########")
    for recs in t.recs.values():
        for d in recs:
            if d["type"] == "assistant":
                assert d["parentUuid"] not in agent_event_uuids  # agent calls have no assistant line
                if generation(d["version"]) != "old":  # every main call of new/mid clients has its event
                    assert d["parentUuid"] in event_uuids
    assert main > 0 and agent > 0 and statuses[429] > 0


def test_forks_copy_lines_verbatim(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    t = Tree(root)
    by_session = {f.stem: recs for f, recs in t.recs.items()}
    copies = 0
    for f, recs in t.recs.items():
        for d in recs:
            if "forkedFrom" not in d:
                continue
            copies += 1
            src = {s["uuid"]: s for s in by_session[d["forkedFrom"]["sessionId"]]}
            assert d["forkedFrom"]["messageUuid"] == d["uuid"]
            same = dict(d, sessionId=src[d["uuid"]]["sessionId"])
            del same["forkedFrom"]
            assert same == src[d["uuid"]]
            assert d["sessionId"] == f.stem
    assert copies > 0


def test_ledger_usage_record_and_transcripts_repeat_new_client_calls(tree: tuple[Path, dict[str, Any]]) -> None:
    root, e = tree
    t = Tree(root)
    events: dict[str, tuple[Any, ...]] = {}
    agent_events: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for _, d in t.all():
        if is_call_event(d) and "forkedFrom" not in d and generation(d["version"]) == "new":
            ev = ui_event(d)
            assert ev is not None
            events[ev["response_id"]] = (ev["event.timestamp"], d["sessionId"], ev["model"],
                                         ev.get("subagent_name") or "main", ev["input_token_count"],
                                         ev["output_token_count"], ev["cached_content_token_count"],
                                         ev["thoughts_token_count"], ev["total_token_count"], ev["duration_ms"])
            if ev.get("subagent_id", "").startswith(("general-purpose-", "Explore-")):
                agent_events[ev["subagent_id"]].append(from_event(ev))
    ledger = [json.loads(x) for f in sorted(root.glob("usage/token-usage-*.jsonl")) for x in f.read_text().splitlines()]
    assert len(ledger) == len(events) == e["stats"]["extra_lines"]["ledger"] == e["by_client"]["new"]["requests"]
    assert Counter((r["timestamp"], r["sessionId"], r["model"], r["source"], r["inputTokens"], r["outputTokens"],
                    r["cachedTokens"], r["thoughtsTokens"], r["totalTokens"], r["apiDurationMs"]) for r in ledger
                   ) == Counter(events.values())
    for r in ledger:
        assert list(r)[:3] == ["schemaVersion", "id", "timestamp"] and r["localDate"] == r["timestamp"][:10]
        assert r["id"] not in events
    # usage_record: per-session sums of the same calls
    per_session: dict[str, int] = Counter(r["sessionId"] for r in ledger)
    records = [json.loads(x) for x in (root / "usage_record.jsonl").read_text().splitlines()]
    assert {r["sessionId"]: sum(m["requests"] for m in r["models"].values()) for r in records} == per_session
    # transcripts: one assistant line per subagent call, no model, the event's usage
    transcript_calls = 0
    for f in sorted(root.glob("projects/*/subagents/*/agent-*.jsonl")):
        meta = json.loads(f.with_suffix(".meta.json").read_text())
        assert f.parent.name == meta["parentSessionId"] and f.name == f"agent-{meta['agentId']}.jsonl"
        for line in f.read_text().splitlines():
            d = json.loads(line)
            assert d["isSidechain"] is True and d["agentId"] == meta["agentId"] and "model" not in d
            if d["type"] == "assistant":
                transcript_calls += 1
                assert d["agentName"] == meta["subagentName"] and d["agentRound"] >= 1 and d["agentRunId"]
                assert from_usage(d["usageMetadata"]) in agent_events[d["agentId"]]
    assert transcript_calls == sum(len(v) for v in agent_events.values()) > 0


def test_quirks_truncated_and_garbage_lines(tree: tuple[Path, dict[str, Any]]) -> None:
    root, e = tree
    t = Tree(root)
    assert [str(p.relative_to(root)) for p in t.tails] == [e["excluded"]["truncated_line_file"]]
    tail = next(iter(t.tails.values()))
    with pytest.raises(ValueError):
        json.loads(tail)
    assert b'"qwen-code.api_response"' in tail
    assert t.garbage == [e["garbage"]]


def test_deterministic_and_cli(tree: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, _ = tree
    again = tmp_path / "again"
    _gen_logs().gen_qwen_code(again, LINES, **ARGS)

    def digest(d: Path) -> dict[str, str]:
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*")) if p.is_file()}

    assert digest(again) == digest(root) | {"expected.json": digest(again)["expected.json"]}

    def portable(d: Path) -> dict[str, Any]:  # the garbage line's position names the tree's own path
        e = json.loads((d / "expected.json").read_text())
        return e | {"garbage": e["garbage"].removeprefix(str(d))}

    assert portable(again) == portable(root)
    gen = _gen_logs()
    assert gen.main(["qwen-code", "--lines", "300", "--out", str(tmp_path / "cli"), "--archive-rate", "0",
                     "--no-truncated", "--error-rate", "0.5", "--seed", "3"]) == 0
    e = json.loads((tmp_path / "cli" / "expected.json").read_text())
    assert e["args"]["archive_rate"] == 0 and e["args"]["truncated"] is False and e["stats"]["api_calls"]["errors"]
    assert not list((tmp_path / "cli").glob("projects/*/chats/archive/*"))
    assert all(p.read_bytes().endswith(b"\n") for p in (tmp_path / "cli").rglob("*.jsonl"))


# -- the reader against the generated tree ---------------------------------------------------------------

def _reader_sums(records: list[Any]) -> dict[tuple[str, str], dict[str, int]]:
    from datetime import UTC

    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    for r in records:
        acc = out[(r.start.astimezone(UTC).date().isoformat(), r.model)]
        acc["prompt"] += r.input_tokens or 0
        acc["candidates"] += r.output_tokens or 0
        acc["cached"] += r.cache_read_tokens or 0
        acc["thoughts"] += r.reasoning_tokens or 0
        acc["total"] += r.total_tokens or 0
        acc["requests"] += r.requests
    return dict(out)


def test_qwen_code_source_reads_the_generated_tree_to_expected(tree: tuple[Path, dict[str, Any]]) -> None:
    """Every shape at once (events, agent calls, forks with and without events, old clients, the
    ledger, transcripts, archives, errors, total-only calls): exact per day x model and per agent."""
    from tokenmeter_plugins.dashscope_log import QwenCodeSource

    from tokenmeter.testing import check_records, collect

    root, expected = tree
    got = collect(QwenCodeSource, {"roots": [str(root)]})
    check_records(got.records)
    assert _reader_sums(got.records) == expected_rows(expected)
    by_agent: dict[str, int] = Counter()
    for r in got.records:
        by_agent[r.agent] += r.requests
    assert by_agent == {k: v["requests"] for k, v in expected["by_agent"].items()}
    assert got.ctx.unrecognised_count == 0
