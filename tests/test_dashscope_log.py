"""dashscope-log source: the DashScope TSV usage log (one line per call, logged USD)."""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers_logs import gen_logs
from tokenmeter_plugins.dashscope_log import DashscopeLogSource

from tokenmeter.testing import check_records, collect, fake_context

ROOT = Path(__file__).resolve().parent.parent
HEADER = "timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd"


def _gen_logs() -> Any:
    return gen_logs()


def by_day_model_provider(records: list[Any]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0)})
    for r in records:
        a = acc[(r.start.date().isoformat(), r.model, r.provider)]
        a["requests"] += r.requests
        a["input_tokens"] += r.input_tokens
        a["output_tokens"] += r.output_tokens
        a["cost_usd"] += r.cost
    return [{"date": d, "model": m, "provider": p, **v} for (d, m, p), v in sorted(acc.items())]


def as_decimal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "cost_usd": Decimal(r["cost_usd"])} for r in rows]


def tsv(path: Path, *rows: str, header: bool = True, final_newline: bool = True) -> Path:
    lines = ([HEADER] if header else []) + list(rows)
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
    return path


ROW = "2026-03-02T10:00:00Z\tqwen-plus\tqwen-singapore\t100\t20\t0.000064"


def test_sample_tsv_matches_expected(samples: Path, tmp_path: Path) -> None:
    shutil.copy(samples / "dashscope" / "qwen-usage.tsv", tmp_path / "qwen-usage.tsv")
    expected = json.loads((samples / "dashscope" / "qwen-usage.tsv.expected.json").read_text())
    got = collect(DashscopeLogSource, {"paths": [str(tmp_path / "qwen-usage.tsv")]})
    check_records(got.records)
    assert by_day_model_provider(got.records) == as_decimal(expected["by_day_model_provider"])
    assert len(got.records) == expected["totals"]["requests"]
    assert sum(r.cost for r in got.records) == Decimal(expected["totals"]["cost_usd"])
    assert got.ctx.skip_examples == [f"{tmp_path}/qwen-usage.tsv:32: repeated header line"]
    r = got.records[0]
    assert (r.key, r.provider, r.model, r.account, r.requests, r.input_tokens, r.output_tokens) == (
        "2026-02-02T11:04:22Z:9a508562:0", "qwen-beijing", "qwen-flash", "test-machine", 1, 782, 40)
    assert (r.cost, r.currency, r.cost_kind, r.total_tokens) == (Decimal("0.000028"), "USD", "logged", None)
    # no final newline: the last row is counted, but the offset stops before it
    again = collect(DashscopeLogSource, {"paths": [str(tmp_path / "qwen-usage.tsv")]}, cursor=got.cursor)
    assert again.records == []  # unchanged file: not even opened


def test_generated_tsv(tmp_path: Path) -> None:
    expected = _gen_logs().gen_tsv(tmp_path / "u.tsv", 3000, seed=5, days=3)
    got = collect(DashscopeLogSource, {"paths": [str(tmp_path / "u.tsv")]})
    check_records(got.records)
    assert by_day_model_provider(got.records) == as_decimal(expected["by_day_model_provider"])


def test_identical_lines_are_two_calls_with_stable_keys(tmp_path: Path) -> None:
    p = tsv(tmp_path / "a.tsv", ROW, ROW, ROW.replace("0.000064", "0.000065"), ROW)
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    check_records(got.records)
    keys = [r.key for r in got.records]
    assert len(set(keys)) == 4
    assert keys[0].endswith(":0") and keys[1].endswith(":1")
    # a rotated copy (another name, another inode) gives the very same keys
    shutil.copy(p, tmp_path / "a.tsv.1")
    copy = collect(DashscopeLogSource, {"paths": [str(tmp_path / "a.tsv.1")]})
    assert [r.key for r in copy.records] == keys
    assert [r.cost for r in copy.records] == [r.cost for r in got.records]


