"""qwen-code source: Qwen Code chat logs -> one record per API call, token rules, forks, bad lines."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers_logs import gen_logs
from tokenmeter_plugins.dashscope_log import QwenCodeSource, register_sources, tail
from tokenmeter_plugins.dashscope_log.qwen_code import default_roots, usage_to_tokens

from tokenmeter import Window
from tokenmeter.testing import check_records, collect, fake_context

ROOT = Path(__file__).resolve().parent.parent


def _gen_logs() -> Any:
    return gen_logs()


def sums_by(records: list[Any], key: Any) -> dict[Any, dict[str, int]]:
    """Sum records back into the sample's units (prompt, candidates, cached, thoughts, total), by ``key``."""
    out: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        acc = out[key(r)]
        acc["prompt"] += r.input_tokens or 0  # None: only a total was reported
        acc["candidates"] += r.output_tokens or 0
        acc["cached"] += r.cache_read_tokens or 0
        acc["thoughts"] += r.reasoning_tokens or 0
        acc["total"] += r.total_tokens
        acc["requests"] += r.requests
    return {k: dict(v) for k, v in out.items()}


def by_day_model(records: list[Any]) -> dict[tuple[str, str], dict[str, int]]:
    return sums_by(records, lambda r: (r.start.astimezone(UTC).date().isoformat(), r.model))


def expected_rows(expected: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    keys = ("prompt", "candidates", "cached", "thoughts", "total", "requests")
    return {(row["date"], row["model"]): {k: row[k] for k in keys} for row in expected["by_day_model"]}


def totals(records: list[Any]) -> dict[str, int]:
    t: dict[str, int] = defaultdict(int)
    for row in by_day_model(records).values():
        for k, v in row.items():
            t[k] += v
    return dict(t)


def line(uuid: str = "u1", *, typ: str = "assistant", usage: dict[str, Any] | None = None,
         model: str = "qwen3-coder-plus", ts: str = "2026-03-02T10:00:00.000Z", session: str = "s1",
         cwd: str | None = "/home/me/app", order: str = "std", text: str = "hello") -> str:
    """One chat line in Qwen Code's key order (or another order, to exercise the json path)."""
    rec: dict[str, Any] = {"uuid": uuid, "parentUuid": None, "sessionId": session, "timestamp": ts, "type": typ}
    if cwd is not None:
        rec["cwd"] = cwd
    rec.update({"version": "0.16.0", "gitBranch": "main"})
    msg = {"role": "model", "parts": [{"text": text}]}
    if order == "std":
        rec["message"] = msg
        rec["model"] = model
        if usage is not None:
            rec["usageMetadata"] = usage
        rec["contextWindowSize"] = 1000000
    else:  # usage first, message last
        if usage is not None:
            rec = {"usageMetadata": usage, "model": model, **rec}
        rec["message"] = msg
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def write_tree(root: Path, files: dict[str, list[str] | bytes], project: str = "-home-me-app") -> Path:
    chats = root / "projects" / project / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else ("\n".join(content) + "\n").encode()
        (chats / name).write_bytes(data)
    return chats


def U(p: int, c: int, t: int | None = None, k: int = 0, total: int | None = None) -> dict[str, int]:
    u = {"promptTokenCount": p, "candidatesTokenCount": c}
    if t is not None:
        u["thoughtsTokenCount"] = t
    u["totalTokenCount"] = p + c if total is None else total
    u["cachedContentTokenCount"] = k
    return u


# -- the shared sample ------------------------------------------------------------------------------

def by_agent(records: list[Any]) -> dict[str, dict[str, int]]:
    return sums_by(records, lambda r: r.agent)


def test_sample_tree_matches_expected_day_model_sums(samples: Path, tmp_path: Path) -> None:
    shutil.copytree(samples / "qwen-code" / "home", tmp_path / "home")
    expected = json.loads((samples / "qwen-code" / "expected.json").read_text())
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "home" / ".qwen")]})
    check_records(got.records)
    assert by_day_model(got.records) == expected_rows(expected)
    assert totals(got.records) == expected["totals"]
    assert by_agent(got.records) == expected["by_agent"]
    assert totals(got.records) != expected["naive_totals"]  # agent calls counted, fork copies once
    # the NUL garbage line is counted with its position; the truncated last line is not an error
    assert got.ctx.skipped == 1
    assert got.ctx.skip_examples == [
        f"{tmp_path}/home/.qwen/projects/-home-alice-work-web-shop/chats/"
        "f3714b61-45bc-4e69-991a-b651449950b1.jsonl:56: NUL bytes"
    ]
    assert got.ctx.unrecognised_count == 0
    # a background agent's call: only its telemetry event records it
    r = next(r for r in got.records if r.key == "r:chatcmpl-e84398d1ce51263773f5c5438c475011")
    assert (r.provider, r.model, r.project, r.session, r.account, r.agent) == (
        "qwen", "qwen3.5-plus", "/home/alice/work/tokenmeter", "b08ca8d4-0387-4fe4-b80a-68ef2ff681bf",
        "test-machine", "managed-auto-memory-extractor")
    assert (r.input_tokens, r.output_tokens, r.cache_read_tokens, r.reasoning_tokens, r.total_tokens,
            r.requests) == (12193, 619, 5440, 0, 12812, 1)
    assert r.start == datetime(2026, 3, 4, 12, 0, 31, 615000, tzinfo=UTC)


