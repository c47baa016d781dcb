"""Text from outside (model, provider, project names, paths) cannot run as a spreadsheet formula in
any CSV/TSV tokenmeter writes, nor drive the terminal in a table or a message (issue 13, items 1-2)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from helpers_host import cli_run, make_source, rec, register

from tokenmeter import Cursor
from tokenmeter.output import csv_cell, render_csv, render_table, safe_text

NOW = "2026-03-10T18:00:00Z"
DAY = datetime(2026, 3, 10, 12, tzinfo=UTC)
# each one a live formula (or a cell shifted/joined by the spreadsheet) if written as it is
FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(1)", "-2+3", "\tname", "\rname"]
TERMINAL = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\x7fname"


def _rows(text: str, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def _source() -> type:
    items: list = [
        rec(f"m{i}", start=DAY, provider="qwen", model=m, project="-proj", input_tokens=10 + i, output_tokens=0)
        for i, m in enumerate(FORMULAS)
    ]
    # a refund: a negative billed cost is a number, never text to neutralise
    items.append(rec("refund", start=DAY, provider="=HYPERLINK(\"x\")", model="plain", cost=Decimal("-1.5")))
    items.append(rec("esc", start=DAY, provider="qwen", model=TERMINAL, input_tokens=1, output_tokens=0))
    items.append(rec("zh", start=DAY, provider="qwen", model="通义千问-plus", input_tokens=1, output_tokens=0))
    items.append(Cursor({"done": True}))
    return make_source("evil", items)


@pytest.fixture
def evil_db(tokenmeter_env):
    register(_source())
    assert cli_run(["fetch", "evil"], env={"TOKENMETER_NOW": NOW}).exit_code == 0
    return tokenmeter_env


def test_csv_cell_rule() -> None:
    for text in FORMULAS:
        assert csv_cell(text) == "'" + text
    assert csv_cell("qwen-plus") == "qwen-plus" and csv_cell("") == "" and csv_cell(None) == ""
    # numbers stay numbers, negative ones included
    assert (csv_cell(Decimal("-1.5")), csv_cell(-3), csv_cell(-0.5), csv_cell(Decimal(0))) == ("-1.5", -3, -0.5, "0")
    assert csv_cell(True) == "true"
    # JSON details stay JSON; a date is written as it is
    assert csv_cell({"a": 1}) == '{"a": 1}' and csv_cell(datetime(2026, 3, 1).date()) == "2026-03-01"


def test_render_csv_neutralises_every_text_column_not_numbers() -> None:
    rows = [{"model": m, "cost": Decimal("-1.5"), "requests": -1} for m in FORMULAS]
    for delim in (",", "\t"):
        got = _rows(render_csv(rows, ["model", "cost", "requests"], delimiter=delim), delim)
        assert [r["model"] for r in got] == ["'" + m for m in FORMULAS]
        assert {r["cost"] for r in got} == {"-1.5"} and {r["requests"] for r in got} == {"-1"}


@pytest.mark.parametrize(("args", "delim"), [(["--csv"], ","), (["-f", "csv"], ","), (["-f", "tsv"], "\t")])
def test_report_csv_and_tsv(evil_db, args, delim) -> None:
    result = cli_run(["report", "--today", "--by", "model,provider,project", *args], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in _rows(result.stdout, delim)}
    for m in FORMULAS:
        assert rows["'" + m]["project"] == "'-proj"
        assert rows["'" + m]["input_tokens"].isdigit()
    assert rows["plain"]["provider"] == "'=HYPERLINK(\"x\")"
    assert rows["plain"]["cost"] == "-1.5"  # still a number
    assert "通义千问-plus" in rows


@pytest.mark.parametrize(("fmt", "delim"), [("csv", ","), ("tsv", "\t")])
def test_db_export(evil_db, fmt, delim) -> None:
    result = cli_run(["db", "export", "-f", fmt], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in _rows(result.stdout, delim)}
    assert [rows[f"m{i}"]["model"] for i in range(len(FORMULAS))] == ["'" + m for m in FORMULAS]
    assert rows["m0"]["project"] == "'-proj"
    assert rows["refund"]["provider"] == "'=HYPERLINK(\"x\")" and rows["refund"]["cost"] == "-1.5"


def test_json_stays_raw(evil_db) -> None:
    data = json.loads(cli_run(["db", "export", "-f", "json"], env={"TOKENMETER_NOW": NOW}).stdout)
    assert {r["model"] for r in data} >= set(FORMULAS) | {TERMINAL}
    report = json.loads(cli_run(["report", "--today", "--by", "model", "--json"],
                                env={"TOKENMETER_NOW": NOW}).stdout)
    assert {r["model"] for r in report["rows"]} >= set(FORMULAS)


def test_safe_text() -> None:
    assert safe_text("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert safe_text("\x00\x7f\x9b\t\n\r") == "\\x00\\x7f\\x9b\\x09\\x0a\\x0d"
    assert safe_text("abc\u202edcba") == "abc\\u202edcba"  # right-to-left override
    assert safe_text("通义千问 qwen-max é ∑ 🙂") == "通义千问 qwen-max é ∑ 🙂"


def test_table_output_has_no_control_characters(evil_db) -> None:
    result = cli_run(["report", "--today", "--by", "model", "-f", "table"], env={"TOKENMETER_NOW": NOW})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\x7f" not in out
    assert "evil\\x1b]0;pwned\\x07" in out and "通义千问-plus" in out
    table = render_table([{"model": TERMINAL, "provider": "q\rp"}], ["model", "provider"])
    assert not any(c in table for c in "\x1b\x07\x9b\r")


def test_fetch_summary_and_sources_show_controls_harmlessly(tokenmeter_env) -> None:
    def explode(self, window, cursor):
        raise RuntimeError("bad model '\x1b]0;t\x07' in /tmp/\x9b2Jlog")
        yield  # a generator, like every fetch

    absent = make_source("absent", [rec("k", start=DAY)], available="no file at /tmp/\x1b[31mred")
    register(absent, make_source("fails", explode))
    for args in (["fetch", "-f", "table"], ["sources", "--no-check", "-f", "table"]):
        result = cli_run(args, env={"TOKENMETER_NOW": NOW})
        text = result.stdout + result.stderr
        assert not any(c in text for c in "\x1b\x07\x9b"), (args, text)
        assert "/tmp/\\x1b[31mred" in text and "\\x9b2Jlog" in text, (args, text)


def test_prices_table_and_error(tokenmeter_env) -> None:
    result = cli_run(["prices", "no\x1b]0;such\x07model", "-f", "table"], env={"TOKENMETER_NOW": NOW})
    text = result.stdout + result.stderr
    assert "\x1b" not in text and "\x07" not in text


def test_python_api_export_csv(tmp_path) -> None:
    import tokenmeter
    from tokenmeter.store import Store

    path = tmp_path / "api.db"
    with Store.open(path) as s:
        session = s.session("src", "ledger")
        session.add(rec("a", start=DAY, model="=1+1", cost="-2.5", currency="USD"))
        session.finish(None)
    with tokenmeter.open(db=path) as tm:
        text = tm.export_csv("all", by="model", tz="UTC")
    (row,) = _rows(text, ",")
    assert (row["model"], row["cost"]) == ("'=1+1", "-2.5")


def test_error_lines_show_control_characters_harmlessly(tmp_path) -> None:
    from click.testing import CliRunner

    from tokenmeter.cli import cli

    # a config key path naming a file with an escape sequence in its name: echoed in the error line
    bad = tmp_path / "evil\x1b]0;pwned\x07.toml"
    bad.write_text("[tokenmeter\n")
    result = CliRunner().invoke(cli, ["--config", str(bad), "sources"])
    assert result.exit_code == 4
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b" in result.stderr
