"""Fuzz (hypothesis): a foreign database given to `db merge` never corrupts ours (issue 13).

Each example builds a file shaped like ours (columns in any order, no constraints or affinities),
holding valid rows, junk rows (one value no valid record has, our ids, a later fetch time) and
junk snapshots, then maybe changes its schema or damages its bytes. The merge must exit 0 or 4
with at most one line on stderr; on 4 our file is unchanged; on 0 ours holds exactly what the
valid rows imply and every row still reads, exports and reports.
"""

from __future__ import annotations

import functools
import json
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from helpers_host import T0, cli_run, rec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_merge_untrusted import dump, rebuild

from tokenmeter import QuotaSnapshot
from tokenmeter.records import COUNT_FIELDS
from tokenmeter.store import USAGE_COLUMNS, Store
from tokenmeter.store.merge import _usage_row

SNAPSHOT_COLUMNS = ["id", "source", "provider", "account", "name", "unit", "used", "remaining", "total",
                    "resets_at", "observed_at", "details"]
EARLIER, OURS_FETCHED, LATER = ("2026-03-09T00:00:00.000000Z", "2026-03-10T00:00:00.000000Z",
                                "2026-03-12T00:00:00.000000Z")
KEYS = ["k0", "k1", "k2", "k3", "k4"]
COLUMNS = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)

JUNK: dict[str, list[Any]] = {
    "id": ["not-an-id", b"\x01"], "source": [None, "", b"src"], "kind": ["bogus", None, 3],
    "account": ["", b"x"], "key": [None, ""], "provider": [None, "", b"\xff"], "model": ["", b"\xff\xfe"],
    "project": [""], "session": [b"s"], "agent": ["", 7],
    "start": ["yesterday", "2026-03-10T12:00:00", None, b"x", "0001-01-01T00:00:00Z", 20260310],
    "end": ["2026-03-09T00:00:00Z", None], "start_ts": ["x", 1.5, None], "end_ts": ["x", None, -1],
    **{c: [-1, "lots", 1.5, b"\x01", 2**62] for c in COUNT_FIELDS},
    "cost_nanos": ["abc", 1.5, 10**17, -(10**17), b"1"], "currency": ["usd", "DOLLARS", b"USD"],
    "cost_kind": ["free", 1], "est_cost_nanos": [-1, "x", 1.5], "est_currency": ["usd"], "price_basis": ["", b"x"],
    "details": ["not json", "[1]", '{"a": NaN}', b"{}", "[" * 50000 + "]" * 50000], "content_hash": [None, "", b"h"],
    "fetched_at": ["9999-12-31T00:00:00.000000Z", "later", None],
}
SNAPSHOT_JUNK: dict[str, list[Any]] = {
    "source": [None], "provider": ["", None], "name": [b"n"], "unit": [None], "used": ["abc", "-1", "NaN", 5.5],
    "total": ["1e999"], "remaining": [b"1"], "resets_at": ["soon"], "observed_at": ["yesterday", None],
    "details": ["[]", "x"], "account": [""],
}
# schema changes: which ones a merge must refuse (exit 4, nothing changed)
SCHEMAS = {"same": 0, "previous version": 0, "extra columns": 0, "newer": 4, "generated cost": 4, "view": 4,
           "missing column": 4, "unknown version": 4, "damaged bytes": None}


@functools.cache
def templates() -> Path:
    """Our database (three rows, one snapshot) and an empty database of this version, built once."""
    root = Path(tempfile.mkdtemp(prefix="tokenmeter-fuzz-"))
    with Store.open(root / "ours.db") as s:
        session = s.session("src", "log")
        for i, key in enumerate(KEYS[:3]):
            session.add(rec(key, requests=i + 1, cost=Decimal(i) / 4 if i else None))
        session.add(QuotaSnapshot(provider="qwen", name="credits", unit="USD", observed_at=T0, remaining=Decimal(3)))
        session.finish(None)
        s.conn.execute("UPDATE usage SET fetched_at = ?", (OURS_FETCHED,))
    with Store.open(root / "empty.db"):
        pass
    return root