def test_sample_tree_twice_and_completed_truncated_line(samples: Path, tmp_path: Path) -> None:
    shutil.copytree(samples / "qwen-code" / "home", tmp_path / "home")
    settings = {"roots": [str(tmp_path / "home" / ".qwen")]}
    first = collect(QwenCodeSource, settings)
    again = collect(QwenCodeSource, settings, cursor=first.cursor)
    assert again.records == [] and again.ctx.skipped == 0
    # the writer finishes the truncated telemetry line: it is counted once, on the next run
    path = tmp_path / "home/.qwen/projects/-home-alice-work-web-shop/chats/b81713f5-0a04-4982-bcef-f073bdee8f9f.jsonl"
    with open(path, "ab") as f:
        f.write(b'"total_token_count":48521,"prompt_id":"x","auth_type":"openai"}}}\n')
    third = collect(QwenCodeSource, settings, cursor=first.cursor)
    assert [(r.model, r.input_tokens, r.output_tokens, r.agent) for r in third.records] == [
        ("qwen-max", 48500, 21, "main")]
    assert third.records[0].start.date().isoformat() == "2026-03-02"


# -- generated trees ------------------------------------------------------------------------------

@pytest.mark.parametrize("parallel", [False, True])
def test_generated_tree_with_forks_and_quirks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              parallel: bool) -> None:
    gen = _gen_logs()
    expected = gen.gen_qwen_code(tmp_path / "qwen", 4000, seed=7, days=3, fork_rate=0.3,
                                 old_version_rate=0.2, quirks=True)
    assert expected["stats"]["naive_requests"] > expected["totals"]["requests"]  # forks present
    if parallel:  # force the worker-process path on a small tree
        monkeypatch.setattr(tail, "PARALLEL_MIN", 0)
        monkeypatch.setattr(tail, "PARALLEL_BATCH", 1 << 20)
        monkeypatch.setattr(os, "cpu_count", lambda: 3)
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "qwen")]})
    check_records(got.records)
    assert by_day_model(got.records) == expected_rows(expected)
    assert totals(got.records) == expected["totals"]
    assert got.ctx.skip_examples == [f"{expected['garbage']}: NUL bytes"]
    # old-version records have no thoughtsTokenCount: reasoning is "not reported", not 0
    assert any(r.reasoning_tokens is None for r in got.records)
    ledgers = list((tmp_path / "qwen").glob("usage/token-usage-*.jsonl"))
    assert len(got.cursor["files"]) == expected["stats"]["files"] + len(ledgers)


def test_small_blocks_give_the_same_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_logs()
    expected = gen.gen_qwen_code(tmp_path / "qwen", 600, seed=3, days=2)
    monkeypatch.setattr(tail, "BLOCK_SIZE", 1000)  # lines are longer than a block
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "qwen")]})
    assert by_day_model(got.records) == expected_rows(expected)


