"""Incremental log reading (tokenmeter_plugins.dashscope_log.tail): appends, truncation, replacement,
rotation, vanished files, checkpoints and a kill in the middle of a run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from tokenmeter_plugins.dashscope_log import DashscopeLogSource, QwenCodeSource, tail

from tokenmeter import Cursor, UsageRecord, Window
from tokenmeter.testing import collect, fake_context

HEADER = "timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd"


def row(i: int, tokens: int = 100) -> str:
    return f"2026-03-02T10:{i // 60:02d}:{i % 60:02d}Z\tqwen-plus\tqwen-singapore\t{tokens}\t{i}\t0.00001"


def write(path: Path, rows: list[str], *, header: bool = True, mode: str = "w") -> None:
    with open(path, mode) as f:
        f.write("".join(x + "\n" for x in ([HEADER] if header else []) + rows))


class FakeStore:
    """The host's contract: records and cursor committed together at each Cursor; keys replace."""

    def __init__(self) -> None:
        self.rows: dict[str, UsageRecord] = {}
        self.cursor: dict[str, Any] = {}

    def run(self, source: type, settings: dict[str, Any], *, kill_after_checkpoints: int | None = None,
            ctx: Any = None) -> tuple[int, Any]:
        ctx = ctx or fake_context(source.id)
        src = source(source.Settings(**settings), ctx)
        pending: list[UsageRecord] = []
        read = checkpoints = 0
        for item in src.fetch(Window(None, ctx.now()), json.loads(json.dumps(self.cursor))):
            if isinstance(item, Cursor):
                for rec in pending:
                    self.rows[rec.key] = rec
                pending = []
                self.cursor = json.loads(json.dumps(dict(item.state)))
                checkpoints += 1
                if kill_after_checkpoints is not None and checkpoints >= kill_after_checkpoints:
                    return read, ctx  # killed: nothing after the last checkpoint is committed
            else:
                read += 1
                pending.append(item)
        for rec in pending:
            self.rows[rec.key] = rec
        return read, ctx

    def total(self, field: str = "input_tokens") -> int:
        return sum(getattr(r, field) for r in self.rows.values())


def test_append_reads_only_new_lines(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(10)])
    store = FakeStore()
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 10
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 0  # warm: nothing new
    write(p, [row(i) for i in range(10, 13)], header=False, mode="a")
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 3
    assert len(store.rows) == 13 and store.total("output_tokens") == sum(range(13))
    entry = store.cursor["files"][str(p)]
    assert entry["offset"] == entry["size"] == p.stat().st_size


def test_warm_run_does_not_open_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(1)])
    store = FakeStore()
    store.run(DashscopeLogSource, {"paths": [str(p)]})
    opened: list[str] = []
    real_open = open

    def spy(file: Any, *a: Any, **k: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    ctx = fake_context("dashscope-log")
    src = DashscopeLogSource(DashscopeLogSource.Settings(paths=[str(p)]), ctx)
    assert list(src.fetch(Window(None, ctx.now()), store.cursor)) == []
    assert opened == []


def test_truncated_file_is_reread_without_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(10)])
    store = FakeStore()
    store.run(DashscopeLogSource, {"paths": [str(p)]})
    write(p, [row(i, tokens=7) for i in range(50, 52)])  # truncated and rewritten, smaller
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 2
    assert len(store.rows) == 12


def test_replaced_file_same_size_or_bigger(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(5)])
    store = FakeStore()
    store.run(DashscopeLogSource, {"paths": [str(p)]})
    # replaced by a new file (new inode) with the same lines plus more: no duplicates
    tmp = tmp_path / "new.tmp"
    write(tmp, [row(i) for i in range(8)])
    os.replace(tmp, p)
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 8
    assert len(store.rows) == 8
    # rewritten in place (same inode), longer, different first line: read again from 0
    inode = p.stat().st_ino
    with open(p, "r+") as f:
        f.write("".join(x + "\n" for x in [HEADER] + [row(i, tokens=999) for i in range(9)]))
        f.truncate()
    assert p.stat().st_ino == inode
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 9
    assert len(store.rows) == 8 + 9


def test_rotation_by_rename_continues_where_it_stopped(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(5)])
    store = FakeStore()
    settings = {"paths": [str(tmp_path / "u.tsv*")]}
    store.run(DashscopeLogSource, settings)
    write(p, [row(5)], header=False, mode="a")  # written just before rotation
    os.rename(p, tmp_path / "u.tsv.1")
    write(p, [row(6), row(7)])
    n, _ = store.run(DashscopeLogSource, settings)
    assert n == 3  # one line from the rotated file (continued by inode) + two in the new file
    assert len(store.rows) == 8
    assert set(store.cursor["files"]) == {str(p), str(tmp_path / "u.tsv.1")}


