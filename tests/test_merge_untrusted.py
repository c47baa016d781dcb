"""`db merge` reads the other file as untrusted input (issue 13 item 5): columns by name, only plain
stored columns of real tables, known schema versions only, every row validated, bounded time."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers_host import T0, cli_run, rec

from tokenmeter import QuotaSnapshot
from tokenmeter.errors import StoreError
from tokenmeter.store import USAGE_COLUMNS, Store, row_id

OURS_FETCHED = "2026-03-10T00:00:00.000000Z"
LATER = "2026-03-12T00:00:00.000000Z"


def make_db(path: Path, records: list[Any], *, fetched_at: str | None = None, snapshots: int = 0) -> None:
    with Store.open(path) as s:
        session = s.session("src", "log")
        for r in records:
            session.add(r)
        for i in range(snapshots):
            session.add(QuotaSnapshot(provider="qwen", name=f"credits-{i}", unit="USD", observed_at=T0,
                                      remaining=Decimal("3.5")))
        session.finish(None)
        if fetched_at:
            s.conn.execute("UPDATE usage SET fetched_at = ?", (fetched_at,))


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def rebuild(path: Path, table: str, columns: list[str], *, extra: str = "") -> None:
    """Recreate ``table`` with its columns in the order ``columns`` (plus ``extra`` definitions)."""
    conn = sqlite3.connect(path, isolation_level=None)
    names = ", ".join(f'"{c}"' for c in columns)
    conn.execute(f"CREATE TABLE new_t ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)}{extra})")
    conn.execute(f"INSERT INTO new_t ({names}) SELECT {names} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE new_t RENAME TO {table}")
    conn.close()


def merge_cli(ours: Path, other: Path, *extra: str) -> Any:
    return cli_run(["db", "merge", str(other), "--db", str(ours), *extra])


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    path = tmp_path / "ours.db"
    make_db(path, [rec("k1", cost="0.25"), rec("k2", requests=2)], fetched_at=OURS_FETCHED)
    return path


def one_line_exit_4(result: Any) -> str:
    assert result.exit_code == 4, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot merge "), result.stderr
    return lines[0]


def test_columns_in_another_order_are_mapped_by_name(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k3", account="laptop", cost="1.5", cache_read_tokens=40, agent="main")], snapshots=1)
    rebuild(other, "usage", list(reversed(USAGE_COLUMNS)))
    rebuild(other, "quota_snapshots", ["details", "observed_at", "unit", "name", "id", "source", "provider",
                                       "account", "total", "remaining", "used", "resets_at"])
    result = merge_cli(ours, other)
    assert result.exit_code == 0, result.output
    assert "1 usage rows and 1 snapshots" in result.stdout
    with Store.open(ours) as s:
        row = s.usage_rows(key="k3")[0]
        assert (row["account"], row["cost"], row["currency"], row["cache_read_tokens"], row["agent"]) == (
            "laptop", Decimal("1.5"), "USD", 40, "main")
        (snap,) = s.snapshots()
        assert (snap["name"], snap["unit"], snap["remaining"], snap["source"]) == ("credits-0", "USD",
                                                                                  Decimal("3.5"), "src")


def junk_rows(conn: sqlite3.Connection) -> int:
    """Rows with our ids and a later fetch time whose values no valid record has; returns how many."""
    good = dict(zip(USAGE_COLUMNS, conn.execute(
        f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in USAGE_COLUMNS)} FROM usage WHERE key = 'k1'"
    ).fetchone(), strict=True))
    conn.execute("DELETE FROM usage")
    changes: list[dict[str, Any]] = [
        {"requests": "lots"}, {"cost_nanos": "abc"}, {"cost_nanos": 1.5}, {"details": "not json"},
        {"details": "[1, 2]"}, {"start": "yesterday"}, {"start_ts": "12:00"}, {"input_tokens": -5},
        {"cache_read_tokens": 500}, {"currency": "usd"}, {"cost_kind": "free"}, {"input_tokens": b"\x00\x01"},
        {"model": b"\xff\xfe"}, {"key": "other-key"}, {"kind": "bogus"}, {"cost_nanos": 10**18},
        {"requests": 2**62}, {"errors": 5}, {"end": "2026-03-09T00:00:00Z"}, {"fetched_at": "9999-12-31T00:00:00Z"},
        {"fetched_at": None}, {"content_hash": b"\x07"}, {"details": '{"a": NaN}'}, {"start": "2026-03-10T12:00:00"},
    ]
    for i, change in enumerate(changes):
        row = good | {"content_hash": f"junk{i}", "fetched_at": LATER} | change
        if "model" in change:  # invalid UTF-8 stored as TEXT
            row["model"] = change["model"].decode("latin-1")
        cols = ", ".join(f'"{c}"' for c in row)
        conn.execute(f"INSERT INTO usage ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        if "model" in change:
            conn.execute("UPDATE usage SET model = CAST(? AS TEXT) WHERE content_hash = ?",
                         (change["model"], f"junk{i}"))
    return len(changes)


def test_junk_rows_with_our_ids_and_a_later_fetch_replace_nothing(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k1", cost="0.25")])
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("DROP INDEX idx_usage_id")  # a foreign file need not keep ids unique
    bad = junk_rows(conn)
    conn.close()
    before = dump(ours)
    result = merge_cli(ours, other)
    assert result.exit_code == 0, result.output
    assert f"0 usage rows and 0 snapshots added or updated; {bad} invalid rows skipped" in result.stdout
    assert dump(ours) == before
    export = cli_run(["db", "export", "--json", "--db", str(ours)])
    assert export.exit_code == 0 and len(json.loads(export.stdout)) == 2
    assert cli_run(["db", "export", "--csv", "--db", str(ours)]).exit_code == 0


def test_valid_rows_pass_and_invalid_ones_are_counted(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k1", cost="0.5"), rec("new", account="laptop")], fetched_at=LATER)
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("UPDATE usage SET output_tokens = 'ten' WHERE key = 'new'")
    conn.close()
    with Store.open(ours) as s:
        counts = s.merge(other)
        assert (counts["usage"], counts["skipped"]) == (1, 1)  # k1 updated (fetched later), `new` skipped
        assert {r["key"]: r["cost"] for r in s.usage_rows()} == {"k1": Decimal("0.5"), "k2": None}


def test_generated_columns_are_never_read(tmp_path: Path, ours: Path) -> None:
    # an extra generated column is ignored (this one raises "integer overflow" whenever it is evaluated)
    other = tmp_path / "other.db"
    make_db(other, [rec("k3", account="laptop")], snapshots=1)
    conn = sqlite3.connect(other, isolation_level=None)
    for table in ("usage", "quota_snapshots"):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN boom INTEGER "
                     "GENERATED ALWAYS AS (abs(-9223372036854775807 - 1)) VIRTUAL")
    with pytest.raises(sqlite3.OperationalError, match="integer overflow"):
        conn.execute("SELECT * FROM quota_snapshots").fetchall()
    conn.close()
    result = merge_cli(ours, other)
    assert result.exit_code == 0 and "1 usage rows and 1 snapshots" in result.stdout, result.output

    # one of our columns as a generated column (it would inject a cost): refused, nothing changed
    evil = tmp_path / "evil.db"
    make_db(evil, [rec("k1", requests=3)], fetched_at=LATER)
    columns = [c for c in USAGE_COLUMNS if c != "cost_nanos"]
    rebuild(evil, "usage", columns, extra=", cost_nanos INTEGER GENERATED ALWAYS AS (requests * 1000000000000) "
                                          "STORED")
    before = dump(ours)
    line = one_line_exit_4(merge_cli(ours, evil))
    assert "usage.cost_nanos is a generated column" in line and "nothing was changed" in line
    assert dump(ours) == before


def test_a_view_named_like_our_table_is_refused(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k3", account="laptop")])
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("ALTER TABLE usage RENAME TO real_usage")
    cols = ", ".join(f'"{c}"' for c in USAGE_COLUMNS if c != "cost_nanos")
    conn.execute(f"CREATE VIEW usage AS SELECT {cols}, 10000000000000 AS cost_nanos FROM real_usage")
    conn.close()
    before = dump(ours)
    line = one_line_exit_4(merge_cli(ours, other))
    assert "usage is a view, not a plain table" in line
    assert dump(ours) == before


@pytest.mark.parametrize("breakage, message", [
    ("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('tokenmeter', 'm005_future', '')",
     "written by a newer tokenmeter (schema m005_future); upgrade tokenmeter"),
    ("DELETE FROM _sqlite_migrations WHERE name = 'm002_alert_state'", "its schema version is unknown"),
    ("DROP TABLE _sqlite_migrations", "not a tokenmeter database (it has no _sqlite_migrations table)"),
    ("ALTER TABLE usage DROP COLUMN model", "usage has no column model"),
    ("ALTER TABLE quota_snapshots RENAME COLUMN observed_at TO seen", "quota_snapshots has no column observed_at"),
])
def test_wrong_or_newer_schema_is_one_line_exit_4_and_changes_nothing(tmp_path: Path, ours: Path,
                                                                      breakage: str, message: str) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k1", requests=9, cost="9"), rec("k9", account="laptop")], fetched_at=LATER, snapshots=1)
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute(breakage)
    conn.close()
    before = dump(ours)
    line = one_line_exit_4(merge_cli(ours, other))
    assert message in line and "nothing was changed" in line
    assert dump(ours) == before


def test_merge_gives_up_after_its_time_and_changes_nothing(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec(f"k{i}", account="laptop") for i in range(50)])
    before = dump(ours)
    with Store.open(ours) as s, pytest.raises(StoreError, match=r"gave up after 1e-06 s .*nothing was changed$"):
        s.merge(other, timeout=1e-6)
    assert dump(ours) == before
    line = one_line_exit_4(merge_cli(ours, other, "--timeout", "0.000001"))
    assert "gave up after" in line
    assert dump(ours) == before


def test_a_good_file_merges_and_merging_again_changes_nothing(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k1", requests=5), rec("k4", account="laptop", agent="main")], fetched_at=LATER,
            snapshots=2)
    first = merge_cli(ours, other)
    assert first.exit_code == 0 and "2 usage rows and 2 snapshots added or updated\n" in first.stdout
    after = dump(ours)
    second = merge_cli(ours, other)
    assert second.exit_code == 0 and "0 usage rows and 0 snapshots added or updated\n" in second.stdout
    assert dump(ours) == after
    with Store.open(ours) as s:
        assert {(r["key"], r["requests"]) for r in s.usage_rows()} == {("k1", 5), ("k2", 2), ("k4", 1)}
        assert {r["key"]: r["id"] for r in s.usage_rows()}["k4"] == row_id("src", "laptop", "k4")


def test_merge_never_writes_the_other_file(tmp_path: Path, ours: Path) -> None:
    other = tmp_path / "other.db"
    make_db(other, [rec("k5", account="laptop")])
    before = other.read_bytes()
    assert merge_cli(ours, other).exit_code == 0
    assert other.read_bytes() == before