# -- token rules ----------------------------------------------------------------------------------

def one(tmp_path: Path, *lines: str) -> Any:
    write_tree(tmp_path / "q", {"s1.jsonl": list(lines)})
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]})
    check_records(got.records)
    return got


def fields(r: Any) -> tuple[Any, ...]:
    return (r.input_tokens, r.cache_read_tokens, r.output_tokens, r.reasoning_tokens, r.total_tokens)


@pytest.mark.parametrize("order", ["std", "other"])
def test_thoughts_inside_candidates(tmp_path: Path, order: str) -> None:
    got = one(tmp_path, line(usage=U(12414, 76, t=39, k=4096, total=12490), order=order))
    assert [fields(r) for r in got.records] == [(12414, 4096, 76, 39, 12490)]
    assert got.records[0].details == {}


@pytest.mark.parametrize("order", ["std", "other"])
def test_thoughts_extra(tmp_path: Path, order: str) -> None:
    got = one(tmp_path, line(usage=U(1000, 50, t=200, total=1250), order=order))
    assert [fields(r) for r in got.records] == [(1000, 0, 250, 200, 1250)]


def test_cached_greater_than_prompt_is_exclusive(tmp_path: Path) -> None:
    got = one(tmp_path, line(usage=U(1508, 100, t=0, k=4864, total=1608)))
    r = got.records[0]
    assert fields(r) == (1508 + 4864, 4864, 100, 0, 1608)
    assert "exclusive" in r.details["note"]


def test_total_fits_neither_rule(tmp_path: Path) -> None:
    got = one(tmp_path, line("a", usage=U(100, 50, t=10, total=999)),
              line("b", usage=U(100, 5, t=10, total=999)))
    a, b = got.records
    assert fields(a) == (100, 0, 50, 10, 999) and "inside" in a.details["note"]
    assert fields(b) == (100, 0, 15, 10, 999) and "extra" in b.details["note"]


def test_old_record_without_thoughts_and_missing_total(tmp_path: Path) -> None:
    usage = {"promptTokenCount": 500, "candidatesTokenCount": 20, "cachedContentTokenCount": 0}
    got = one(tmp_path, line(usage=usage))
    assert fields(got.records[0]) == (500, 0, 20, None, None)


def test_usage_to_tokens_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        usage_to_tokens({"promptTokenCount": -1})
    with pytest.raises(ValueError):
        usage_to_tokens({"promptTokenCount": "12"})
    assert usage_to_tokens({})[0]["input_tokens"] is None


def test_only_assistant_lines_are_api_calls(tmp_path: Path) -> None:
    telemetry = json.dumps({"uuid": "t1", "parentUuid": None, "sessionId": "s1",
                            "timestamp": "2026-03-02T10:00:01Z", "type": "system", "subtype": "ui_telemetry",
                            "cwd": "/x", "usageMetadata": U(10, 10),
                            "systemPayload": {"uiEvent": {"input_token_count": 10}}}, separators=(",", ":"))
    got = one(tmp_path, line("a", usage=U(10, 1)), telemetry, line("u", typ="user", usage=U(10, 1)),
              line("n", usage=None))
    assert [r.key for r in got.records] == ["a"]
    assert got.ctx.skipped == 0


def test_fork_copies_count_once(tmp_path: Path) -> None:
    a = [line("u1", usage=U(100, 10), session="s1"), line("u2", usage=U(200, 20), session="s1")]
    fork = [a[0].replace('"s1"', '"s2"'), line("u3", usage=U(300, 30), session="s2")]
    write_tree(tmp_path / "q", {"s1.jsonl": a, "s2.jsonl": fork})
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]})
    check_records(got.records)
    assert sorted(r.key for r in got.records) == ["u1", "u2", "u3"]
    assert sum(r.input_tokens for r in got.records) == 600


def test_project_falls_back_to_folder_and_escapes_are_decoded(tmp_path: Path) -> None:
    got = one(tmp_path, line("a", usage=U(1, 1), cwd=None), line("b", usage=U(1, 1), cwd="C:\\work\\app"),
              line("c", usage=U(1, 1), model="qwen\u00e9", text="quote \" and 上下文 ⚠️"))
    assert [(r.key, r.project, r.model) for r in got.records] == [
        ("a", "-home-me-app", "qwen3-coder-plus"),
        ("b", "C:\\work\\app", "qwen3-coder-plus"),
        ("c", "/home/me/app", "qwen\u00e9"),
    ]


