"""qwen-code: every API call once, wherever the real client recorded it (events, assistant lines,
subagent transcripts, the usage ledger), which agent made it, odd shapes and unrecognised usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenmeter_plugins.dashscope_log import QwenCodeSource
from tokenmeter_plugins.dashscope_log.qwen_tokens import tokens_from_counts

from tokenmeter.testing import check_records, collect

SESSION = "5e55i0n0-0000-4000-8000-000000000001"


def _base(uuid: str, parent: str | None, typ: str, ts: str, session: str, version: str) -> dict[str, Any]:
    return {"uuid": uuid, "parentUuid": parent, "sessionId": session, "timestamp": ts, "type": typ,
            "cwd": "/home/me/app", "version": version, "gitBranch": "main"}


def event(uuid: str, rid: str | None, p: int, c: int, *, cached: int = 0, thoughts: int = 0,
          total: int | None = None, agent: str | None = None, status: int = 200, parent: str | None = None,
          model: str = "qwen3-coder-plus", ts: str = "2026-03-02T10:00:00.000Z", session: str = SESSION,
          version: str = "0.24.4") -> str:
    """A ui_telemetry api_response line in the real client's key order."""
    ev: dict[str, Any] = {"event.name": "qwen-code.api_response", "event.timestamp": ts}
    if rid is not None:
        ev["response_id"] = rid
    ev.update({"model": model, "status_code": status, "duration_ms": 900, "input_token_count": p,
               "output_token_count": c, "cached_content_token_count": cached, "thoughts_token_count": thoughts,
               "total_token_count": p + c if total is None else total, "response_text": 'ok "quoted" {x}',
               "prompt_id": f"{session}########0", "auth_type": "openai"})
    if agent:
        ev.update({"subagent_name": agent, "subagent_id": f"{agent}-abc123", "subagent_type": agent})
    line = _base(uuid, parent, "system", ts, session, version)
    line.update({"subtype": "ui_telemetry", "systemPayload": {"uiEvent": ev}})
    return json.dumps(line, separators=(",", ":"))


def assistant(uuid: str, parent: str | None, p: int, c: int, *, cached: int = 0, thoughts: int | None = 0,
              total: int | None = None, model: str | None = "qwen3-coder-plus",
              ts: str = "2026-03-02T10:00:00.002Z", session: str = SESSION, version: str = "0.24.4",
              extra: dict[str, Any] | None = None) -> str:
    line = _base(uuid, parent, "assistant", ts, session, version)
    if model is not None:
        line["model"] = model
    line["message"] = {"role": "model", "parts": [{"text": "done"}]}
    um: dict[str, Any] = {"promptTokenCount": p, "candidatesTokenCount": c}
    if thoughts is not None:
        um["thoughtsTokenCount"] = thoughts
    um.update({"totalTokenCount": p + c if total is None else total, "cachedContentTokenCount": cached})
    line["usageMetadata"] = um
    line.update(extra or {})
    return json.dumps(line, separators=(",", ":"))


def user(uuid: str, parent: str | None = None, session: str = SESSION) -> str:
    line = _base(uuid, parent, "user", "2026-03-02T09:59:59.000Z", session, "0.24.4")
    line["message"] = {"role": "user", "parts": [{"text": "hi"}]}
    return json.dumps(line, separators=(",", ":"))


def write(root: Path, rel: str, lines: list[str], *, newline: bool = True) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if newline else ""))
    return path


def chat(root: Path, lines: list[str], session: str = SESSION, project: str = "-home-me-app") -> Path:
    return write(root, f"projects/{project}/chats/{session}.jsonl", lines)


def run(root: Path, cursor: Any = None) -> Any:
    got = collect(QwenCodeSource, {"roots": [str(root)]}, cursor=cursor)
    check_records(got.records)
    return got


