from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tokenmeter.testing import check_records, collect

from tokenmeter_csv_spend.spend import CsvSpendSource

SPEND = Path(__file__).parent / "spend.csv"


def test_one_record_per_row():
    out = collect(CsvSpendSource, {"path": str(SPEND)})
    check_records(out.records)
    assert len(out.records) == 3
    first = out.records[0]
    assert first.key == "2026-03-01/acme-large/USD"
    assert (first.start, first.end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert (first.requests, first.input_tokens, first.output_tokens) == (120, 480000, 52000)
    assert (first.cost, first.currency, first.cost_kind) == (Decimal("3.84"), "USD", "billed")
    assert first.total_tokens is None  # no total_tokens column: not reported
    assert list(out.cursor) == ["sha256"]


def test_bad_rows_are_skipped_and_counted(tmp_path):
    export = tmp_path / "spend.csv"
    export.write_text("date,model,cost,currency\n2026-03-01,m,1.5,USD\nyesterday,m,1,USD\n2026-03-02,m,lots,USD\n")
    out = collect(CsvSpendSource, {"path": str(export)})
    assert [r.key for r in out.records] == ["2026-03-01/m/USD"]
    assert out.ctx.skipped == 2
    assert out.ctx.skip_examples[1] == "spend.csv:4: bad cost 'lots'"


def test_stored_through_the_host(source_runner):
    run = source_runner(CsvSpendSource, {"path": str(SPEND)})
    assert (run.status, run.new) == ("ok", 3)
    assert [r["cost"] for r in run.rows] == [Decimal("3.84"), Decimal("0.73"), Decimal("2.62")]
    again = source_runner(CsvSpendSource, {"path": str(SPEND)})  # same file: same rows, none added
    assert (again.status, again.new, len(again.rows)) == ("ok", 0, 3)


def test_a_missing_file_is_one_clear_error(source_runner, tmp_path):
    run = source_runner(CsvSpendSource, {"path": str(tmp_path / "nope.csv")})
    assert run.status == "error"
    assert run.message.endswith("(No such file or directory); set path in [sources.csv-spend]")