records = st.builds(
    lambda key, account, requests, inp, out, cost, agent: rec(
        key, account=account, requests=requests, input_tokens=inp, output_tokens=out, agent=agent,
        cost=None if cost is None else Decimal(cost) / 1000),
    st.sampled_from(KEYS), st.sampled_from([None, "laptop"]), st.integers(0, 3), st.integers(0, 500),
    st.integers(0, 100), st.one_of(st.none(), st.integers(-1000, 10**6)), st.sampled_from([None, "main"]))
valid_rows = st.lists(st.tuples(records, st.sampled_from([EARLIER, OURS_FETCHED, LATER])), max_size=6)
junk_rows = st.lists(st.tuples(st.sampled_from(KEYS[:3]), st.sampled_from(sorted(JUNK)), st.integers(0, 99)),
                     max_size=5)
junk_snapshots = st.lists(st.tuples(st.sampled_from(sorted(SNAPSHOT_JUNK)), st.integers(0, 99)), max_size=3)


def state(path: Path) -> dict[str, tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT id, content_hash, fetched_at, requests, input_tokens, output_tokens, cost_nanos FROM usage")}
    finally:
        conn.close()


def snapshot_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM quota_snapshots")}
    finally:
        conn.close()


def build_other(path: Path, rows: list[tuple[Any, str]], junk: list[tuple[str, str, int]],
                snap_junk: list[tuple[str, int]], order: list[str], schema: str) -> tuple[
                    dict[str, tuple[Any, ...]], set[str]]:
    """Write the foreign file; returns its valid rows (as ``state`` shows them) and snapshot ids."""
    with Store.open(path) as s:
        session = s.session("src", "log")
        for r, _ in rows:
            session.add(r)
        session.add(QuotaSnapshot(provider="qwen", name="credits", unit="USD", observed_at=T0, used=Decimal(2)))
        session.finish(None)
        for r, fetched in rows:  # the last one of a key is what the file keeps
            s.conn.execute("UPDATE usage SET fetched_at = ? WHERE key = ? AND IFNULL(account, '') = ?",
                           (fetched, r.key, r.account or ""))
    ours = sqlite3.connect(templates() / "ours.db")
    base = {k: dict(zip(USAGE_COLUMNS, row, strict=True))
            for k, *row in ours.execute(f"SELECT key, {COLUMNS} FROM usage")}
    ours.close()
    columns = [c for c in order if not (schema == "previous version" and c == "machine")]
    rebuild(path, "usage", columns)  # untyped columns: every junk value is stored as it is
    rebuild(path, "quota_snapshots", SNAPSHOT_COLUMNS)
    valid, valid_snaps = state(path), snapshot_ids(path)
    conn = sqlite3.connect(path, isolation_level=None)
    for i, (key, column, pick) in enumerate(junk):
        column = column if column in columns else "requests"  # a column the file has
        row = base[key] | {"content_hash": f"junk{i}", "fetched_at": LATER}
        row[column] = JUNK[column][pick % len(JUNK[column])]
        insert(conn, "usage", {c: row[c] for c in columns})
    good = dict(zip(SNAPSHOT_COLUMNS, conn.execute("SELECT * FROM quota_snapshots").fetchone(), strict=True))
    for i, (column, pick) in enumerate(snap_junk):
        insert(conn, "quota_snapshots", good | {"id": f"junk{i}", column: SNAPSHOT_JUNK[column][pick % len(
            SNAPSHOT_JUNK[column])]})
    change_schema(conn, schema, columns)
    conn.close()
    return valid, valid_snaps


def insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(f'"{c}"' for c in row)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def change_schema(conn: sqlite3.Connection, schema: str, columns: list[str]) -> None:
    if schema == "previous version":
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm005_hub'")
    elif schema == "extra columns":
        conn.execute("ALTER TABLE usage ADD COLUMN note TEXT DEFAULT 'x'")
        conn.execute("ALTER TABLE usage ADD COLUMN boom GENERATED ALWAYS AS (abs(-9223372036854775807 - 1))")
    elif schema == "newer":
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name) VALUES ('tokenmeter', 'm099_next')")
    elif schema == "unknown version":
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm001_initial'")
    elif schema == "generated cost":
        conn.execute("ALTER TABLE usage DROP COLUMN cost_nanos")
        conn.execute("ALTER TABLE usage ADD COLUMN cost_nanos GENERATED ALWAYS AS (requests * 1000000000000)")
    elif schema == "view":
        conn.execute("ALTER TABLE usage RENAME TO usage_data")
        conn.execute("CREATE VIEW usage AS SELECT * FROM usage_data")
    elif schema == "missing column":
        conn.execute(f'ALTER TABLE usage DROP COLUMN "{columns[-1]}"')


