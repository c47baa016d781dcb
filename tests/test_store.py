"""The SQLite store: upserts, money as nanos, cursors with records, failed runs, merge, migrations."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from helpers_host import T0, make_source, rec

from tokenmeter import Cursor, QuotaSnapshot, SourceDataError
from tokenmeter.errors import StoreError
from tokenmeter.fetch import run_one
from tokenmeter.store import Store, from_nanos, row_id, to_nanos
from tokenmeter.testing import fake_context


@pytest.fixture
def sqlite_store(tmp_path):
    s = Store.open(tmp_path / "t.db")
    yield s
    s.close()


@pytest.fixture
def store(any_store):
    return any_store  # SQLite and PostgreSQL (conftest.any_store)


def write(store: Store, records, *, source="src", kind="log", cursor=None):
    session = store.session(source, kind)
    for r in records:
        session.add(r)
    session.finish(cursor)
    return session.counts


def rows(store: Store) -> list[tuple]:
    return store.conn.execute(
        "SELECT id, source, account, key, requests, input_tokens, cost_nanos, content_hash FROM usage ORDER BY id"
    ).fetchall()


def test_nanos_roundtrip_is_exact():
    for text in ("0", "0.000000001", "1234567.123456789", "-0.5", "0.1"):
        assert from_nanos(to_nanos(Decimal(text))) == Decimal(text)
    assert to_nanos(Decimal("0.1")) == 100_000_000
    assert to_nanos(None) is None and from_nanos(None) is None
    assert to_nanos(Decimal("0.0000000015")) == 2  # half-even to the nearest nano


def test_upsert_is_idempotent(store):
    records = [rec("a"), rec("b", requests=2), rec("c", account="acct")]
    first = write(store, records)
    assert (first.new, first.updated, first.unchanged) == (3, 0, 0)
    snapshot = rows(store)
    second = write(store, records)
    assert (second.new, second.updated, second.unchanged) == (0, 0, 3)
    assert rows(store) == snapshot
    assert store.conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 3


def test_changed_record_replaces_row(store):
    write(store, [rec("a", requests=1, input_tokens=100)])
    counts = write(store, [rec("a", requests=5, input_tokens=900), rec("b")])
    assert (counts.new, counts.updated, counts.unchanged) == (1, 1, 0)
    stored = {r["key"]: r for r in store.usage_rows()}
    assert len(stored) == 2
    assert (stored["a"]["requests"], stored["a"]["input_tokens"]) == (5, 900)
    assert stored["a"]["id"] == row_id("src", None, "a")


def test_same_key_twice_in_one_run_counted_once(store):
    counts = write(store, [rec("a", requests=1), rec("a", requests=2)])
    assert (counts.new, counts.updated) == (1, 0)
    assert [r["requests"] for r in store.usage_rows()] == [2]


def test_money_stored_as_integer_nanos(store):
    write(store, [rec("a", cost=Decimal("0.123456789"), currency="CNY", cost_kind="billed"),
                  rec("b", cost=Decimal("1.1"), currency="CNY", cost_kind="billed")])
    raw = store.conn.execute("SELECT key, cost_nanos FROM usage ORDER BY key").fetchall()
    assert [tuple(r) for r in raw] == [("a", 123456789), ("b", 1100000000)]
    assert all(type(r[1]) is int for r in raw)
    assert store.conn.execute("SELECT SUM(cost_nanos) FROM usage").fetchone()[0] == 1223456789
    got = {r["key"]: r["cost"] for r in store.usage_rows()}
    assert got == {"a": Decimal("0.123456789"), "b": Decimal("1.1")}
    assert all(isinstance(v, Decimal) for v in got.values())


def test_times_stored_as_iso_utc_and_epoch(store):
    write(store, [rec("a", start=T0, end=T0 + timedelta(hours=1))])
    r = store.usage_rows()[0]
    assert (r["start"], r["end"]) == ("2026-03-10T12:00:00Z", "2026-03-10T13:00:00Z")
    assert r["start_ts"] == int(T0.timestamp()) and r["end_ts"] - r["start_ts"] == 3600
    assert r["kind"] == "log" and r["source"] == "src"


def test_quota_snapshots_stored(store):
    snap = QuotaSnapshot(provider="qwen", name="credits", unit="USD", observed_at=T0,
                         remaining=Decimal("12.50"), total=Decimal("20"))
    later = snap.__class__(provider="qwen", name="credits", unit="USD", observed_at=T0 + timedelta(hours=1),
                           remaining=Decimal("10"), total=Decimal("20"))
    session = store.session("src", "ledger")
    session.add(snap)
    session.add(later)
    session.add(snap)  # the same observation twice is one row
    session.finish(None)
    assert store.conn.execute("SELECT COUNT(*) FROM quota_snapshots").fetchone()[0] == 2
    latest = store.snapshots(latest=True)
    assert len(latest) == 1 and latest[0]["remaining"] == Decimal("10")
    assert latest[0]["total"] == Decimal("20")


def test_cursor_committed_with_records(store):
    src = make_source("src", [rec("a"), Cursor({"offset": 10}), rec("b"), Cursor({"offset": 20})])
    result = run_one(store, src, {}, ctx=fake_context("src"))
    assert result.status == "ok" and result.new == 2
    assert store.get_cursor("src") == {"offset": 20}
    state = store.source_states()["src"]
    assert state["last_success"] and state["last_error"] is None


def test_cursor_passed_back_next_run(store):
    seen = []

    def items(self, window, cursor):
        seen.append(dict(cursor))
        yield rec(f"k{len(seen)}")
        yield Cursor({"n": len(seen)})

    src = make_source("src", items)
    run_one(store, src, {}, ctx=fake_context("src"))
    run_one(store, src, {}, ctx=fake_context("src"))
    assert seen == [{}, {"n": 1}]


def test_source_raising_mid_run_keeps_committed_data_only(store):
    ok = make_source("src", [rec("old1"), rec("old2"), Cursor({"offset": 1})])
    assert run_one(store, ok, {}, ctx=fake_context("src")).status == "ok"

    def failing(self, window, cursor):
        yield rec("old1", requests=99)  # changed before the checkpoint: committed
        yield rec("new1")
        yield Cursor({"offset": 2})
        yield rec("new2")  # after the last checkpoint: rolled back
        yield rec("old2", requests=77)  # also rolled back
        raise SourceDataError("disk on fire")

    bad = make_source("src", failing)
    result = run_one(store, bad, {}, ctx=fake_context("src"))
    assert result.status == "error" and result.exit_code == 6
    assert result.message == "src: disk on fire"
    # the summary reports what the last checkpoint made durable
    assert (result.new, result.updated) == (1, 1)
    stored = {r["key"]: r["requests"] for r in store.usage_rows()}
    assert stored == {"old1": 99, "old2": 1, "new1": 1}
    assert store.get_cursor("src") == {"offset": 2}
    state = store.source_states()["src"]
    assert state["last_error"] == "src: disk on fire" and state["last_success"]
    runs = store.conn.execute("SELECT status, error FROM fetch_runs ORDER BY id").fetchall()
    assert runs == [("ok", None), ("error", "src: disk on fire")]


def test_source_raising_before_any_checkpoint_stores_nothing(store):
    def failing(self, window, cursor):
        yield rec("a")
        yield rec("b")
        raise RuntimeError("boom")

    result = run_one(store, make_source("src", failing), {}, ctx=fake_context("src"))
    assert result.status == "error" and result.exit_code == 6
    assert "unexpected RuntimeError: boom" in result.message
    assert (result.new, result.updated) == (0, 0)
    assert store.usage_rows() == [] and store.get_cursor("src") == {}
    # the database stays usable: the next run writes normally
    assert run_one(store, make_source("src", [rec("a")]), {}, ctx=fake_context("src")).new == 1


def test_invalid_item_names_source(store):
    result = run_one(store, make_source("src", [rec("a"), "junk"]), {}, ctx=fake_context("src"))
    assert result.status == "error"
    assert "invalid record field 'item' (from src)" in result.message
    assert store.usage_rows() == []


# -- merge -----------------------------------------------------------------------------------------


def _db(path, records, *, source="src", fetched_at=None):
    with Store.open(path) as s:
        write(s, records, source=source)
        if fetched_at:
            s.conn.execute("UPDATE usage SET fetched_at = ?", (fetched_at,))
        full = sorted(tuple(r.values()) for r in s._dicts("SELECT * FROM usage", []))
    return full


def _all(store):
    return sorted(tuple(r.values()) for r in store._dicts("SELECT * FROM usage", []))


def test_merge_two_databases(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _db(a, [rec("k1", account="machine-a"), rec("only-a", account="machine-a")],
        fetched_at="2026-03-10T00:00:00.000000Z")
    _db(b, [rec("k1", account="machine-b", requests=7), rec("only-b", account="machine-b")],
        fetched_at="2026-03-11T00:00:00.000000Z")
    with Store.open(a) as s:
        counts = s.merge(b)
        assert counts["usage"] == 2
        got = {(r["account"], r["key"]): r["requests"] for r in s.usage_rows()}
    # the same key from two machines is two accounts: both kept
    assert got == {("machine-a", "k1"): 1, ("machine-a", "only-a"): 1,
                   ("machine-b", "k1"): 7, ("machine-b", "only-b"): 1}


def test_merge_later_fetch_wins(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _db(a, [rec("bill-day", requests=1)], fetched_at="2026-03-10T00:00:00.000000Z")
    _db(b, [rec("bill-day", requests=5)], fetched_at="2026-03-12T00:00:00.000000Z")
    with Store.open(a) as s:
        assert s.merge(b)["usage"] == 1
        assert [r["requests"] for r in s.usage_rows()] == [5]
    # the other way round: our later row is kept
    with Store.open(b) as s:
        s.conn.execute("UPDATE usage SET requests = 9, content_hash = 'x', fetched_at = '2026-03-20T00:00:00Z'")
        assert s.merge(a)["usage"] == 0
        assert [r["requests"] for r in s.usage_rows()] == [9]


def test_merge_same_file_twice_changes_nothing(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _db(a, [rec("x", account="m1")])
    _db(b, [rec("x", account="m2"), rec("y", account="m2")])
    with Store.open(b) as s:
        session = s.session("src", "ledger")
        session.add(QuotaSnapshot(provider="qwen", name="credits", unit="USD", observed_at=T0,
                                  remaining=Decimal(3)))
        session.finish(None)
    with Store.open(a) as s:
        first = s.merge(b)
        assert (first["usage"], first["quota_snapshots"]) == (2, 1)
        after_first = _all(s)
        snaps = s.conn.execute("SELECT * FROM quota_snapshots").fetchall()
        second = s.merge(b)
        assert second == {"usage": 0, "quota_snapshots": 0, "skipped": 0, "changes": 0}
        assert _all(s) == after_first
        assert s.conn.execute("SELECT * FROM quota_snapshots").fetchall() == snaps
        assert len(after_first) == 3


def test_merge_errors(tmp_path):
    a = tmp_path / "a.db"
    _db(a, [rec("x")])
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 20)
    other_sqlite = tmp_path / "other.db"
    conn = sqlite3.connect(other_sqlite)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    with Store.open(a) as s:
        with pytest.raises(StoreError, match="into itself"):
            s.merge(a)
        with pytest.raises(StoreError, match="no such file"):
            s.merge(tmp_path / "missing.db")
        with pytest.raises(StoreError, match="notes.txt"):
            s.merge(text)
        with pytest.raises(StoreError, match="not a tokenmeter database"):
            s.merge(other_sqlite)
        assert len(s.usage_rows()) == 1  # nothing changed
    assert not (tmp_path / "missing.db").exists()


# -- migrations ------------------------------------------------------------------------------------

EXPECTED_SCHEMA = {
    "usage": [
        "id", "source", "kind", "account", "key", "provider", "model", "project", "session", "start", "end",
        "start_ts", "end_ts", "requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
        "cache_write_tokens", "reasoning_tokens", "total_tokens", "cost_nanos", "currency", "cost_kind",
        "est_cost_nanos", "est_currency", "price_basis", "details", "content_hash", "fetched_at",
        "agent",  # m004: added at the end (ALTER TABLE), queries name their columns
        "machine",  # m005
    ],
    "quota_snapshots": ["id", "source", "provider", "account", "name", "unit", "used", "remaining", "total",
                        "resets_at", "observed_at", "details"],
    "source_state": ["source", "cursor", "last_success", "last_error", "last_error_at", "updated_at"],
    "fetch_runs": ["id", "source", "started_at", "finished_at", "status", "new", "updated", "unchanged",
                   "snapshots", "skipped", "seconds", "window_from", "window_to", "error"],
}


def test_fresh_database_schema(sqlite_store):
    store = sqlite_store
    tables = {t.name: [c.name for c in t.columns] for t in store.db.tables}
    for name, columns in EXPECTED_SCHEMA.items():
        assert tables[name] == columns, name
    assert "_sqlite_migrations" in tables
    assert store.pending_migrations() == []
    indexes = {i.name: i for i in store.db["usage"].indexes}
    assert {"idx_usage_id", "idx_usage_start", "idx_usage_ledger"} == set(indexes)
    assert {"usage_changes", "store_meta", "rollup_dirty", "usage_rollup"} <= set(tables)
    assert {t.name for t in store.db.triggers} == {"usage_rollup_update", "usage_rollup_delete"}
    # the row id is unique (upserts and merges rely on it)
    assert any(i.unique and i.columns == ["id"] for i in indexes.values()) or store.db["usage"].pks == ["id"]
    usage_types = {c.name: c.type for c in store.db["usage"].columns}
    assert usage_types["cost_nanos"] == "INTEGER" and usage_types["start_ts"] == "INTEGER"


def test_wal_mode_and_busy_timeout(sqlite_store):
    store = sqlite_store
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_migrations_apply_once(tmp_path):
    path = tmp_path / "m.db"
    with Store.open(path, migrate=False) as s:
        assert "m001_initial" in s.pending_migrations()
    with Store.open(path) as s:
        write(s, [rec("a")])
    with Store.open(path) as s:  # re-opening does not re-run or lose anything
        assert s.pending_migrations() == [] and len(s.usage_rows()) == 1
        names = [r[0] for r in s.conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
        assert names[0] == "m001_initial" and len(names) == len(set(names))


def test_fetched_at_sorts_in_time_order(monkeypatch):
    import tokenmeter.store.common as store_mod  # where the store's clock is read

    times = iter([datetime(2026, 3, 1, 12, 0, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)])

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return next(times)

    monkeypatch.setattr(store_mod, "datetime", Clock)
    first, second = store_mod.now_iso(), store_mod.now_iso()
    assert first == "2026-03-01T12:00:00.000000Z"
    assert first < second  # a whole second must not sort after a later fraction


def test_merge_moving_a_row_to_another_time_updates_reports(tmp_path):
    from tokenmeter.periods import Period
    from tokenmeter.reports import usage_report

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _db(a, [rec("k", start=T0, requests=3)], fetched_at="2026-03-10T00:00:00.000000Z")
    _db(b, [rec("k", start=T0 + timedelta(days=1), requests=5)], fetched_at="2026-03-12T00:00:00.000000Z")
    with Store.open(a) as s:
        s.refresh_rollup()
        before = usage_report(s, Period(None, None, UTC), by=["day"])
        assert [(r["day"], r["requests"]) for r in before.rows] == [("2026-03-10", 3)]
        s.merge(b)
        s.refresh_rollup()
        after = usage_report(s, Period(None, None, UTC), by=["day"])
        assert [(r["day"], r["requests"]) for r in after.rows] == [("2026-03-11", 5)]


def test_refetch_moving_a_row_updates_reports(store):
    from tokenmeter.periods import Period
    from tokenmeter.reports import usage_report

    write(store, [rec("k", start=T0, requests=3)])
    store.refresh_rollup()  # builds the rollup
    usage_report(store, Period(None, None, UTC))
    counts = write(store, [rec("k", start=T0 + timedelta(days=1), requests=5)])
    assert counts.updated == 1
    store.refresh_rollup()
    after = usage_report(store, Period(None, None, UTC), by=["day"])
    assert [(r["day"], r["requests"]) for r in after.rows] == [("2026-03-11", 5)]


def test_reader_not_blocked_by_open_write(tmp_path):
    path = tmp_path / "wal.db"
    writer = Store.open(path)
    write(writer, [rec("committed")])
    session = writer.session("src", "log")
    session.add(rec("pending"))
    session.flush()  # inside an open write transaction now
    with Store.open(path) as reader:  # e.g. a report while cron fetches
        assert [r["key"] for r in reader.usage_rows()] == ["committed"]
    session.finish(None)
    with Store.open(path) as reader:
        assert sorted(r["key"] for r in reader.usage_rows()) == ["committed", "pending"]
    writer.close()


def test_schema_migration_count_matches():
    """Store.open skips sqlite-utils when SCHEMA_MIGRATIONS are applied: keep the count in step."""
    from tokenmeter.store import SCHEMA_MIGRATIONS
    from tokenmeter.store.migrations import migrations

    assert SCHEMA_MIGRATIONS == len(migrations._migrations)


def test_rows_inserted_by_hand_show_after_rollup_rebuild(tmp_path):
    from helpers_host import cli_run

    db = tmp_path / "hand.db"
    store = Store.open(db)
    session = store.session("src", "log")
    session.add(rec("a", requests=2))
    session.finish(None)
    store.refresh_rollup()
    row = store.conn.execute("SELECT * FROM usage").fetchone()
    cols = [d[0] for d in store.conn.execute("SELECT * FROM usage").description]
    copy = dict(zip(cols, row, strict=True)) | {"id": "by-hand", "key": "b", "requests": 5}
    store.conn.execute(f"INSERT INTO usage ({', '.join(repr(c) for c in copy)}) VALUES "
                       f"({', '.join('?' * len(copy))})", list(copy.values()))
    store.close()
    result = cli_run(["--db", str(db), "db", "migrate", "--rebuild"])
    assert result.exit_code == 0 and "rebuilt 1 rollup buckets" in result.stdout
    report = json.loads(cli_run(["--db", str(db), "report", "--all", "--json", "--offline"]).stdout)
    assert report["total"]["requests"] == 7


def test_counts_right_when_another_writer_commits_between_checkpoints(tmp_path):
    # cron and a person fetch into one database: the other run's rows are not ours to count
    path = tmp_path / "two.db"
    ours, theirs = Store.open(path), Store.open(path)
    session = ours.session("a", "log")
    session.add(rec("a1"))
    session.checkpoint({"n": 1})
    write(theirs, [rec(f"b{i}") for i in range(5)], source="b")
    session.add(rec("a1"))  # unchanged
    session.add(rec("a2"))  # new
    session.finish({"n": 2})
    assert (session.counts.new, session.counts.updated, session.counts.unchanged) == (2, 0, 1)
    ours.close()
    theirs.close()


def test_merge_twice_with_a_report_in_between_changes_nothing(tmp_path):
    from tokenmeter.periods import Period
    from tokenmeter.reports import usage_report

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _db(a, [rec("x", account="m1")])
    _db(b, [rec("y", account="m2", start=T0 + timedelta(days=1))])
    with Store.open(a) as s:
        assert s.merge(b)["usage"] == 1
        s.refresh_rollup()  # rebuilds the rollup
        usage_report(s, Period(None, None, UTC))
        assert s.merge(b) == {"usage": 0, "quota_snapshots": 0, "skipped": 0, "changes": 0}
        assert s.refresh_rollup() == 0  # nothing to recompute either


def test_report_while_another_run_holds_the_write_lock_is_a_clear_error(tmp_path):
    from tokenmeter.periods import Period
    from tokenmeter.reports import usage_report

    path = tmp_path / "busy.db"
    writer = Store.open(path)
    write(writer, [rec("a")])  # a small write leaves its rollup bucket to recompute
    session = writer.session("src", "log")
    session.add(rec("b"))
    session.flush()  # a long fetch between checkpoints holds the write lock
    with Store.open(path) as reader:
        reader.conn.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(StoreError, match=r"^database .*busy\.db is busy: another tokenmeter run is "
                                             r"writing to it; try again when it has finished$"):
            reader.refresh_rollup()  # what a report does first
        usage_report(reader, Period(None, None, UTC))  # reading alone waits for nobody
        other = tmp_path / "other.db"
        _db(other, [rec("c", account="m2")])
        with pytest.raises(StoreError, match="is busy"):
            reader.merge(other)
    session.abort()
    writer.close()


def test_rollup_rebuild_drops_buckets_whose_rows_moved_by_hand(tmp_path):
    # INSERT OR REPLACE (e.g. in the sqlite3 shell) deletes the old row without firing delete triggers
    from helpers_host import cli_run

    db = tmp_path / "moved.db"
    store = Store.open(db)
    write(store, [rec("a", start=T0, requests=2)])
    store.refresh_rollup()
    cur = store.conn.execute("SELECT * FROM usage")
    moved = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    moved["start_ts"] += 86400
    store.conn.execute("PRAGMA recursive_triggers = OFF")  # SQLite's default
    store.conn.execute(f"INSERT OR REPLACE INTO usage ({', '.join(repr(c) for c in moved)}) VALUES "
                       f"({', '.join('?' * len(moved))})", list(moved.values()))
    store.close()
    assert cli_run(["--db", str(db), "db", "migrate", "--rebuild"]).exit_code == 0
    report = json.loads(cli_run(["--db", str(db), "report", "--all", "--by", "day", "--json", "--offline"]).stdout)
    assert [(r["day"], r["requests"]) for r in report["rows"]] == [("2026-03-11", 2)]


@pytest.mark.parametrize("roll_min", [5, 10**9])  # partial sums at checkpoints, or marked buckets
def test_rollup_kept_while_writing_equals_a_full_rebuild(store, monkeypatch, roll_min):
    """Inserted rows enter the rollup as partial sums per flush, updates mark their buckets: after
    any mix of writes, the reports equal those of a rollup rebuilt from every row."""
    import random

    import tokenmeter.store.session as session_mod
    from tokenmeter.store import Filters

    monkeypatch.setattr(session_mod, "BATCH", 7)  # many flushes, the same buckets in several
    monkeypatch.setattr(session_mod, "ROLL_MIN", roll_min)
    rnd = random.Random(5)
    for run in range(4):
        w = store.session("src", "log", f"m{run % 2}")
        for i in range(60):
            key = f"k{rnd.randrange(90)}"  # re-fetches: unchanged, or changed (an update)
            w.add(rec(key, start=T0 + timedelta(minutes=rnd.randrange(600)), requests=rnd.randrange(1, 4),
                      model=rnd.choice(["m-a", "m-b"]), input_tokens=rnd.randrange(1, 50) * (run + 1),
                      output_tokens=3))
            if i % 20 == 19:
                w.checkpoint(None)  # several partial sets in one run, merged at its end
        w.finish(None)
    store.refresh_rollup()
    (kept_rows,) = store.conn.execute("SELECT COUNT(*) FROM usage_rollup").fetchone()

    def totals():
        rows = store.usage_totals(0, 2**33, tz=UTC, columns=["model", "machine"], cost="auto", filters=Filters())
        return sorted((t.day, t.columns, t.requests, t.input_tokens, t.calls) for t in rows)

    kept = totals()
    store.mark_all_dirty()
    assert store.refresh_rollup() > 0
    assert totals() == kept and sum(t[2] for t in kept) == sum(r["requests"] for r in store.usage_rows())
    (rebuilt_rows,) = store.conn.execute("SELECT COUNT(*) FROM usage_rollup").fetchone()
    assert rebuilt_rows <= kept_rows


def test_one_run_leaves_one_rollup_row_per_group(sqlite_store, monkeypatch):
    """A big run that checkpoints many times adds partial sums at each; its end merges them."""
    import tokenmeter.store.session as session_mod

    monkeypatch.setattr(session_mod, "ROLL_MIN", 10)  # these 25-row checkpoints count as big
    store = sqlite_store
    w = store.session("src", "log")
    for i in range(200):
        w.add(rec(f"k{i}", start=T0 + timedelta(minutes=i % 45), model=("m-a", "m-b")[i % 2], requests=1))
        if i % 25 == 24:
            w.checkpoint(None)
    w.finish(None)
    assert store.refresh_rollup() == 0  # nothing left to rebuild
    rows = store.conn.execute("SELECT bucket, model, records, requests FROM usage_rollup ORDER BY 1, 2").fetchall()
    # 45 minutes from T0: three buckets, two models each, one row per group
    assert [r[:2] for r in rows] == sorted({(b, m) for b, m, *_ in rows}) and len(rows) == 6
    assert sum(r[2] for r in rows) == sum(r[3] for r in rows) == 200


def test_small_runs_mark_buckets_and_leave_one_row_per_group(sqlite_store):
    """Frequent small fetches (watch, a status line) do not pile partial rows into the rollup."""
    store = sqlite_store
    for i in range(30):
        w = store.session("src", "log")
        w.add(rec(f"k{i}", start=T0 + timedelta(seconds=i), requests=1))
        w.finish(None)
    assert store.refresh_rollup() == 1
    assert store.conn.execute("SELECT COUNT(*), SUM(requests) FROM usage_rollup").fetchone() == (1, 30)
