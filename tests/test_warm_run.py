"""A warm run (nothing new in the logs) does little: folder listings come from the last walk while
their folders are unchanged, and the bare report imports none of the other commands nor the
pricing engine. Each shortcut must give what the long way gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers_host import cli_run
from helpers_logs import qwen_line
from tokenmeter_plugins.dashscope_log import QwenCodeSource, paths

from tokenmeter import Window
from tokenmeter.sources import SourceContext


def write_chat(root: Path, project: str, session: str, prompt: int) -> Path:
    chats = root / "projects" / project / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    path = chats / f"{session}.jsonl"
    path.write_text(qwen_line(f"u-{session}", session, prompt) + "\n")
    return path


def source(root: Path, data: Path) -> QwenCodeSource:
    ctx = SourceContext("qwen-code", now=datetime(2030, 1, 1, tzinfo=UTC), data_dir=data)
    return QwenCodeSource(QwenCodeSource.Settings(roots=[str(root)]), ctx)


def keys(src: QwenCodeSource) -> list[str]:
    batches = src.fetch_batches(Window(None, datetime(2030, 1, 1, tzinfo=UTC)), {})
    return sorted(r[0] for b in batches if hasattr(b, "rows") for r in b.rows)


# -- folder listings ------------------------------------------------------------------------------
@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tree is made by the test a moment ago: trust its folders at once (the kernel's coarse
    # clock still needs the short sleeps below between changes)
    monkeypatch.setattr(paths.FolderCache, "RACY_NS", 0)


def test_unchanged_folders_are_not_listed_again(tmp_path: Path, no_racy_window: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, data = tmp_path / "q", tmp_path / "data"
    write_chat(root, "-a", "s1", 10)
    write_chat(root, "-b", "s2", 20)
    assert source(root, data).available() is None
    stored = json.loads((data / "folders.json").read_text())
    assert str(root / "projects" / "-a" / "chats") in stored["folders"]
    assert (data / "folders.json").stat().st_mode & 0o777 == 0o600

    listed: list[str] = []
    real = os.scandir

    def counting(path: str) -> object:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(paths.os, "scandir", counting)
    src = source(root, data)  # a new run: the listings come from the file
    assert src.available() is None and listed == []
    assert keys(src) == ["u-s1", "u-s2"]

    time.sleep(0.05)  # folder times tick in milliseconds
    write_chat(root, "-a", "s3", 30)  # a new file changes its folder, and only that one is listed
    src = source(root, data)
    assert src.available() is None
    assert listed == [str(root / "projects" / "-a" / "chats")]
    assert keys(src) == ["u-s1", "u-s2", "u-s3"]


def test_a_walk_with_the_cache_finds_what_a_walk_without_it_finds(tmp_path: Path, no_racy_window: None) -> None:
    root, data = tmp_path / "q", tmp_path / "data"
    write_chat(root, "-a", "s1", 10)
    (root / "projects" / "-a" / "chats" / "archive").mkdir()
    write_chat(root, "-a", "s0", 5).rename(root / "projects" / "-a" / "chats" / "archive" / "s0.jsonl")
    sub = root / "projects" / "-a" / "subagents" / "s9"
    sub.mkdir(parents=True)
    (sub / "agent-x.jsonl").write_text("")
    (sub / "agent-x.meta.json").write_text("{}")
    (root / "projects" / "-a" / "elsewhere").mkdir()
    (root / "usage").mkdir()
    (root / "usage" / "token-usage-2026-03.jsonl").write_text("")
    (root / "usage" / "other.jsonl").write_text("")
    (root / "projects" / "-a" / "chats" / "linked.jsonl").symlink_to(root / "usage" / "other.jsonl")

    def layout(src: QwenCodeSource) -> tuple[object, ...]:
        return (*src._layout(), src._other_dirs, src._seen_dirs)

    plain = layout(source(root, data))  # lists every folder, writes the file
    assert layout(source(root, data)) == plain  # from the file
    assert layout(QwenCodeSource(QwenCodeSource.Settings(roots=[str(root)]),
                                 SourceContext("qwen-code"))) == plain  # no data folder: no file
    chats, ledgers, transcripts, _ = plain[:4]  # type: ignore[misc]
    assert [os.path.basename(p) for p in chats] == ["linked.jsonl", "s1.jsonl", "s0.jsonl"]
    assert ledgers == [str(root / "usage" / "token-usage-2026-03.jsonl")]
    assert transcripts == [str(sub / "agent-x.jsonl")]
    # a folder holding a link is listed every time (the link's target may change on its own)
    assert str(root / "projects" / "-a" / "chats") not in json.loads((data / "folders.json").read_text())["folders"]


def test_a_folder_that_just_changed_is_listed_again_next_time(tmp_path: Path) -> None:
    root, data = tmp_path / "q", tmp_path / "data"
    write_chat(root, "-a", "s1", 10)
    assert source(root, data).available() is None
    # everything here changed less than RACY_NS ago: a change in the same clock tick would not show
    assert not (data / "folders.json").exists()


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"v": 1, "folders": []}', '{"v": 99, "folders": {}}',
                                     '{"v": 1, "folders": {"%s": [1, 2]}}'])
def test_a_broken_cache_file_is_ignored(tmp_path: Path, no_racy_window: None, content: str) -> None:
    root, data = tmp_path / "q", tmp_path / "data"
    write_chat(root, "-a", "s1", 10)
    data.mkdir()
    (data / "folders.json").write_text(content.replace("%s", str(root / "projects")))
    src = source(root, data)
    assert src.available() is None
    assert keys(src) == ["u-s1"]
    assert json.loads((data / "folders.json").read_text())["v"] == paths.FolderCache.VERSION


def test_an_unwritable_data_folder_only_costs_the_listing(tmp_path: Path, no_racy_window: None) -> None:
    root = tmp_path / "q"
    write_chat(root, "-a", "s1", 10)
    (tmp_path / "file").write_text("")
    src = source(root, tmp_path / "file" / "data")  # cannot be made: a file is in the way
    assert src.available() is None and keys(src) == ["u-s1"]


def test_permissions_are_checked_even_when_the_listing_is_kept(tmp_path: Path, no_racy_window: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root, data = tmp_path / "q", tmp_path / "data"
    write_chat(root, "-a", "s1", 10)
    write_chat(root, "-b", "s2", 20)
    assert source(root, data).available() is None
    denied = str(root / "projects" / "-b" / "chats")
    real = paths._access
    monkeypatch.setattr(paths, "_access", lambda p, mode: p != denied and real(p, mode))
    with pytest.raises(paths.SourceDataError, match="cannot read .*/projects/-b/chats: permission denied"):
        source(root, data).available()


# -- imports --------------------------------------------------------------------------------------
def test_the_bare_report_imports_no_other_command(tokenmeter_env: Path) -> None:
    code = ("import json, sys\nfrom tokenmeter.cli import cli\n"
            "try:\n    cli(['--all', '--json'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    env = {**os.environ, "TOKENMETER_HOME": str(tokenmeter_env)}
    subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, env=env)  # creates the database
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "tokenmeter_plugins.dashscope_log" in loaded  # the plugins were loaded, their sources asked
    assert "tokenmeter.cli.report" in loaded
    assert not loaded & {"tokenmeter.cli.budget", "tokenmeter.cli.dashboard", "tokenmeter.cli.db",
                         "tokenmeter.cli.plugin_install", "tokenmeter.budgets", "webbrowser",
                         "platformdirs", "tokenmeter.pricing.engine", "logging"}


def test_every_command_is_still_there() -> None:
    from tokenmeter.cli import BUILTIN_COMMANDS, cli

    listed = cli_run(["--help"]).stdout
    for name in BUILTIN_COMMANDS:
        assert f"\n  {name} " in listed
        assert cli_run([name, "--help"]).exit_code == 0
    assert cli.get_command(None, "no-such-command") is None  # type: ignore[arg-type]
