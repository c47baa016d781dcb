"""Every command on a hub gives what it gives on SQLite: the same demo sources fetched into a
SQLite file and straight into a PostgreSQL hub, then each command's output compared."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers_host import cli_run

from tokenmeter.plugin_manager import get_sources
from tokenmeter.service import demo_config

ALL_PLUGINS = {"TOKENMETER_LOAD_PLUGINS": None, "TOKENMETER_NOW": "2026-03-14T18:00:00Z", "TZ": "Asia/Shanghai"}

COMMANDS = [
    ["report", "--all", "--by", "day,model", "-f", "json"],
    ["report", "--all", "--by", "provider,model,agent", "-f", "csv"],
    ["report", "--all", "--by", "machine,source", "-f", "tsv"],
    ["report", "--month", "--model", "FLASH", "-f", "table", "--wide"],
    ["report", "--all", "--by", "day", "--cost", "estimated", "--tz", "America/Los_Angeles", "-f", "json"],
    ["report", "--all", "-q"],
    ["daily", "-j", "--breakdown"],
    ["weekly", "-j"],
    ["session", "-j"],
    ["budget", "-f", "json"],
    ["forecast", "-f", "json"],
    ["quota", "-f", "json"],
    ["reconcile", "--all", "-f", "json"],
    ["prices", "qwen-flash", "-f", "json"],
    ["metrics"],
]


def _config(tmp_path: Path) -> Path:
    cfg = demo_config(get_sources(), tmp_path / "data")
    lines = ['[tokenmeter]', 'machine_name = "team-server"', "",
             "[budgets.month]", 'limit = "5"', 'currency = "USD"', 'period = "month"', ""]
    for sid, table in cfg.sources.items():
        lines.append(f'[sources."{sid}"]')
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(db: str, config: Path, args: list[str]) -> tuple[int, str]:
    result = cli_run(["--db", db, "--config", str(config), *args], env=ALL_PLUGINS)
    return result.exit_code, result.stdout


def _same(text: str) -> str:
    # what legitimately differs: the database's name and when rows were fetched
    text = re.sub(r'"fetched_at": "[^"]*"', '"fetched_at": "-"', text)
    text = re.sub(r"(_timestamp_seconds\{[^}]*\}) \S+", r"\1 <time>", text)
    return re.sub(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)", "<time>", text)


@pytest.fixture
def both(tmp_path, pg_url):
    config = _config(tmp_path)
    lite = str(tmp_path / "lite.db")
    for db in (lite, pg_url):
        code, out = _run(db, config, ["fetch"])
        assert code == 0, out
    return lite, pg_url, config


def test_every_command_gives_the_same_output_on_both_backends(both):
    lite, hub, config = both
    for args in COMMANDS:
        a, b = _run(lite, config, args), _run(hub, config, args)
        assert a[0] == b[0], args
        assert _same(a[1]) == _same(b[1]), args
    code, out = _run(hub, config, ["report", "--all", "--by", "machine", "-f", "json"])
    machines = [r["machine"] for r in json.loads(out)["rows"]]
    assert code == 0 and machines == ["team-server"]


def test_export_dashboard_sources_reprice_migrate_and_merge_on_a_hub(both, tmp_path):
    lite, hub, config = both
    exported = [json.loads(_run(db, config, ["db", "export", "-f", "json"])[1]) for db in (lite, hub)]
    assert len(exported[0]) == len(exported[1]) > 100
    assert _same(json.dumps(exported[0], sort_keys=True)) == _same(json.dumps(exported[1], sort_keys=True))

    pages = []
    for name, db in (("a", lite), ("b", hub)):
        out = tmp_path / f"{name}.html"
        code, _ = _run(db, config, ["dashboard", "-o", str(out)])
        assert code == 0
        pages.append(_same(out.read_text()))
    assert pages[0] == pages[1]

    code, out = _run(hub, config, ["sources", "-f", "json"])
    states = {s["source"]: s["last_success"] for s in json.loads(out)}
    assert code == 0 and states["dashscope-log"] and states["qwen-code"]
    assert [_run(db, config, ["reprice"]) for db in (lite, hub)][0][0] == 0
    assert _run(lite, config, ["reprice"])[1] == _run(hub, config, ["reprice"])[1]
    code, out = _run(hub, config, ["db", "migrate"])
    assert (code, out) == (0, "Applied 0 migration(s)\n")

    # merging the SQLite file into the hub adds nothing new (the same rows), and twice changes nothing
    before = _run(hub, config, ["report", "--all", "-f", "json"])[1]
    for _ in range(2):
        code, out = _run(hub, config, ["db", "merge", lite])
        assert code == 0 and out.startswith(f"Merged {lite}: 0 usage rows"), out
    assert _run(hub, config, ["report", "--all", "-f", "json"])[1] == before