# -- bad lines ------------------------------------------------------------------------------------

def test_bad_lines_are_skipped_and_counted_with_positions(tmp_path: Path) -> None:
    good = line("g", usage=U(10, 1))
    # a crash (disk full, power loss) left partial lines that the next write continued
    glued = line("p", usage=None)[:80] + line("x", usage=U(999, 9))
    glued2 = line("q", typ="user")[:120] + line("y", usage=U(7, 7))
    bad_model = line("m", usage=U(10, 1)).replace("qwen3-coder-plus", "qwen\udcff", 1)
    chats = write_tree(tmp_path / "q", {"s1.jsonl": b""})
    data = b"\n".join([
        good.encode(),
        b"not json at all",
        glued.encode(),
        bad_model.encode("utf-8", "surrogateescape"),
        b"\xff\xfe\x00garbage",
        line("neg", usage=U(10, 1)).replace('"promptTokenCount":10', '"promptTokenCount":-5').encode(),
        line("ts", usage=U(10, 1), ts="yesterday").encode(),
        b"",
        line("g2", usage=U(20, 2)).encode(),
        glued2.encode(),
    ]) + b"\n"
    (chats / "s1.jsonl").write_bytes(data)
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]})
    assert [r.key for r in got.records] == ["g", "x", "g2", "y"]  # glued records are recovered
    where = str(chats / "s1.jsonl")
    assert got.ctx.skipped == 7
    assert got.ctx.skip_examples == [
        f"{where}:2: corrupt JSON",
        f"{where}:3: corrupt JSON (partial line glued to the next record)",
        f"{where}:4: not UTF-8",
        f"{where}:5: NUL bytes",
        f"{where}:6: bad promptTokenCount -5",
    ]


def test_unterminated_complete_last_line_is_read_but_not_passed(tmp_path: Path) -> None:
    data = (line("a", usage=U(1, 1)) + "\n" + line("b", usage=U(2, 2))).encode()
    chats = write_tree(tmp_path / "q", {"s1.jsonl": data})
    first = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]})
    assert [r.key for r in first.records] == ["a", "b"]
    entry = next(iter(first.cursor["files"].values()))
    assert entry["offset"] == len(line("a", usage=U(1, 1))) + 1  # stops before the unterminated line
    with open(chats / "s1.jsonl", "ab") as f:
        f.write(b"\n")
    second = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]}, cursor=first.cursor)
    assert [r.key for r in second.records] == ["b"]  # same key: the store replaces, no double count


# -- source plumbing ------------------------------------------------------------------------------

def test_available_and_default_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("QWEN_RUNTIME_DIR", "QWEN_HOME", "QWEN_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert default_roots() == ["~/.qwen"]
    monkeypatch.setenv("QWEN_DATA_DIR", str(tmp_path / "data"))  # ccusage's variable: read as well
    assert default_roots() == ["~/.qwen", str(tmp_path / "data")]
    # Qwen Code's own order: $QWEN_RUNTIME_DIR, settings advanced.runtimeOutputDir, $QWEN_HOME, ~/.qwen
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps({"advanced": {"runtimeOutputDir": str(tmp_path / "out")}}))
    monkeypatch.setenv("QWEN_HOME", str(home))
    monkeypatch.setenv("QWEN_RUNTIME_DIR", str(tmp_path / "rt"))
    assert QwenCodeSource.Settings().roots == [str(tmp_path / "rt"), str(tmp_path / "out"), str(home),
                                               "~/.qwen", str(tmp_path / "data")]
    monkeypatch.delenv("QWEN_DATA_DIR")
    src = QwenCodeSource(QwenCodeSource.Settings(), fake_context("qwen-code"))
    # only existing roots are read; none has logs yet
    assert src.available() == f"no log files at {home}/projects/*/chats/*.jsonl"
    write_tree(tmp_path / "rt", {"s.jsonl": [line(usage=U(1, 1))]})
    assert src.available() is None
    # every existing root is read, and a call seen under two roots counts once
    write_tree(tmp_path / "out", {"s.jsonl": [line(usage=U(1, 1))]})
    write_tree(tmp_path / "out", {"t.jsonl": [line("u2", usage=U(2, 2))]})
    got = collect(QwenCodeSource, QwenCodeSource.Settings())
    assert sorted((r.key, r.input_tokens) for r in got.records) == [("u1", 1), ("u2", 2)]
    assert src.info({})["roots"] == [str(tmp_path / "rt"), str(tmp_path / "out"), str(home)]