def test_bad_rows_are_skipped_with_positions(tmp_path: Path) -> None:
    p = tmp_path / "b.tsv"
    p.write_bytes(b"\n".join([
        HEADER.encode(),
        ROW.encode(),
        b"2026-03-02T10:00:01Z\tqwen-plus\tqwen-singapore\t100",  # short
        b"2026-03-02T10:00:02Z\tqwen-plus\tqwen-singapore\tmany\t20\t0.1",  # non-numeric
        b"2026-03-02T10:00:03Z\tqwen-\xff\tqwen-singapore\t1\t2\t0.1",  # not UTF-8
        b"yesterday\tqwen-plus\tqwen-singapore\t1\t2\t0.1",
        b"2026-03-02T10:00:04Z\tqwen-plus\tqwen-singapore\t1\t2\tNaN",
        b"",
        HEADER.encode(),
        b"2026-03-02T10:00:05Z\tqwen-plus\tqwen-singapore\t-1\t2\t0.1",
        b"2026-03-02T10:00:06\tqwen-plus\t\t5\t6\t",  # naive time = UTC, no provider, no cost
    ]) + b"\n")
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    check_records(got.records)
    assert [(r.input_tokens, r.provider, r.cost) for r in got.records] == [
        (100, "qwen-singapore", Decimal("0.000064")), (5, "qwen", None)]
    assert got.records[1].start.isoformat() == "2026-03-02T10:00:06+00:00"
    assert got.records[1].cost_kind is None and got.records[1].currency is None
    assert got.ctx.skipped == 7
    assert [e.split(": ", 1)[0].rsplit(":", 1)[1] for e in got.ctx.skip_examples] == ["3", "4", "5", "6", "7"]
    assert got.ctx.skip_examples[0].endswith("b.tsv:3: short row (4 fields, expected 6)")
    assert got.ctx.skip_examples[2].endswith("b.tsv:5: not UTF-8")


def test_header_column_order_is_honoured(tmp_path: Path) -> None:
    p = tmp_path / "c.tsv"
    p.write_text("model\ttimestamp\tcost_usd\tprovider\toutput_tokens\tinput_tokens\textra\n"
                 "qwen-max\t2026-03-02T10:00:00Z\t0.5\tqwen-virginia\t7\t9\tx\n")
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    assert [(r.model, r.provider, r.input_tokens, r.output_tokens, r.cost) for r in got.records] == [
        ("qwen-max", "qwen-virginia", 9, 7, Decimal("0.5"))]
    with open(p, "a") as f:  # the column map survives in the cursor for the next run
        f.write("qwen-max\t2026-03-02T11:00:00Z\t0.25\tqwen-virginia\t3\t4\tx\n")
    more = collect(DashscopeLogSource, {"paths": [str(p)]}, cursor=got.cursor)
    assert [(r.input_tokens, r.output_tokens, r.cost) for r in more.records] == [(4, 3, Decimal("0.25"))]


def test_growing_unterminated_last_line_keeps_its_key(tmp_path: Path) -> None:
    p = tsv(tmp_path / "d.tsv", ROW, "2026-03-02T10:00:09Z\tqwen-plus\tqwen-singapore\t100\t20\t0.0000",
            final_newline=False)
    first = collect(DashscopeLogSource, {"paths": [str(p)]})
    assert [r.cost for r in first.records] == [Decimal("0.000064"), Decimal("0.0000")]
    with open(p, "a") as f:
        f.write("64\n")  # the writer finishes the cost and the newline
    second = collect(DashscopeLogSource, {"paths": [str(p)]}, cursor=first.cursor)
    assert [(r.key, r.cost) for r in second.records] == [(first.records[1].key, Decimal("0.000064"))]
    # the counters were not advanced by the early reading: an identical line now is a new call
    with open(p, "a") as f:
        f.write("2026-03-02T10:00:09Z\tqwen-plus\tqwen-singapore\t100\t20\t0.000064\n")
    third = collect(DashscopeLogSource, {"paths": [str(p)]}, cursor=second.cursor)
    assert [r.key for r in third.records] == [first.records[1].key[:-1] + "1"]
    # an unterminated half row is neither counted nor reported as bad yet
    with open(p, "a") as f:
        f.write("2026-03-02T10:00:10Z\tqwen-pl")
    fourth = collect(DashscopeLogSource, {"paths": [str(p)]}, cursor=third.cursor)
    assert fourth.records == [] and fourth.ctx.skipped == 0


