"""Issue 13 items 4 and 9: unreadable logs are reported (never skipped in silence); a long ingest
checkpoints inside one file by records and by time; a second fetch of the same source waits or
steps aside instead of repeating the work.

Tests run as root, whom a mode of 000 does not stop: EACCES is simulated at the reader's seams
(``tail._open``, ``paths._access``), and once for real by running the CLI as ``nobody``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers_logs import qwen_line
from tokenmeter_plugins.dashscope_log import DashscopeLogSource, paths, tail

from tokenmeter import Cursor, UsageRecord, Window
from tokenmeter import fetch as fetch_mod
from tokenmeter.fetch import run_one
from tokenmeter.store import Store
from tokenmeter.testing import fake_context

HEADER = "timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd"


def row(i: int, tokens: int = 100) -> str:
    return f"2026-03-02T10:{i // 60 % 60:02d}:{i % 60:02d}Z\tqwen-plus\tqwen-singapore\t{tokens}\t{i}\t0.00001"


def write(path: Path, rows: list[str], *, header: bool = True, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        f.write("".join(x + "\n" for x in ([HEADER] if header else []) + rows))


def deny(monkeypatch: pytest.MonkeyPatch, *denied: Path, access: bool = True) -> None:
    """Make ``denied`` files/folders unreadable to the reader, as EACCES would for a normal user:
    open fails, ``access`` says no, and glob does not see inside a denied folder."""
    names = {str(p) for p in denied}
    inside = tuple(n + os.sep for n in names)
    real_open, real_access, real_glob = tail._open, paths._access, paths.glob.glob

    def fake_open(path: str) -> Any:
        if path in names or path.startswith(inside):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path)

    def fake_access(path: str, mode: int) -> bool:
        return path not in names and not path.startswith(inside) and real_access(path, mode)

    def fake_glob(pattern: str, **kw: Any) -> list[str]:
        return [m for m in real_glob(pattern, **kw) if not os.path.abspath(m).startswith(inside)]

    monkeypatch.setattr(tail, "_open", fake_open)
    if access:
        monkeypatch.setattr(paths, "_access", fake_access)
        monkeypatch.setattr(paths.glob, "glob", fake_glob)


def run(store: Store, settings: dict[str, Any], source: type = DashscopeLogSource) -> Any:
    return run_one(store, source, settings, ctx=fake_context(source.id))


def stored(store: Store) -> list[dict[str, Any]]:
    return store.usage_rows(source="dashscope-log")


# -- item 4: unreadable logs ----------------------------------------------------------------------
def test_a_file_that_cannot_be_opened_is_the_sources_error_after_the_rest_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    write(a, [row(i) for i in range(10)])
    write(b, [row(i, tokens=7) for i in range(5)])
    settings = {"paths": [str(tmp_path / "*.tsv")]}
    deny(monkeypatch, b, access=False)  # only open() fails (an ACL, a race): still reported
    with Store.open(tmp_path / "t.db") as store:
        r = run(store, settings)
        assert (r.status, r.exit_code) == ("error", 6)
        assert r.message == (f"dashscope-log: cannot read {b}: permission denied; the readable logs were stored; "
                             "give the user running tokenmeter read access (and execute on folders), or leave the "
                             "path out of the source's settings")
        assert r.new == 10 and len(stored(store)) == 10  # a.tsv was committed before the error
        assert list(store.get_cursor("dashscope-log")["files"]) == [str(a)]
        monkeypatch.undo()  # readable again: only b is read
        r = run(store, settings)
        assert (r.status, r.new) == ("ok", 5)
        assert len(stored(store)) == 15


def test_an_unreadable_file_already_in_the_cursor_keeps_its_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.tsv"
    write(a, [row(i) for i in range(10)])
    with Store.open(tmp_path / "t.db") as store:
        run(store, {"paths": [str(a)]})
        write(a, [row(i) for i in range(10, 12)], header=False, mode="a")
        deny(monkeypatch, a)
        r = run(store, {"paths": [str(a)]})
        assert r.status == "error" and f"cannot read {a}: permission denied" in r.message
        assert str(a) in store.get_cursor("dashscope-log")["files"]
        monkeypatch.undo()
        assert run(store, {"paths": [str(a)]}).new == 2  # continued, not re-read from byte 0


def test_an_unreadable_folder_is_reported_not_globbed_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "logs" / "x" / "u.tsv", [row(i) for i in range(4)])
    write(tmp_path / "logs" / "y" / "u.tsv", [row(i, tokens=9) for i in range(3)])
    settings = {"paths": [str(tmp_path / "logs" / "*" / "*.tsv")]}
    with Store.open(tmp_path / "t.db") as store:
        assert run(store, settings).new == 7
        write(tmp_path / "logs" / "y" / "u.tsv", [row(9, tokens=9)], header=False, mode="a")
        deny(monkeypatch, tmp_path / "logs" / "y")  # cannot be listed: glob would just not see u.tsv
        r = run(store, settings)
        assert r.status == "error" and r.exit_code == 6
        assert f"cannot read {tmp_path / 'logs' / 'y'}: permission denied" in r.message
        # what lies behind the folder is not "vanished": its place is kept
        assert str(tmp_path / "logs" / "y" / "u.tsv") in store.get_cursor("dashscope-log")["files"]
        monkeypatch.undo()
        assert run(store, settings).new == 1


def test_expand_paths_names_what_it_cannot_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "r" / "projects" / "p1" / "chats" / "s.jsonl", [], header=False)
    write(tmp_path / "r" / "projects" / "p2" / "chats" / "s.jsonl", [], header=False)
    write(tmp_path / "f.tsv", [])
    deny(monkeypatch, tmp_path / "r" / "projects" / "p2" / "chats", tmp_path / "f.tsv")
    got = paths.expand_paths([str(tmp_path / "r" / "projects" / "*" / "chats" / "*.jsonl"), str(tmp_path / "f.tsv")])
    assert got == [str(tmp_path / "r" / "projects" / "p1" / "chats" / "s.jsonl"),
                   str(tmp_path / "r" / "projects" / "p2" / "chats"), str(tmp_path / "f.tsv")]
    assert [type(p).__name__ for p in got] == ["str", "Unreadable", "Unreadable"]
    with pytest.raises(paths.SourceDataError, match="and 1 more unreadable path"):
        paths.check_readable(got)


def test_qwen_code_reports_a_project_it_cannot_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenmeter_plugins.dashscope_log import QwenCodeSource

    root = tmp_path / "q"
    for project, uuid, prompt in (("-a", "u1", 10), ("-b", "u2", 20)):
        chats = root / "projects" / project / "chats"
        chats.mkdir(parents=True)
        (chats / f"s{prompt}.jsonl").write_text(qwen_line(uuid, f"s{prompt}", prompt) + "\n")
    deny(monkeypatch, root / "projects" / "-b" / "chats")
    settings = {"roots": [str(root)]}
    src = QwenCodeSource(QwenCodeSource.Settings(**settings), fake_context("qwen-code"))
    with pytest.raises(paths.SourceDataError, match="cannot read .*/projects/-b/chats: permission denied"):
        src.available()
    with Store.open(tmp_path / "t.db") as store:
        r = run(store, settings, QwenCodeSource)
        assert r.status == "error" and f"cannot read {root / 'projects' / '-b' / 'chats'}" in r.message
        assert [x["input_tokens"] for x in store.usage_rows(source="qwen-code")] == [10]


def _cli(home: Path, *args: str) -> Result:
    from tokenmeter.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_fetch_and_sources_report_an_unreadable_log(
        tokenmeter_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "logs" / "a.tsv", tmp_path / "logs" / "b.tsv"
    write(a, [row(i) for i in range(6)])
    write(b, [row(i, tokens=3) for i in range(2)])
    (tokenmeter_env / "config.toml").write_text(f'[sources.dashscope-log]\npaths = ["{tmp_path}/logs/*.tsv"]\n')
    deny(monkeypatch, b)
    result = _cli(tokenmeter_env, "sources", "--json")
    status = {r["source"]: r["status"] for r in json.loads(result.stdout)}["dashscope-log"]
    assert status.startswith(f"not ready: cannot read {b}: permission denied")
    result = _cli(tokenmeter_env, "fetch", "-f", "table")  # no names: not skipped, an error
    assert result.exit_code == 6
    assert f"dashscope-log: FAILED: cannot read {b}: permission denied" in result.stderr
    report = json.loads(_cli(tokenmeter_env, "--json", "--all").stdout)
    assert sum(r["input_tokens"] for r in report["rows"]) == 600  # a.tsv is stored


def test_cli_fetch_named_source_with_a_missing_path_says_so(tokenmeter_env: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "qwen-usage.tsv"
    (tokenmeter_env / "config.toml").write_text(f'[sources.dashscope-log]\npaths = ["{missing}"]\n')
    result = _cli(tokenmeter_env, "fetch", "dashscope-log", "-f", "table")
    assert result.exit_code == 6
    assert result.stderr.strip() == (f"dashscope-log: FAILED: no log file at {missing}: set `paths` in "
                                     "[sources.dashscope-log] of the config to the TSV files the orchestrator writes")
    # not named: skipped with the reason, as before (the default paths rarely all exist)
    result = _cli(tokenmeter_env, "fetch", "-f", "table")
    assert result.exit_code == 0 and f"dashscope-log: skipped (no log files at {missing})" in result.stdout


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the CLI as an unprivileged user")
def test_real_eacces_as_an_unprivileged_user() -> None:
    """No seams: `nobody` runs the CLI on a 0000 log next to a readable one, and a 0000 folder."""
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", sys.executable,
                            "-c", "import tokenmeter.cli"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:  # e.g. a virtual environment in a root-only temporary folder
        pytest.skip("`nobody` cannot import tokenmeter from this environment (the seam tests above cover it)")
    base = Path(tempfile.mkdtemp(prefix="tm-eacces-"))
    try:
        base.chmod(0o755)
        logs, home = base / "logs", base / "home"
        write(logs / "ok.tsv", [row(i) for i in range(3)])
        write(logs / "secret.tsv", [row(i, tokens=5) for i in range(2)])
        write(logs / "locked" / "more.tsv", [row(i, tokens=8) for i in range(2)])
        home.mkdir()
        (home / "config.toml").write_text(f'[sources.dashscope-log]\npaths = ["{logs}/*.tsv", "{logs}/*/*.tsv"]\n')
        (logs / "secret.tsv").chmod(0)
        (logs / "locked").chmod(0)
        for p in (home, logs):
            os.chown(p, 65534, 65534)
        env = {**os.environ, "TOKENMETER_HOME": str(home), "TOKENMETER_DB": str(home / "t.db"), "HOME": str(home)}
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", sys.executable, "-m",
               "tokenmeter"]
        out = subprocess.run([*cmd, "fetch", "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 6, out.stderr
        res = {r["source"]: r for r in json.loads(out.stdout)["sources"]}["dashscope-log"]
        assert res["status"] == "error" and res["new"] == 3
        assert f"cannot read {logs / 'secret.tsv'}: permission denied (and 1 more unreadable path)" in res["message"]
        out = subprocess.run([*cmd, "sources", "--json", "--no-check"], env=env, capture_output=True, text=True,
                             timeout=60)
        status = {r["source"]: r["status"] for r in json.loads(out.stdout)}["dashscope-log"]
        assert status.startswith("not ready: cannot read")
    finally:
        for p in (base / "logs" / "locked", base / "logs" / "secret.tsv"):
            if p.exists():
                p.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


# -- item 9: checkpoints inside a file, by records and by time ------------------------------------
class Killed(KeyboardInterrupt):
    pass


def dying(after: int, delay: float = 0.0) -> type[DashscopeLogSource]:
    class Dying(DashscopeLogSource):
        def fetch(self, window: Window, cursor: Any) -> Iterator[UsageRecord | Cursor]:
            n = 0
            for item in super().fetch(window, cursor):
                if isinstance(item, UsageRecord):
                    n += 1
                    if n > after:
                        raise Killed  # like a cron timeout: no clean end
                    time.sleep(delay)
                yield item

    return Dying


def test_a_kill_inside_one_big_file_keeps_a_record_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(400)])
    monkeypatch.setattr(tail, "BLOCK_SIZE", 1024)  # ~15 rows a block
    monkeypatch.setattr(tail, "CHECKPOINT_RECORDS", 50)
    with Store.open(tmp_path / "t.db") as store:
        with pytest.raises(Killed):
            run_one(store, dying(170), {"paths": [str(p)]}, ctx=fake_context("dashscope-log"))
        kept = len(stored(store))
        assert 100 <= kept <= 170  # committed inside the one file (every 50+ records), not only at its end
        assert 0 < store.get_cursor("dashscope-log")["files"][str(p)]["offset"] < p.stat().st_size
        r = run(store, {"paths": [str(p)]})
        assert r.new == 400 - kept and len(stored(store)) == 400
        assert sum(x["output_tokens"] for x in stored(store)) == sum(range(400))


def test_a_slow_ingest_checkpoints_by_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(120)])
    monkeypatch.setattr(tail, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(tail, "CHECKPOINT_SECONDS", 0.05, raising=False)  # records and bytes stay far below
    with Store.open(tmp_path / "t.db") as store:
        with pytest.raises(Killed):
            run_one(store, dying(100, delay=0.004), {"paths": [str(p)]}, ctx=fake_context("dashscope-log"))
        assert 0 < len(stored(store)) <= 100
        assert store.get_cursor("dashscope-log")["files"][str(p)]["offset"] < p.stat().st_size
        run(store, {"paths": [str(p)]})
        assert len(stored(store)) == 120


def test_checkpoint_entries_carry_the_parser_state_between_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Identical lines get keys ...:0, ...:1; a resume from a mid-file checkpoint must continue the count."""
    p = tmp_path / "u.tsv"
    write(p, [row(1)] * 300)
    monkeypatch.setattr(tail, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(tail, "CHECKPOINT_RECORDS", 40)
    with Store.open(tmp_path / "t.db") as store:
        with pytest.raises(Killed):
            run_one(store, dying(130), {"paths": [str(p)]}, ctx=fake_context("dashscope-log"))
        run(store, {"paths": [str(p)]})
        keys = sorted(int(r["key"].rsplit(":", 1)[1]) for r in stored(store))
    assert keys == list(range(300))


# -- item 9: one fetch of a source at a time --------------------------------------------------------
class Gate:
    """A source that reads its logs only once the test opens the gate (holding the lock meanwhile)."""

    def __init__(self) -> None:
        self.entered, self.go = threading.Event(), threading.Event()

    def source(self) -> type[DashscopeLogSource]:
        gate = self

        class Slow(DashscopeLogSource):
            def fetch(self, window: Window, cursor: Any) -> Iterator[UsageRecord | Cursor]:
                gate.entered.set()
                assert gate.go.wait(10)
                yield from super().fetch(window, cursor)

        return Slow


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    return t, out


def test_a_second_fetch_of_the_same_source_steps_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(10)])
    settings, db = {"paths": [str(p)]}, tmp_path / "t.db"
    monkeypatch.setattr(fetch_mod, "LOCK_WAIT", 0.2)
    gate = Gate()
    with Store.open(db) as first, Store.open(db) as second:
        t, out = _in_thread(lambda: run(first, settings, gate.source()))
        assert gate.entered.wait(10)
        started = time.monotonic()
        r2 = run(second, settings)
        assert time.monotonic() - started >= 0.2
        assert (r2.status, r2.message, r2.new) == ("skipped", "another fetch of this source is running", 0)
        gate.go.set()
        t.join(10)
        assert (out[0].status, out[0].new) == ("ok", 10)
        assert (db.parent / "t.db.dashscope-log.lock").exists()
        assert run(second, settings).status == "ok"  # the lock was released