def test_home_default(tmp_path: Path) -> None:
    write_tree(Path(os.environ["HOME"]) / ".qwen", {"s.jsonl": [line(usage=U(3, 1))]})
    got = collect(QwenCodeSource)
    assert [r.input_tokens for r in got.records] == [3]


def test_explicit_window_filters_and_keeps_cursor(tmp_path: Path) -> None:
    write_tree(tmp_path / "q", {"s.jsonl": [line("a", usage=U(1, 1), ts="2026-03-01T10:00:00Z"),
                                            line("b", usage=U(1, 1), ts="2026-03-05T10:00:00Z")]})
    window = Window(datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC))
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]}, window=window)
    assert [r.key for r in got.records] == ["b"]
    assert got.cursor is None


def test_register_sources() -> None:
    seen: list[Any] = []
    register_sources(seen.append)
    assert [s.id for s in seen] == ["dashscope-log", "qwen-code"]
    assert all(s.kind == "log" and s.provider == "qwen" for s in seen)
    for s in seen:
        for f in s.Settings.__dataclass_fields__.values():
            assert f.metadata["help"]


def test_demo_data_reads_to_its_expected_totals() -> None:
    data = ROOT / "plugins" / "dashscope_log" / "demo_data"
    expected = json.loads((data / "expected.json").read_text())["qwen-code"]
    got = collect(QwenCodeSource, {"roots": [str(data / "qwen")]})
    check_records(got.records)
    assert got.ctx.skipped == 0
    assert by_day_model(got.records) == expected_rows(expected)
    assert totals(got.records) == expected["totals"]


# -- review fixes -----------------------------------------------------------------------------------

def upstream_line(uuid: str, usage: dict[str, Any], *, model_first: bool = True) -> str:
    """Qwen Code's own key order: createBaseRecord() (provenance before cwd), then model, message, usage."""
    rec: dict[str, Any] = {"uuid": uuid, "parentUuid": None, "sessionId": "s1",
                           "timestamp": "2026-03-02T10:00:00.000Z", "type": "assistant",
                           "provenance": "assistant_output", "cwd": "/home/me/app", "version": "0.16.0",
                           "gitBranch": "main"}
    msg = {"role": "model", "parts": [{"text": "hi"}]}
    if model_first:
        rec.update({"model": "qwen3-coder-plus", "message": msg})
    else:
        rec.update({"message": msg, "model": "qwen3-coder-plus"})
    rec.update({"usageMetadata": usage, "contextWindowSize": 1000000})
    return json.dumps(rec, separators=(",", ":"))


@pytest.mark.parametrize("model_first", [True, False])
def test_upstream_key_order_takes_the_fast_path_with_the_same_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_first: bool) -> None:
    from tokenmeter_plugins.dashscope_log import qwen_code

    lines = [upstream_line("a", U(1000, 50, t=200, total=1250), model_first=model_first),
             upstream_line("b", {"cachedContentTokenCount": 10, "promptTokenCount": 100,
                                 "candidatesTokenCount": 5, "totalTokenCount": 105}, model_first=model_first)]
    slow = one(tmp_path / "slow", *lines).records

    class NoJson:  # the fast path must not need json.loads for lines in Qwen Code's own shape
        @staticmethod
        def loads(data: Any) -> Any:
            if b'"uuid"' in data:
                raise AssertionError("json.loads of a whole line")
            return json.loads(data)  # the small usage object itself is fine

    monkeypatch.setattr(qwen_code, "json", NoJson)
    fast = one(tmp_path / "fast", *lines).records
    assert fast == slow
    assert [(r.key, r.model, r.project, r.session) + fields(r) for r in fast] == [
        ("a", "qwen3-coder-plus", "/home/me/app", "s1", 1000, 0, 250, 200, 1250),
        ("b", "qwen3-coder-plus", "/home/me/app", "s1", 100, 10, 5, None, 105)]