def test_paths_globs_home_and_compressed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])
    logs = home / "logs"
    logs.mkdir()
    tsv(logs / "qwen-usage.tsv", ROW)
    tsv(logs / "qwen-usage.tsv.1", ROW.replace("10:00:00", "09:00:00"))
    (logs / "qwen-usage.tsv.2.gz").write_bytes(b"\x1f\x8b")
    got = collect(DashscopeLogSource, {"paths": ["~/logs/qwen-usage.tsv*"]})
    assert sorted(r.start.hour for r in got.records) == [9, 10]
    assert got.ctx.warnings == [f"dashscope-log: ignoring 1 compressed file(s), e.g. {logs}/qwen-usage.tsv.2.gz"]


def test_available(tmp_path: Path) -> None:
    src = DashscopeLogSource(DashscopeLogSource.Settings(), fake_context("dashscope-log"))
    # the writer logs text calls and vision calls to two files: both are read by default
    assert src.settings.paths == ["/opt/ai-orchestrator/var/logs/qwen-usage.tsv",
                                  "/opt/ai-orchestrator/var/logs/qwen-vision-usage.tsv"]
    assert src.available() == ("no log files at /opt/ai-orchestrator/var/logs/qwen-usage.tsv, "
                               "/opt/ai-orchestrator/var/logs/qwen-vision-usage.tsv")
    tsv(tmp_path / "x.tsv", ROW)
    ok = DashscopeLogSource(DashscopeLogSource.Settings(paths=[str(tmp_path / "*.tsv")]), fake_context())
    assert ok.available() is None


def test_demo_data_reads_to_its_expected_totals() -> None:
    data = ROOT / "plugins" / "dashscope_log" / "demo_data"
    expected = json.loads((data / "expected.json").read_text())["dashscope-log"]
    got = collect(DashscopeLogSource, {"paths": [str(data / "qwen-usage.tsv")]})
    check_records(got.records)
    assert got.ctx.skipped == 0
    assert by_day_model_provider(got.records) == as_decimal(expected["by_day_model_provider"])


def test_out_of_range_values_are_skipped_not_fatal(tmp_path: Path) -> None:
    """A corrupt number or date must cost one line, not the whole source (SQLite ints are 64-bit)."""
    from tokenmeter.fetch import run_one
    from tokenmeter.store import Store

    p = tsv(tmp_path / "o.tsv", ROW,
            "2026-03-02T10:00:01Z\tqwen-plus\tqwen-singapore\t99999999999999999999\t20\t0.1",
            "2026-03-02T10:00:02Z\tqwen-plus\tqwen-singapore\t100\t20\t1e30",
            "9999-12-31T23:00:00-05:00\tqwen-plus\tqwen-singapore\t100\t20\t0.1",
            "0001-01-01T00:30:00+01:00\tqwen-plus\tqwen-singapore\t100\t20\t0.1",
            ROW.replace("10:00:00", "10:00:09"))
    store = Store.open(tmp_path / "t.db")
    try:
        result = run_one(store, DashscopeLogSource, {"paths": [str(p)]}, ctx=fake_context("dashscope-log"))
        rows = store.usage_rows(source="dashscope-log")
    finally:
        store.close()
    assert (result.status, result.message) == ("ok", "")
    assert len(rows) == 2 and sum(r["input_tokens"] for r in rows) == 200
    assert result.skipped_lines == 4
    assert [e.split(": ", 1)[1] for e in result.skip_examples] == [
        "token count over 10^12", "cost_usd out of range",
        "bad timestamp '9999-12-31T23:00:00-05:00'", "bad timestamp '0001-01-01T00:30:00+01:00'"]