def summary(records: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((r.key, r.agent, r.model, r.input_tokens, r.output_tokens, r.cache_read_tokens,
                   r.reasoning_tokens, r.total_tokens) for r in records)


# -- one record per call ----------------------------------------------------------------------------

def test_event_and_its_assistant_line_are_one_call_and_agent_calls_count(tmp_path: Path) -> None:
    chat(tmp_path, [
        user("u0"),
        event("t1", "chatcmpl-1", 1000, 50, cached=400, thoughts=10, parent="u0"),
        assistant("a1", "t1", 1000, 50, cached=400, thoughts=10),
        event("t2", "chatcmpl-2", 2000, 80, agent="managed-auto-memory-extractor", parent="a1"),
        event("t3", "chatcmpl-3", 3000, 90, agent="general-purpose", model="qwen-plus", parent="t2"),
    ])
    got = run(tmp_path)
    assert summary(got.records) == [
        ("r:chatcmpl-1", "main", "qwen3-coder-plus", 1000, 50, 400, 10, 1050),
        ("r:chatcmpl-2", "managed-auto-memory-extractor", "qwen3-coder-plus", 2000, 80, 0, 0, 2080),
        ("r:chatcmpl-3", "general-purpose", "qwen-plus", 3000, 90, 0, 0, 3090),
    ]
    r = got.records[0]
    assert (r.project, r.session, r.requests) == ("/home/me/app", SESSION, 1)
    assert got.ctx.skipped == 0 and got.ctx.unrecognised_count == 0


def test_error_responses_and_tool_call_events_are_not_usage(tmp_path: Path) -> None:
    tool_call = json.loads(event("t9", "chatcmpl-1", 5, 5))
    tool_call["systemPayload"]["uiEvent"]["event.name"] = "qwen-code.tool_call"
    chat(tmp_path, [
        event("t1", "chatcmpl-1", 1000, 50),
        assistant("a1", "t1", 1000, 50),
        json.dumps(tool_call, separators=(",", ":")),
        event("t2", "chatcmpl-err", 1200, 0, status=429),
        event("t3", "chatcmpl-err2", 1200, 0, status=500),
    ])
    got = run(tmp_path)
    assert [r.key for r in got.records] == ["r:chatcmpl-1"]


def test_old_clients_without_events_count_their_assistant_lines(tmp_path: Path) -> None:
    chat(tmp_path, [assistant("a1", None, 100, 10, version="0.1.2", thoughts=None),
                    assistant("a2", "a1", 200, 20, version="0.1.2", thoughts=None)])
    got = run(tmp_path)
    assert summary(got.records) == [("a1", "main", "qwen3-coder-plus", 100, 10, 0, None, 110),
                                    ("a2", "main", "qwen3-coder-plus", 200, 20, 0, None, 220)]


def test_a_session_resumed_by_a_newer_client_counts_each_call_once(tmp_path: Path) -> None:
    chat(tmp_path, [assistant("a1", None, 100, 10, version="0.1.2"),
                    event("t2", "chatcmpl-2", 300, 30, parent="a1"),
                    assistant("a2", "t2", 300, 30)])
    assert [r.key for r in run(tmp_path).records] == ["a1", "r:chatcmpl-2"]


def test_pairing_holds_across_incremental_runs_and_a_full_reread(tmp_path: Path) -> None:
    path = chat(tmp_path, [event("t1", "chatcmpl-1", 1000, 50)])
    first = run(tmp_path)
    assert [r.key for r in first.records] == ["r:chatcmpl-1"]
    with open(path, "a") as f:  # the client writes the assistant line a millisecond later
        f.write(assistant("a1", "t1", 1000, 50) + "\n" + event("t2", "chatcmpl-2", 10, 5, agent="Explore") + "\n")
    second = run(tmp_path, cursor=first.cursor)
    assert [r.key for r in second.records] == ["r:chatcmpl-2"]
    full = run(tmp_path)  # no cursor: the whole file again gives the same keys
    assert sorted(r.key for r in full.records) == ["r:chatcmpl-1", "r:chatcmpl-2"]


def test_an_unpaired_event_waits_for_nothing(tmp_path: Path) -> None:
    # a main-turn event whose assistant line never came (killed client): still one call
    chat(tmp_path, [event("t1", "chatcmpl-1", 1000, 50), user("u1", "t1")])
    assert [r.key for r in run(tmp_path).records] == ["r:chatcmpl-1"]


def test_branch_fork_copies_count_once(tmp_path: Path) -> None:
    original = [event("t1", "chatcmpl-1", 1000, 50), assistant("a1", "t1", 1000, 50),
                event("t2", "chatcmpl-2", 70, 7, agent="managed-auto-memory-extractor")]
    chat(tmp_path, original)
    fork = [line.replace(SESSION, "f0rk") for line in original]
    fork += [event("t3", "chatcmpl-3", 1100, 60, session="f0rk"), assistant("a3", "t3", 1100, 60, session="f0rk")]
    chat(tmp_path, fork, session="f0rk")
    got = run(tmp_path)
    assert sorted(r.key for r in got.records) == ["r:chatcmpl-1", "r:chatcmpl-2", "r:chatcmpl-3"]


def forked(line: str, new_session: str, parent: str | None) -> str:
    """A line as the real client's /branch copies it: new sessionId, rebuilt parent chain, forkedFrom."""
    rec = json.loads(line)
    src = rec["sessionId"]
    rec.update(sessionId=new_session, parentUuid=parent, forkedFrom={"sessionId": src, "messageUuid": rec["uuid"]})
    return json.dumps(rec, separators=(",", ":"))


def test_branch_copies_without_their_events_count_once(tmp_path: Path) -> None:
    chat(tmp_path, [user("u0"), event("t1", "chatcmpl-1", 1000, 50, parent="u0"), assistant("a1", "t1", 1000, 50)])
    # the fork keeps the conversation (user, assistant) but not the telemetry line
    chat(tmp_path, [forked(user("u0"), "f0rk", None), forked(assistant("a1", "t1", 1000, 50), "f0rk", "u0"),
                    event("t3", "chatcmpl-3", 1100, 60, session="f0rk", parent="a1"),
                    assistant("a3", "t3", 1100, 60, session="f0rk")], session="f0rk")
    got = run(tmp_path)
    assert sorted(r.key for r in got.records) == ["r:chatcmpl-1", "r:chatcmpl-3"]


def test_branch_copies_count_when_the_source_session_is_gone(tmp_path: Path) -> None:
    chat(tmp_path, [forked(user("u0"), "f0rk", None), forked(assistant("a1", "t1", 1000, 50), "f0rk", "u0")],
         session="f0rk")
    assert [(r.key, r.session) for r in run(tmp_path).records] == [("a1", "f0rk")]


def test_archived_sessions_are_read(tmp_path: Path) -> None:
    write(tmp_path, f"projects/-home-me-app/chats/archive/{SESSION}.jsonl",
          [event("t1", "chatcmpl-1", 1000, 50), assistant("a1", "t1", 1000, 50)])
    got = run(tmp_path)
    assert [(r.key, r.project) for r in got.records] == [("r:chatcmpl-1", "/home/me/app")]


# -- the ledger, subagent transcripts and per-session sums ----------------------------------------------

def ledger_line(i: int, session: str, source: str = "main", model: str = "qwen3-coder-plus",
                p: int = 100, c: int = 10) -> str:
    return json.dumps({"schemaVersion": 1, "id": f"led-{i}", "timestamp": "2026-03-02T10:00:00.000Z",
                       "localDate": "2026-03-02", "localMonth": "2026-03", "sessionId": session, "model": model,
                       "authType": "openai", "source": source, "inputTokens": p, "outputTokens": c,
                       "cachedTokens": 0, "thoughtsTokens": 0, "totalTokens": p + c, "apiDurationMs": 5},
                      separators=(",", ":"))


def test_ledger_counts_only_sessions_whose_chat_file_is_gone(tmp_path: Path) -> None:
    chat(tmp_path, [event("t1", "chatcmpl-1", 100, 10), assistant("a1", "t1", 100, 10)])
    write(tmp_path, "usage/token-usage-2026-03.jsonl", [
        ledger_line(1, SESSION), ledger_line(2, "gone-session", p=500, c=50),
        ledger_line(3, "gone-session", "general-purpose", "qwen-plus", p=700, c=70)])
    write(tmp_path, "usage_record.jsonl", [json.dumps({"version": 1, "sessionId": SESSION, "models": {
        "qwen3-coder-plus": {"requests": 9, "inputTokens": 9999, "outputTokens": 999, "totalTokens": 10998}}})])
    got = run(tmp_path)
    assert summary(got.records) == [
        ("l:led-2", "main", "qwen3-coder-plus", 500, 50, 0, 0, 550),
        ("l:led-3", "general-purpose", "qwen-plus", 700, 70, 0, 0, 770),
        ("r:chatcmpl-1", "main", "qwen3-coder-plus", 100, 10, 0, 0, 110),
    ]
    assert got.ctx.unrecognised_count == 0


def transcript(root: Path, session: str, name: str, lines: list[str], meta: dict[str, Any] | None) -> Path:
    base = f"projects/-home-me-app/subagents/{session}/agent-{name}-call_1"
    if meta is not None:
        write(root, base + ".meta.json", [json.dumps(meta)])
    return write(root, base + ".jsonl", lines)


def sidechain(uuid: str, p: int, c: int, session: str, name: str = "general-purpose") -> str:
    return assistant(uuid, None, p, c, model=None, session=session,
                     extra={"agentId": f"{name}-call_1", "agentName": name, "isSidechain": True,
                            "agentRunId": "run-1", "agentRound": 1})


def test_subagent_transcripts_repeat_the_chat_events(tmp_path: Path) -> None:
    chat(tmp_path, [event("t1", "chatcmpl-1", 300, 30, agent="general-purpose")])
    transcript(tmp_path, SESSION, "general-purpose", [sidechain("s1", 300, 30, SESSION)], {"model": "qwen-plus"})
    assert [r.key for r in run(tmp_path).records] == ["r:chatcmpl-1"]


def test_a_transcript_alone_counts_and_gets_its_model_from_meta_json(tmp_path: Path) -> None:
    transcript(tmp_path, "lost-session", "general-purpose",
               [sidechain("s1", 300, 30, "lost-session"), sidechain("s2", 400, 40, "lost-session")],
               {"agentId": "general-purpose-call_1", "subagentName": "general-purpose", "model": "qwen-plus"})
    got = run(tmp_path)
    assert summary(got.records) == [("s1", "general-purpose", "qwen-plus", 300, 30, 0, 0, 330),
                                    ("s2", "general-purpose", "qwen-plus", 400, 40, 0, 0, 440)]
    assert {r.project for r in got.records} == {"/home/me/app"}


def test_a_transcript_covered_by_the_ledger_is_not_counted_again(tmp_path: Path) -> None:
    transcript(tmp_path, "lost-session", "general-purpose", [sidechain("s1", 300, 30, "lost-session")], None)
    import time
    month = time.strftime("%Y-%m", time.gmtime())
    write(tmp_path, f"usage/token-usage-{month}.jsonl",
          [ledger_line(1, "lost-session", "general-purpose", "qwen-plus", p=300, c=30)])
    assert [(r.key, r.model) for r in run(tmp_path).records] == [("l:led-1", "qwen-plus")]


# -- odd shapes -------------------------------------------------------------------------------------

def test_a_call_with_only_a_total_is_counted_never_priced(tmp_path: Path) -> None:
    chat(tmp_path, [event("t1", "chatcmpl-1", 0, 0, thoughts=120, total=900),
                    assistant("a1", "t1", 0, 0, thoughts=120, total=900)])
    [r] = run(tmp_path).records
    assert (r.requests, r.input_tokens, r.output_tokens, r.reasoning_tokens, r.total_tokens) == (
        1, None, None, None, 900)
    assert r.details == {"note": "only a total was reported: unpriced"}


def test_output_never_exceeds_what_the_writers_total_allows() -> None:
    # thoughts (an estimate) larger than candidates while total = prompt + candidates: output stays 50
    note = "thoughts exceed what totalTokenCount allows: reasoning unknown"
    assert tokens_from_counts(1000, 50, 80, 0, 1050) == (1000, 50, 0, None, note)
    # thoughts reported beside candidates (total includes them): output = candidates + thoughts
    assert tokens_from_counts(1000, 50, 80, 0, 1130)[:4] == (1000, 130, 0, 80)


# -- never undercount silently -------------------------------------------------------------------------

def test_usage_in_an_unknown_shape_is_reported_with_its_position(tmp_path: Path) -> None:
    renamed = json.loads(event("t2", "chatcmpl-2", 500, 5))
    renamed["systemPayload"]["uiEvent"]["event.name"] = "qwen-code.api_response_v2"
    new_type = {"uuid": "n1", "type": "model_turn", "sessionId": SESSION,
                "usage": {"prompt_tokens": 40, "completion_tokens": 4}}
    path = chat(tmp_path, [event("t1", "chatcmpl-1", 100, 10), assistant("a1", "t1", 100, 10),
                           json.dumps(renamed, separators=(",", ":")), json.dumps(new_type)])
    write(tmp_path, "projects/-home-me-app/traces/x.jsonl", ['{"inputTokens": 7, "outputTokens": 1}'])
    got = run(tmp_path)
    assert [r.key for r in got.records] == ["r:chatcmpl-1"]
    assert got.ctx.unrecognised_count == 3
    assert sorted(got.ctx.unrecognised_examples) == sorted([
        f"{tmp_path}/projects/-home-me-app/traces/x.jsonl:1: token counts in a file the reader does not know",
        f"{path}:3: token counts in a shape the reader does not know",
        f"{path}:4: token counts in a shape the reader does not know",
    ])


def test_spaced_json_is_still_read(tmp_path: Path) -> None:
    ev = json.loads(event("t1", "chatcmpl-1", 100, 10))
    chat(tmp_path, [json.dumps(ev)])  # ", " and ": " separators: no marker matches, the json path reads it
    got = run(tmp_path)
    assert [r.key for r in got.records] == ["r:chatcmpl-1"] and got.ctx.unrecognised_count == 0


def test_client_versions_seen_are_kept_for_sources(tmp_path: Path) -> None:
    chat(tmp_path, [event("t1", "chatcmpl-1", 100, 10, version="0.24.4"),
                    assistant("a1", "t1", 100, 10, version="0.24.4"),
                    assistant("a2", None, 5, 1, version="0.99.0")])
    got = run(tmp_path)
    src = QwenCodeSource(QwenCodeSource.Settings(roots=[str(tmp_path)]), got.ctx)
    info = src.info(got.cursor)
    assert info["client_versions"] == {"0.24.4": True, "0.99.0": False}
    assert info["roots"] == [str(tmp_path)]


# -- through the CLI -------------------------------------------------------------------------------------

def test_cli_fetch_summary_sources_and_by_agent(tmp_path: Path, tokenmeter_env: Path) -> None:
    from test_e2e_cli import Cli, write_config

    root = tmp_path / "qwen"
    renamed = json.loads(event("t9", "chatcmpl-9", 500, 5))
    renamed["systemPayload"]["uiEvent"]["event.name"] = "qwen-code.api_response_v2"
    path = chat(root, [event("t1", "chatcmpl-1", 1000, 50), assistant("a1", "t1", 1000, 50),
                       event("t2", "chatcmpl-2", 2000, 80, agent="managed-auto-memory-extractor"),
                       json.dumps(renamed, separators=(",", ":"))])
    write_config(tokenmeter_env, f'[tokenmeter]\ntimezone = "UTC"\n\n[sources.qwen-code]\nroots = ["{root}"]\n')
    run = Cli(tokenmeter_env, {})
    result = run("fetch", "qwen-code", "--json")
    assert result.exit_code == 0, result.stderr
    [summary_row] = json.loads(result.stdout)["sources"]
    assert (summary_row["new"], summary_row["unrecognised"]) == (2, 1)
    assert summary_row["unrecognised_examples"] == [f"{path}:4: token counts in a shape the reader does not know"]
    with open(path, "a") as f:  # appended: the next fetch reports the new line
        f.write(json.dumps(renamed, separators=(",", ":")) + "\n")
    result = run("fetch", "qwen-code", "-f", "table")
    assert "qwen-code: 0 new, 0 updated, 1 with unrecognised usage" in result.stdout
    assert f"unrecognised usage (not counted; please report) at {path}:5" in result.stderr
    sources = run("sources", "-f", "table")
    assert f"qwen-code: roots: {root}" in sources.stdout
    assert "qwen-code: client versions: 0.24.4 (tested)" in sources.stdout
    report = run.json("--all", "--by", "agent")
    rows = {r["agent"]: (r["requests"], r["input_tokens"], r["output_tokens"]) for r in report["rows"]}
    assert rows == {"main": (1, 1000, 50), "managed-auto-memory-extractor": (1, 2000, 80)}
    csv_out = run("--all", "--by", "agent", "--csv").stdout.splitlines()
    assert csv_out[0].startswith("agent,") and any(line.startswith("managed-auto-memory-extractor,1,2000,80")
                                                   for line in csv_out)


def test_a_missing_root_named_on_the_command_line_is_an_error(tmp_path: Path, tokenmeter_env: Path) -> None:
    from test_e2e_cli import Cli, write_config

    write_config(tokenmeter_env, f'[sources.qwen-code]\nroots = ["{tmp_path}/nowhere"]\n')
    run = Cli(tokenmeter_env, {})
    result = run("fetch", "qwen-code", "-f", "table")
    assert result.exit_code == 6
    assert f"no Qwen Code folder at {tmp_path}/nowhere: set roots in [sources.qwen-code]" in result.stderr
    assert run("fetch", "-f", "table").exit_code == 0  # not named: skipped, with the reason
