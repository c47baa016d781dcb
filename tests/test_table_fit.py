"""Tables fit the terminal (ccusage-style narrowing), `--wide` shows everything, money lines up."""

from __future__ import annotations

import json
from decimal import Decimal

from click.testing import CliRunner

from tokenmeter.cli import cli
from tokenmeter.output import fit_table, money_column, money_places

WIDE_HEADERS = ("Requests", "Input", "Output", "Cache read", "Cache write", "Reasoning", "Total tokens", "Cost",
                "Kind", "Unpriced")


def demo(tmp_path, *args: str, columns: int = 80) -> str:
    # the real built-in plugins and their sample data, as a new user runs it
    result = CliRunner().invoke(cli, ["demo", "--keep", str(tmp_path / "demo"), *args],
                                env={"COLUMNS": str(columns)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_demo_report_fits_80_columns(tmp_path):
    out = demo(tmp_path, "-f", "table")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert lines[1].split() == ["Provider", "Model", "Input", "Output", "Cost", "Kind"]  # ccusage's compact set
    assert lines[-1] == "Cache/Reason, Total, Reqs left out to fit 80 columns; --wide shows all"
    total = next(line for line in lines if line.startswith("Total"))
    assert total.split()[-3:] == ["3.962", "USD", "mix"]
    # every cost of one currency has the same decimals, so the points line up
    costs = [line for line in lines if line.endswith((" est", " log", " mix"))]
    assert len({line.rindex(".") for line in costs}) == 1 and len(costs) == 20


def test_wide_shows_every_column_and_wider_terminals_lose_less(tmp_path):
    db = tmp_path / "demo" / "demo.db"
    demo(tmp_path)
    args = ["--db", str(db), "--all", "--offline", "-f", "table", "--by", "provider,model"]
    wide = CliRunner().invoke(cli, [*args, "--wide"], env={"COLUMNS": "80"}).stdout.splitlines()
    assert [h for h in WIDE_HEADERS if h in wide[1]] == list(WIDE_HEADERS)
    assert "left out" not in "\n".join(wide) and max(len(line) for line in wide) > 80
    full = CliRunner().invoke(cli, args, env={"COLUMNS": "200"}).stdout.splitlines()
    assert "Cache read" in full[1] and "Total tokens" in full[1] and "estimated" in full[3]
    assert "Unpriced" not in full[1] and "Cache write" not in full[1]  # no unpriced usage; --wide has both
    mid = CliRunner().invoke(cli, args, env={"COLUMNS": "100"}).stdout.splitlines()
    assert "Total" in mid[1] and "Cache/Reason" not in mid[1] and all(len(line) <= 100 for line in mid)


def test_json_csv_tsv_do_not_change_with_the_width(tmp_path):
    db = tmp_path / "demo" / "demo.db"
    demo(tmp_path)
    for fmt in ("json", "csv", "tsv"):
        outs = {CliRunner().invoke(cli, ["--db", str(db), "--all", "--offline", "-f", fmt, *wide],
                                   env={"COLUMNS": str(cols)}).stdout
                for cols in (40, 80, 300) for wide in ([], ["--wide"])}
        assert len(outs) == 1
        if fmt == "json":  # costs stay exact decimal strings, never the table's rounded figures
            assert len(json.loads(outs.pop())["total"]["cost"]) > len("3.962")


def test_money_rule():
    assert money_places([Decimal("0.01519"), Decimal("0.187239")]) == 3
    assert money_places([Decimal("0.25"), Decimal("0.01")]) == 2  # no more places than any amount has
    assert money_places([Decimal("1500"), Decimal("0.0000001")]) == 6
    assert money_places([]) == 2
    cells = money_column([(Decimal("0.01519"), "USD"), (Decimal("0.187239"), "USD"), (Decimal("1234.5"), "CNY"),
                          (None, None)])
    assert cells == ["0.015 USD", "0.187 USD", "1,234.50  CNY", "?"]
    assert len({c.index(".") - len(c) for c in cells[:3]}) == 1  # right-aligned: one decimal point


def test_long_names_are_cut_not_wrapped():
    rows = [{"project": "/home/someone/work/a-very-long-project-name/with/deep/folders", "requests": 1,
             "input_tokens": 10, "output_tokens": 1, "cost": Decimal("0.5"), "currency": "USD",
             "cost_kind": "estimated"}]
    text, hidden = fit_table(rows, ["project"], width=50)
    assert all(len(line) <= 50 for line in text.splitlines())
    assert "…name/with/deep/folders  " in text and hidden == ["Cache/Reason", "Total", "Reqs", "Output"]
    unpriced = [dict(rows[0], unpriced_requests=3, cost=None)]
    assert "Unpriced" in fit_table(unpriced, ["project"], width=300)[0].splitlines()[0]