def test_unterminated_line_with_reordered_columns_keeps_its_key(tmp_path: Path) -> None:
    p = tmp_path / "r.tsv"
    p.write_text("model\ttimestamp\tcost_usd\tprovider\toutput_tokens\tinput_tokens\n"
                 "qwen-max\t2026-03-02T10:00:00Z\t0.5\tqwen-virginia\t7\t1")  # input_tokens still growing
    first = collect(DashscopeLogSource, {"paths": [str(p)]})
    with open(p, "a") as f:
        f.write("23\n")
    second = collect(DashscopeLogSource, {"paths": [str(p)]}, cursor=first.cursor)
    stored = {r.key: r.input_tokens for r in first.records}
    stored.update({r.key: r.input_tokens for r in second.records})
    assert list(stored.values()) == [123]  # one call, with its complete count


# As the real writer (the orchestrator's brain.py) writes them: no header, `?` for a model or
# provider the API result did not name, the cost as f"{cost:.8f}" at one flat rate for every model
# ($0.40 / $1.20 per 1M input / output tokens; vision calls $0.50 / $1.50, provider qwen-vl-singapore).
WRITER_TEXT = "2026-02-19T12:30:17Z\tqwen-plus-latest\tqwen-singapore\t74\t2\t0.00003200\n"
WRITER_VISION = "2026-02-19T12:31:00Z\tqwen3-vl-flash\tqwen-vl-singapore\t1000\t100\t0.00065000\n"


def test_default_paths_read_text_and_vision_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenmeter_plugins.dashscope_log import tsv as tsv_mod

    text, vision = tmp_path / "qwen-usage.tsv", tmp_path / "qwen-vision-usage.tsv"
    text.write_text(WRITER_TEXT)
    vision.write_text(WRITER_VISION)
    monkeypatch.setattr(tsv_mod, "DEFAULT_PATHS", (str(text), str(vision)))
    got = collect(DashscopeLogSource, {})
    check_records(got.records)
    assert [(r.model, r.provider, r.input_tokens, r.output_tokens, r.cost, r.cost_kind) for r in got.records] == [
        ("qwen-plus-latest", "qwen-singapore", 74, 2, Decimal("0.000032"), "logged"),
        ("qwen3-vl-flash", "qwen-vl-singapore", 1000, 100, Decimal("0.00065"), "logged")]
    assert got.ctx.skipped == 0


def test_question_mark_means_unknown(tmp_path: Path) -> None:
    p = tmp_path / "qwen-usage.tsv"
    p.write_text("2026-02-19T12:30:17Z\t?\tqwen-singapore\t74\t2\t0.00003200\n"
                 "2026-02-19T12:30:18Z\tqwen-max\t?\t74\t2\t0.00003200\n"
                 "2026-02-19T12:30:19Z\t?\t?\t0\t0\t0.00000000\n")
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    check_records(got.records)
    # no model named "?" (it would be a model of its own, unpriced under a fake name): no model at all;
    # an unknown provider gets the source's default label and the call is kept
    assert [(r.model, r.provider, r.cost) for r in got.records] == [
        (None, "qwen-singapore", Decimal("0.000032")), ("qwen-max", "qwen", Decimal("0.000032")),
        (None, "qwen", Decimal("0"))]
    assert got.ctx.skipped == 0