def test_copytruncate_rotation_gives_same_keys(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(5)] + [row(4)])  # incl. an identical line
    store = FakeStore()
    settings = {"paths": [str(tmp_path / "u.tsv*")]}
    store.run(DashscopeLogSource, settings)
    shutil.copy(p, tmp_path / "u.tsv.1")
    write(p, [row(9)])
    n, _ = store.run(DashscopeLogSource, settings)
    assert n == 7  # the copy is re-read (same keys, replaced) and the new line read
    assert len(store.rows) == 7


def test_vanished_file_is_dropped(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    write(a, [row(1)])
    write(b, [row(2)])
    store = FakeStore()
    settings = {"paths": [str(tmp_path / "*.tsv")]}
    store.run(DashscopeLogSource, settings)
    b.unlink()
    n, ctx = store.run(DashscopeLogSource, settings)
    assert n == 0 and ctx.skipped == 0 and ctx.warnings == []
    assert list(store.cursor["files"]) == [str(a)]


def test_vanished_between_plan_and_read(tmp_path: Path) -> None:
    p = tmp_path / "gone.tsv"
    plan = tail.TailPlan(str(p), 0, None, 10, "new")
    assert list(tail.read_file(tail.LineParser, None, plan)) == [("entry", None, True)]  # type: ignore[type-abstract]


def test_kill_mid_run_loses_and_duplicates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(6):
        write(tmp_path / f"u{i}.tsv", [row(j, tokens=i + 1) for j in range(50)])
    settings = {"paths": [str(tmp_path / "*.tsv")]}
    full = FakeStore()
    full.run(DashscopeLogSource, settings)
    monkeypatch.setattr(tail, "CHECKPOINT_RECORDS", 60)
    monkeypatch.setattr(tail, "CHECKPOINT_BYTES", 3000)
    monkeypatch.setattr(tail, "BLOCK_SIZE", 512)  # in-file checkpoints too
    store = FakeStore()
    store.run(DashscopeLogSource, settings, kill_after_checkpoints=2)
    assert 0 < len(store.rows) < 300
    store.run(DashscopeLogSource, settings, kill_after_checkpoints=3)
    store.run(DashscopeLogSource, settings)
    assert store.rows.keys() == full.rows.keys()
    assert store.total() == full.total() == 50 * sum(range(1, 7))
    assert store.run(DashscopeLogSource, settings)[0] == 0


def test_skip_positions_count_lines_before_the_cursor(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(10)])
    store = FakeStore()
    store.run(DashscopeLogSource, settings := {"paths": [str(p)]})
    with open(p, "a") as f:
        f.write(row(10) + "\n" + "broken\n")
    _, ctx = store.run(DashscopeLogSource, settings)
    assert ctx.skip_examples == [f"{p}:13: short row (1 fields, expected 6)"]


def test_qwen_code_incremental_with_forks(tmp_path: Path) -> None:
    def line(uuid: str, session: str, p: int) -> str:
        return json.dumps({"uuid": uuid, "parentUuid": None, "sessionId": session,
                           "timestamp": "2026-03-03T10:00:00Z", "type": "assistant", "cwd": "/w",
                           "message": {"role": "model", "parts": [{"text": "x" * 3000}]}, "model": "qwen-max",
                           "usageMetadata": {"promptTokenCount": p, "candidatesTokenCount": 1,
                                             "totalTokenCount": p + 1, "cachedContentTokenCount": 0}},
                          separators=(",", ":"))

    chats = tmp_path / "q" / "projects" / "-w" / "chats"
    chats.mkdir(parents=True)
    (chats / "s1.jsonl").write_text(line("a", "s1", 10) + "\n" + line("b", "s1", 20) + "\n")
    store = FakeStore()
    settings = {"roots": [str(tmp_path / "q")]}
    assert store.run(QwenCodeSource, settings)[0] == 2
    # a /branch fork appears later, copying a and b, then continuing; s1 also grows
    (chats / "s2.jsonl").write_text(line("a", "s2", 10) + "\n" + line("b", "s2", 20) + "\n"
                                    + line("c", "s2", 40) + "\n")
    with open(chats / "s1.jsonl", "a") as f:
        f.write(line("d", "s1", 80) + "\n")
    store.run(QwenCodeSource, settings)
    assert sorted(store.rows) == ["a", "b", "c", "d"]
    assert store.total() == 150


def test_collect_cursor_is_json(tmp_path: Path) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(1)])
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    entry = got.cursor["files"][str(p)]
    assert set(entry) == {"dev", "ino", "size", "mtime", "offset", "hlen", "head", "state"}
    assert got.cursor["v"] == 1