def expected_state(ours: dict[str, tuple[Any, ...]], theirs: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    out = dict(ours)
    for rid, row in theirs.items():
        mine = out.get(rid)
        if mine is None or (row[0] != mine[0] and row[1] > mine[1]):
            out[rid] = row
    return out


def every_row_is_valid(path: Path) -> None:
    conn = sqlite3.connect(path)
    for row in conn.execute(f"SELECT {COLUMNS} FROM usage"):
        assert _usage_row(dict(zip(USAGE_COLUMNS, row, strict=True)), datetime.max.replace(tzinfo=UTC)), row
    conn.close()
    export = cli_run(["db", "export", "--json", "--db", str(path)])
    assert export.exit_code == 0 and isinstance(json.loads(export.stdout), list)
    report = cli_run(["--db", str(path), "report", "--all", "--json", "--offline"])
    assert report.exit_code == 0, report.output


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=valid_rows, junk=junk_rows, snap_junk=junk_snapshots, order=st.permutations(USAGE_COLUMNS),
       schema=st.sampled_from(sorted(SCHEMAS)), damage=st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64)))
def test_a_foreign_database_never_corrupts_ours(rows: list[tuple[Any, str]], junk: list[tuple[str, str, int]],
                                                snap_junk: list[tuple[str, int]], order: list[str], schema: str,
                                                damage: tuple[float, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, other = Path(tmp) / "ours.db", Path(tmp) / "other.db"
        shutil.copy(templates() / "ours.db", ours)
        shutil.copy(templates() / "empty.db", other)
        valid, valid_snaps = build_other(other, rows, junk, snap_junk, list(order), schema)
        if schema == "damaged bytes":
            data = bytearray(other.read_bytes())
            at = int(damage[0] * (len(data) - 1))
            data[at:at + len(damage[1])] = damage[1]
            other.write_bytes(bytes(data))
        before, before_dump, before_snaps = state(ours), dump(ours), snapshot_ids(ours)

        result = cli_run(["db", "merge", str(other), "--db", str(ours)])

        assert result.exit_code in (0, 4), result.output
        assert len(result.stderr.strip().splitlines()) <= (0 if result.exit_code == 0 else 1), result.stderr
        if result.exit_code == 4:
            assert SCHEMAS[schema] in (4, None), result.stderr
            assert dump(ours) == before_dump
            return
        assert SCHEMAS[schema] in (0, None), result.stdout
        every_row_is_valid(ours)
        after = state(ours)
        assert {rid: after[rid] for rid in before if rid not in valid} == {
            rid: before[rid] for rid in before if rid not in valid}  # what it did not validly replace is ours
        if schema != "damaged bytes":
            assert after == expected_state(before, valid)
            assert snapshot_ids(ours) == before_snaps | valid_snaps
            skipped = len(junk) + len(snap_junk)
            assert (f"; {skipped} invalid rows skipped" in result.stdout) == (skipped > 0), result.stdout
