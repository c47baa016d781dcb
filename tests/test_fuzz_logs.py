"""Fuzz (hypothesis): garbage lines anywhere in a Qwen Code chat log or a DashScope TSV log never raise
and never change what the good lines add up to (issue 13)."""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_qwen_code_calls import assistant, event, user
from tokenmeter_plugins.dashscope_log import DashscopeLogSource, QwenCodeSource

from tokenmeter.testing import check_records, collect

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NASTY = [
    b"", b"\r", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe\xfd", b"\t\t\t\t\t", b"{}", b"[]", b"null", b"0", b'"text"',
    b"[" * 5000 + b"]" * 5000, b"{" * 3000, b'{"a": 1e999999}', b'{"type": "assistant"}',
    b'{"type": "assistant", "usageMetadata": "x"}', b'{"type": "assistant", "usageMetadata": {"promptTokenCount": -5}}',
    b'{"type": "system", "subtype": "ui_telemetry", "systemPayload": {"uiEvent": null}}',
    b'{"type": "system", "subtype": "ui_telemetry", "systemPayload": {"uiEvent": {"event.name": 7}}}',
    "2026-03-02T10:00:00Z\tqwen-plus\tqwen-singapore\t٣\t2\t0.1".encode(),
    b"2026-03-02T10:00:00Z\tqwen-plus\tqwen-singapore\t1_000\t2\t0.1",
    b"2026-03-02T10:00:00Z\tqwen-plus\tqwen-singapore\t1\t2\tInfinity",
    b"9999-12-31T23:59:59-23:59\tm\tp\t1\t2\t0.1",
    b"\x1b]0;owned\x07",
]
garbage = st.one_of(st.sampled_from(NASTY), st.binary(max_size=80))
# (position among the good lines, garbage); the last good line keeps its newline
insertions = st.lists(st.tuples(st.integers(min_value=0, max_value=20), garbage), max_size=4)


def build(good: list[bytes], inserts: list[tuple[int, bytes]], tail: bytes | None, *, keep_first: int) -> bytes:
    """``good`` lines with each garbage as whole separate lines (never before the first ``keep_first``
    lines); ``tail`` glued at the very end without a final newline."""
    lines = list(good)
    for pos, junk in sorted(inserts, key=lambda x: x[0], reverse=True):
        lines.insert(max(keep_first, min(pos, len(lines))), junk)
    body = b"".join(line + b"\n" for line in lines)
    return body + (tail or b"")


def totals(records: list[Any]) -> tuple[Any, ...]:
    return (len(records), sum(r.requests or 0 for r in records), sum(r.input_tokens or 0 for r in records),
            sum(r.output_tokens or 0 for r in records), sum(r.cache_read_tokens or 0 for r in records),
            sum((r.cost or Decimal(0)) for r in records), sorted(r.key for r in records))


# -- Qwen Code chat logs ---------------------------------------------------------------------------

QWEN_GOOD = [line.encode() for line in (
    user("u0"),
    event("t1", "chatcmpl-1", 1000, 50, cached=400, thoughts=10, parent="u0"),
    assistant("a1", "t1", 1000, 50, cached=400, thoughts=10),
    event("t2", "chatcmpl-2", 2000, 80, agent="general-purpose", parent="a1"),
)]


def qwen_totals(content: bytes) -> tuple[Any, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "projects" / "-home-me-app" / "chats" / "5e55i0n0-0000-4000-8000-000000000001.jsonl"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        got = collect(QwenCodeSource, {"roots": [tmp]})
    check_records(got.records)
    return totals(got.records)


QWEN_EXPECTED = qwen_totals(b"".join(line + b"\n" for line in QWEN_GOOD))


@FUZZ
@given(inserts=insertions, tail=st.one_of(st.none(), garbage))
def test_garbage_in_a_qwen_code_chat_log_changes_no_total(inserts: list[tuple[int, bytes]],
                                                         tail: bytes | None) -> None:
    assert qwen_totals(build(QWEN_GOOD, inserts, tail, keep_first=0)) == QWEN_EXPECTED


def test_a_torn_copy_of_an_assistant_line_adds_no_call() -> None:
    # found by an earlier version of the fuzz test above: a truncated copy of a good line, as its own line
    u0, t1, a1, t2 = QWEN_GOOD
    assert qwen_totals(b"".join(line + b"\n" for line in (u0, t1, a1[:-5], a1, t2))) == QWEN_EXPECTED


# -- DashScope TSV logs ----------------------------------------------------------------------------

TSV_GOOD = [
    b"timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd",
    b"2026-03-02T10:00:00Z\tqwen-plus\tqwen-singapore\t100\t20\t0.000064",
    b"2026-03-02T10:00:01Z\tqwen-max\tqwen-beijing\t2500\t300\t0.0125",
    b"2026-03-02T10:00:00Z\tqwen-plus\tqwen-singapore\t100\t20\t0.000064",  # the same call again: two calls
    b"2026-03-03T23:59:59+08:00\tqwen-flash\t\t7\t0\t",
]


def tsv_totals(content: bytes) -> tuple[Any, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "usage.tsv"
        path.write_bytes(content)
        got = collect(DashscopeLogSource, {"paths": [str(path)]})
    check_records(got.records)
    return totals(got.records)[:-1]  # keys count identical lines by position, so they may shift


TSV_EXPECTED = tsv_totals(b"".join(line + b"\n" for line in TSV_GOOD))


@FUZZ
@given(inserts=insertions, tail=st.one_of(st.none(), garbage))
def test_garbage_in_a_dashscope_tsv_log_changes_no_total(inserts: list[tuple[int, bytes]],
                                                        tail: bytes | None) -> None:
    assert tsv_totals(build(TSV_GOOD, inserts, tail, keep_first=1)) == TSV_EXPECTED


def test_the_good_lines_add_up_to_what_the_fuzz_tests_expect() -> None:
    assert QWEN_EXPECTED[:4] == (2, 2, 3000, 130) and QWEN_EXPECTED[-1] == ["r:chatcmpl-1", "r:chatcmpl-2"]
    assert TSV_EXPECTED[:4] == (4, 4, 2707, 340) and TSV_EXPECTED[5] == Decimal("0.012628")
    assert json.loads(QWEN_GOOD[1])["systemPayload"]["uiEvent"]["response_id"] == "chatcmpl-1"