@pytest.mark.parametrize(("fields", "reason"), [
    ("100\t20\t-5", "negative cost_usd"),
    ("100\t20\t-0.00003200", "negative cost_usd"),
    ("1_000\t20\t0.1", "non-numeric token count"),
    ("100\t2_0\t0.1", "non-numeric token count"),
    ("100\t20\t1_000", "non-numeric cost_usd"),
    ("100\t20\t0.000_1", "non-numeric cost_usd"),
    ("\u0661\u0660\u0660\t20\t0.1", "non-numeric token count"),  # Arabic-Indic ١٠٠
    ("100\t\u06f2\u06f0\t0.1", "non-numeric token count"),  # Extended Arabic-Indic ۲۰
    ("100\t20\t\u0660.\u0661", "non-numeric cost_usd"),  # ٠.١
    ("\uff11\uff10\uff10\t20\t0.1", "non-numeric token count"),  # fullwidth １００
    ("100\t-20\t0.1", "negative token count"),
    ("100\t20\tInfinity", "non-numeric cost_usd"),
    ("1" * 5000 + "\t20\t0.1", "token count over 10^12"),  # past int()'s digit limit: no crash
])
def test_numbers_python_would_accept_but_no_writer_writes_are_bad_lines(tmp_path: Path, fields: str,
                                                                        reason: str) -> None:
    # int("1_000"), int("١٠٠") and Decimal("٠.١") all succeed in Python: each is a bad line here
    p = tmp_path / "n.tsv"
    p.write_text(WRITER_TEXT + f"2026-02-19T12:30:18Z\tqwen-plus\tqwen-singapore\t{fields}\n" + WRITER_TEXT,
                 encoding="utf-8")
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    check_records(got.records)
    assert len(got.records) == 2 and all(r.input_tokens == 74 for r in got.records)
    assert got.ctx.skipped == 1
    assert got.ctx.skip_examples == [f"{p}:2: {reason}"]


def test_plain_numbers_still_read(tmp_path: Path) -> None:
    p = tsv(tmp_path / "ok.tsv", "2026-02-19T12:30:18Z\tqwen-plus\tqwen-singapore\t 7 \t+3\t1.5e-6",
            "2026-02-19T12:30:19Z\tqwen-plus\tqwen-singapore\t7\t3\t.5",
            "2026-02-19T12:30:20Z\tqwen-plus\tqwen-singapore\t7\t3\t-0")
    got = collect(DashscopeLogSource, {"paths": [str(p)]})
    assert [(r.input_tokens, r.output_tokens, r.cost) for r in got.records] == [
        (7, 3, Decimal("0.0000015")), (7, 3, Decimal("0.5")), (7, 3, Decimal("0"))]
    assert got.ctx.skipped == 0


def test_reconcile_shows_the_logged_flat_rate_cost_beside_the_estimate(tokenmeter_env: Path,
                                                                        tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tokenmeter.cli import cli

    log = tmp_path / "qwen-usage.tsv"
    # 1M input tokens of qwen-max: the writer logs its flat $0.40 per 1M, the price table says more
    log.write_text("2026-02-19T12:30:17Z\tqwen-max\tqwen-singapore\t1000000\t0\t0.40000000\n"
                   "2026-02-19T12:30:18Z\t?\tqwen-singapore\t1000\t0\t0.00040000\n")
    (tokenmeter_env / "config.toml").write_text(f"[sources.dashscope-log]\npaths = [{json.dumps(str(log))}]\n")
    env = {"TOKENMETER_NOW": "2026-02-20T12:00:00Z"}  # built-in plugins loaded: the real source
    assert CliRunner().invoke(cli, ["fetch", "dashscope-log", "--json"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["reconcile", "--period", "all", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.stdout)["rows"]}
    row = rows["qwen-max"]
    assert (row["currency"], Decimal(row["logged"])) == ("USD", Decimal("0.4"))
    assert row["estimated"] is not None and Decimal(row["estimated"]) > Decimal("0.4")
    assert Decimal(row["logged_minus_estimated"]) == Decimal(row["logged"]) - Decimal(row["estimated"])
    # the unknown model ("?") is no model: its logged cost is kept, nothing estimates it
    assert (Decimal(rows[None]["logged"]), rows[None]["estimated"]) == (Decimal("0.0004"), None)
    table = CliRunner().invoke(cli, ["reconcile", "--period", "all", "-f", "table"], env=env).stdout
    assert "Logged minus estimated" in table and "flat rate" in table