def test_out_of_range_values_are_skipped_not_fatal(tmp_path: Path) -> None:
    """A corrupt number or date must cost one line, not the whole source (SQLite ints are 64-bit)."""
    from tokenmeter.fetch import run_one
    from tokenmeter.store import Store

    huge = 10**20
    write_tree(tmp_path / "q", {"s1.jsonl": [
        line("g1", usage=U(10, 1)),
        line("f1", usage=U(huge, 1, total=huge + 1)),  # fast path
        line("j1", usage=U(huge, 1, total=huge + 1), order="other"),  # json path
        line("f2", usage=U(10, 1), ts="9999-12-31T23:00:00-05:00"),
        line("j2", usage=U(10, 1), ts="0001-01-01T00:30:00+01:00", order="other"),
        line("g2", usage=U(20, 2)),
    ]})
    store = Store.open(tmp_path / "t.db")
    try:
        result = run_one(store, QwenCodeSource, {"roots": [str(tmp_path / "q")]}, ctx=fake_context("qwen-code"))
        rows = store.usage_rows(source="qwen-code")
    finally:
        store.close()
    assert (result.status, result.message) == ("ok", "")
    assert sorted(r["key"] for r in rows) == ["g1", "g2"]
    assert result.skipped_lines == 4
    assert [e.split(": ", 1)[1] for e in result.skip_examples] == [
        "token count over 10^12", "token count over 10^12",
        "bad timestamp '9999-12-31T23:00:00-05:00'", "bad timestamp '0001-01-01T00:30:00+01:00'"]


def test_deeply_nested_garbage_is_skipped_not_fatal(tmp_path: Path) -> None:
    deep = b"[" * 100_000
    data = b"\n".join([
        line("g1", usage=U(10, 1)).encode(),
        deep,  # no usage: only checked
        b'{"uuid":"x","usageMetadata":' + deep,  # looks like a call: parsed
        line("g2", usage=U(20, 2)).encode(),
    ]) + b"\n" + deep  # an unterminated last line
    write_tree(tmp_path / "q", {"s1.jsonl": data})
    got = collect(QwenCodeSource, {"roots": [str(tmp_path / "q")]})
    assert [r.key for r in got.records] == ["g1", "g2"]
    assert got.ctx.skipped == 2
    assert [e.rsplit(":", 2)[1:] for e in got.ctx.skip_examples] == [["2", " corrupt JSON"], ["3", " corrupt JSON"]]


def test_a_file_added_right_after_the_availability_check_is_read(tmp_path: Path) -> None:
    # the fetch reuses the walk available() just made only while no folder of it changed
    settings = QwenCodeSource.Settings(roots=[str(tmp_path)])
    write_tree(tmp_path, {"a.jsonl": [line("u1", usage=U(1, 1))]})
    src = QwenCodeSource(settings, fake_context("qwen-code"))
    assert src.available() is None
    time.sleep(0.05)  # folder times tick in milliseconds (the kernel's coarse clock)
    write_tree(tmp_path, {"b.jsonl": [line("u2", usage=U(2, 2))]})
    write_tree(tmp_path, {"c.jsonl": [line("u3", usage=U(3, 3))]}, project="-home-me-other")
    got = [i for i in src.fetch_batches(Window(None, datetime(2030, 1, 1, tzinfo=UTC)), {}) if hasattr(i, "rows")]
    assert sorted(r[0] for b in got for r in b.rows) == ["u1", "u2", "u3"]
    # unchanged folders: the walk is reused (the next fetch finds the same files)
    assert src.available() is None
    again = [i for i in src.fetch_batches(Window(None, datetime(2030, 1, 1, tzinfo=UTC)), {}) if hasattr(i, "rows")]
    assert sorted(r[0] for b in again for r in b.rows) == ["u1", "u2", "u3"]
