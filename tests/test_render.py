"""One façade, one renderer: the CLI and the Python API print the same bytes from the same code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers_host import cli_run, rec

import tokenmeter
from tokenmeter.render import REPORT_COLUMNS, REPORT_TABLE_COLUMNS, View, render
from tokenmeter.reports import METRICS
from tokenmeter.store import Store

ROOT = Path(__file__).resolve().parent.parent
CLI_FILES = sorted((ROOT / "tokenmeter" / "cli").glob("*.py")) + [ROOT / "tokenmeter" / "api.py"]
NOW = "2026-03-15T12:00:00Z"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "r.db"
    with Store.open(path) as s:
        session = s.session("ledger-src", "ledger")
        for r in [
            rec("a", start=datetime(2026, 3, 10, tzinfo=UTC), provider="acme", model="=cmd|' /C calc'!A0",
                requests=3, cost="0.123456789", currency="CNY"),
            rec("b", start=datetime(2026, 3, 11, tzinfo=UTC), provider="acme", model="big", requests=2,
                cost="1.1", currency="USD"),
        ]:
            session.add(r)
        session.finish(None)
    return path


@pytest.mark.parametrize("by", ["model", "day,provider", "none"])
def test_api_export_is_the_cli_output_byte_for_byte(db, by):
    env = {"TOKENMETER_NOW": NOW, "TZ": "UTC"}
    csv_out = cli_run(["--db", str(db), "--month", "--tz", "UTC", "--by", by, "--csv", "--offline"], env)
    json_out = cli_run(["--db", str(db), "--month", "--tz", "UTC", "--by", by, "--json", "--offline"], env)
    now = datetime.fromisoformat(NOW)
    with tokenmeter.open(db) as tm:
        assert tm.export_csv("month", by=by, tz="UTC", now=now) == csv_out.stdout
        assert tm.export_json("month", by=by, tz="UTC", now=now) + "\n" == json_out.stdout
    assert "'=cmd" in csv_out.stdout or by != "model"  # csv_cell guards every path


def test_report_columns_have_one_definition():
    assert REPORT_COLUMNS[:len(METRICS)] == METRICS
    assert set(REPORT_TABLE_COLUMNS) < set(REPORT_COLUMNS)
    for path in CLI_FILES:  # no command or API method spells the column list again
        assert "cache_read_tokens" not in path.read_text(), path


def test_no_command_formats_csv_or_json_itself():
    for path in CLI_FILES:
        text = path.read_text()
        assert "render_csv" not in text and "json.dumps" not in text, path
        assert not re.search(r"fmt (==|!=|in) \(?\"(csv|tsv)\"", text), path


def test_render_dispatches_every_format():
    view = View(data={"a": "é"}, rows=[{"x": "=1", "y": 2}], columns=["x", "y"], quiet=lambda: ["2"],
                footer=["\x1b[31mnote"])
    assert render(view, "json") == '{\n  "a": "é"\n}\n'
    assert render(View(data={"a": "é"}, ascii_json=True), "json") == '{\n  "a": "\\u00e9"\n}\n'
    assert render(view, "csv") == "x,y\n'=1,2\n"
    assert render(view, "tsv") == "x\ty\n'=1\t2\n"
    assert render(view, "quiet") == "2\n"
    table = render(view, "table")
    assert table.endswith("\\x1b[31mnote\n") and "'" not in table
    assert render(View(empty="Nothing."), "table") == "Nothing.\n"