def test_a_second_fetch_waits_then_reads_only_whats_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(10)])
    settings, db = {"paths": [str(p)]}, tmp_path / "t.db"
    monkeypatch.setattr(fetch_mod, "LOCK_WAIT", 10)
    gate = Gate()
    with Store.open(db) as first, Store.open(db) as second:
        t1, out1 = _in_thread(lambda: run(first, settings, gate.source()))
        assert gate.entered.wait(10)
        t2, out2 = _in_thread(lambda: run(second, settings))
        time.sleep(0.3)
        assert not out2  # waiting for the first
        gate.go.set()
        t1.join(10)
        t2.join(10)
    assert (out1[0].status, out1[0].new) == ("ok", 10)
    assert (out2[0].status, out2[0].new, out2[0].unchanged) == ("ok", 0, 0)  # nothing read twice


def test_other_sources_and_other_databases_are_not_held_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "LOCK_WAIT", 0)
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "b.db") as b:
        with fetch_mod.source_lock(a, "dashscope-log", 0) as held:
            assert held
            with fetch_mod.source_lock(a, "qwen-code", 0) as other, fetch_mod.source_lock(b, "dashscope-log", 0) as db2:
                assert other and db2
            with fetch_mod.source_lock(a, "dashscope-log", 0) as again:
                assert not again
    with Store.open(":memory:") as mem, fetch_mod.source_lock(mem, "x", 0) as held:
        assert held  # nothing to share


def test_two_processes_one_waits_for_the_other(tmp_path: Path, tokenmeter_env: Path) -> None:
    """A real second process: it waits while this one holds the lock, then fetches."""
    p = tmp_path / "u.tsv"
    write(p, [row(i) for i in range(5)])
    (tokenmeter_env / "config.toml").write_text(f'[sources.dashscope-log]\npaths = ["{p}"]\n')
    db = tokenmeter_env / "tokenmeter.db"
    with Store.open(db) as store:
        with fetch_mod.source_lock(store, "dashscope-log", 0) as held:
            assert held
            proc = subprocess.Popen([sys.executable, "-m", "tokenmeter", "fetch", "dashscope-log", "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
            time.sleep(1.0)
            assert proc.poll() is None  # still waiting for us
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    res = json.loads(out)["sources"][0]
    assert (res["status"], res["new"]) == ("ok", 5)