def _sums(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {f: sum(r[f] or 0 for r in rows) for f in ("requests", "input_tokens", "output_tokens",
                                                        "cache_read_tokens", "reasoning_tokens")}


def test_real_host_twice_gives_identical_totals(samples: Path, tmp_path: Path) -> None:
    from tokenmeter.testing import run_source

    shutil.copytree(samples / "qwen-code" / "home", tmp_path / "home")
    shutil.copy(samples / "dashscope" / "qwen-usage.tsv", tmp_path / "u.tsv")
    expected = json.loads((samples / "qwen-code" / "expected.json").read_text())["totals"]
    db = tmp_path / "t.db"
    for _ in range(2):
        rows = run_source(QwenCodeSource, {"roots": [str(tmp_path / "home" / ".qwen")]}, db_path=db)
        assert _sums(rows) == {"requests": expected["requests"], "input_tokens": expected["prompt"],
                               "output_tokens": expected["candidates"], "cache_read_tokens": expected["cached"],
                               "reasoning_tokens": expected["thoughts"]}
        tsv_rows = run_source(DashscopeLogSource, {"paths": [str(tmp_path / "u.tsv")]}, db_path=db)
        assert len(tsv_rows) == 60 and sum(r["input_tokens"] for r in tsv_rows) == 121427


def test_real_host_after_a_kill_gives_identical_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenmeter.fetch import run_one
    from tokenmeter.store import Store

    for i in range(4):
        write(tmp_path / f"u{i}.tsv", [row(j, tokens=i + 1) for j in range(40)])
    settings = {"paths": [str(tmp_path / "*.tsv")]}
    monkeypatch.setattr(tail, "CHECKPOINT_RECORDS", 50)

    class Killed(KeyboardInterrupt):
        pass

    class Dying(DashscopeLogSource):
        def fetch(self, window: Window, cursor: Any) -> Any:
            for n, item in enumerate(super().fetch(window, cursor)):
                if n == 90:  # after the first checkpoint (at 50 records) and before the next
                    raise Killed
                yield item

    store = Store.open(tmp_path / "k.db")
    try:
        with pytest.raises(Killed):
            run_one(store, Dying, settings, ctx=fake_context("dashscope-log"))
        assert 0 < len(store.usage_rows(source="dashscope-log")) < 160
        run_one(store, DashscopeLogSource, settings, ctx=fake_context("dashscope-log"))
        run_one(store, DashscopeLogSource, settings, ctx=fake_context("dashscope-log"))
        rows = store.usage_rows(source="dashscope-log")
    finally:
        store.close()
    assert len(rows) == 160
    assert sum(r["input_tokens"] for r in rows) == 40 * (1 + 2 + 3 + 4)


def test_a_line_without_end_is_skipped_with_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage without newlines (e.g. NUL blocks after a crash) is skipped, not held in memory."""
    monkeypatch.setattr(tail, "BLOCK_SIZE", 256)
    monkeypatch.setattr(tail, "MAX_LINE", 1000, raising=False)
    p = tmp_path / "u.tsv"
    with open(p, "w") as f:
        f.write(HEADER + "\n" + row(1) + "\n" + "\0" * 5000 + "\n" + row(2) + "\n" + "\0" * 3000)
    store = FakeStore()
    n, ctx = store.run(DashscopeLogSource, {"paths": [str(p)]})
    assert n == 2 and sorted(r.output_tokens for r in store.rows.values()) == [1, 2]
    assert ctx.skipped == 1 and ctx.skip_examples == [f"{p}:3: line longer than 1000 bytes"]
    entry = store.cursor["files"][str(p)]
    assert entry["size"] == p.stat().st_size  # unchanged next time: not scanned again
    assert entry["offset"] == p.stat().st_size - 3000  # the unfinished garbage is not passed
    assert store.run(DashscopeLogSource, {"paths": [str(p)]})[0] == 0
    with open(p, "a") as f:  # the garbage line ends; a good line follows
        f.write("\n" + row(3) + "\n")
    n, ctx = store.run(DashscopeLogSource, {"paths": [str(p)]})
    assert n == 1 and ctx.skip_examples == [f"{p}:5: line longer than 1000 bytes"]
    assert len(store.rows) == 3


def test_a_checkpoint_keeps_the_place_in_files_not_read_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill after a checkpoint must not send files that were not reached yet back to byte 0."""
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    write(a, [row(i) for i in range(10)])
    write(b, [row(i, tokens=7) for i in range(10)])
    settings = {"paths": [str(tmp_path / "*.tsv")]}
    store = FakeStore()
    store.run(DashscopeLogSource, settings)
    write(a, [row(i) for i in range(10, 20)], header=False, mode="a")
    write(b, [row(i, tokens=7) for i in range(10, 12)], header=False, mode="a")
    monkeypatch.setattr(tail, "CHECKPOINT_RECORDS", 5)  # a checkpoint once a.tsv is read
    store.run(DashscopeLogSource, settings, kill_after_checkpoints=1)
    assert store.cursor["files"][str(b)]["offset"] < b.stat().st_size  # b's old place is kept
    n, _ = store.run(DashscopeLogSource, settings)
    assert n == 2  # only b's two new lines, not all of b again
    assert len(store.rows) == 32
