"""The PostgreSQL store itself: the same schema as SQLite, the SQL adapter, migrations two machines
run at once, bulk writes equal to SQLite's rows, the rollup under concurrent writers, the Grafana
views and passwords kept out of errors. (The store/report suites run on both backends through
conftest.any_store; this file is what only a hub has.)"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg
import pytest

from tokenmeter.batch import RecordBatch
from tokenmeter.dburl import redact_url, url_secrets
from tokenmeter.errors import StoreError
from tokenmeter.records import UsageRecord
from tokenmeter.store import Filters, Store, open_store, write_error
from tokenmeter.store.pg_conn import translate

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def rec(key: str, *, minutes: int = 0, model: str = "qwen-plus", inp: int = 100, out: int = 20,
        account: str = "m1", **kw) -> UsageRecord:
    return UsageRecord(key=key, start=T0 + timedelta(minutes=minutes), provider="qwen", model=model, account=account,
                       input_tokens=inp, output_tokens=out, requests=1, **kw)


def columns(conn, table: str, sqlite: bool) -> set[str]:
    if sqlite:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema()", (table,))}


def test_the_hub_has_the_sqlite_tables_column_for_column(tmp_path, pg_url):
    with Store.open(tmp_path / "a.db") as lite, open_store(pg_url) as hub:
        for table in ("usage", "usage_rollup", "quota_snapshots", "source_state", "fetch_runs", "alert_state"):
            assert columns(lite.conn, table, True) == columns(hub.conn, table, False), table
        assert hub.pending_migrations() == []
        assert type(hub).__name__ == "PgStore" and hub.path == pg_url


@pytest.mark.parametrize(("sql", "expected", "numbered"), [
    ("SELECT a FROM t WHERE b = ? AND c LIKE ? ESCAPE '\\'", "SELECT a FROM t WHERE b = %s AND c ILIKE %s ESCAPE '\\'",
     False),
    ("SELECT start_ts % 900, '50%' FROM t", "SELECT start_ts %% 900, '50%%' FROM t", False),
    ("UPDATE u SET a = ?1 WHERE id = ?2 AND (a IS NOT ?1 OR b IS NOT NULL)",
     "UPDATE u SET a = %(p1)s WHERE id = %(p2)s AND (a IS DISTINCT FROM %(p1)s OR b IS NOT NULL)", True),
    ("INSERT OR IGNORE INTO rollup_dirty VALUES (?)", "INSERT INTO rollup_dirty VALUES (%s) ON CONFLICT DO NOTHING",
     False),
    ("SELECT 1 FROM usage INDEXED BY idx_usage_ledger WHERE kind = 'it''s ?'",
     "SELECT 1 FROM usage  WHERE kind = 'it''s ?'", False),
    ('SELECT "a?b" FROM t', 'SELECT "a?b" FROM t', False),
    ("BEGIN IMMEDIATE", "BEGIN", False),
])
def test_the_adapter_rewrites_only_what_differs(sql, expected, numbered):
    assert translate(sql) == (expected, numbered)


def test_two_machines_migrating_at_once_apply_each_step_once(pg_url):
    errors: list[BaseException] = []
    stores = []
    gate = threading.Barrier(4)

    def open_one() -> None:
        try:
            gate.wait()
            stores.append(open_store(pg_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM tokenmeter_migrations")]
    assert names == ["p001_initial"]
    for s in stores:
        s.close()


def _rows(store) -> list[dict]:
    rows = store.usage_rows()
    for r in rows:
        r.pop("fetched_at")
    return rows


def test_bulk_and_single_writes_store_the_same_rows_as_sqlite(tmp_path, pg_url):
    records = [rec(f"k{i}", minutes=i * 7, inp=100 + i, agent="main" if i % 2 else None,
                   details={"n": i}) for i in range(30)]
    batch = RecordBatch("qwen", "m1", tuple(
        (r.key, r.start, r.model, r.project, r.session, r.agent, r.requests, r.input_tokens, r.output_tokens,
         r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens, r.total_tokens, dict(r.details))
        for r in records[10:]))
    estimates = [(i * 1000, "USD", "test") if i % 3 else None for i in range(len(batch.rows))]
    out = []
    for store in (Store.open(tmp_path / "a.db"), open_store(pg_url)):
        with store:
            w = store.session("src", "log", "alice-laptop")
            for r in records[:10]:
                w.add(r)
            w.add_rows(batch, estimates)
            w.finish({"pos": 1})
            assert (w.counts.new, w.counts.updated, w.counts.unchanged) == (30, 0, 0)
            w = store.session("src", "log", "alice-laptop")  # again: all unchanged, one changed
            for r in records[:9]:
                w.add(r)
            w.add(rec("k9", minutes=63, inp=999))
            w.finish(None)
            assert (w.counts.new, w.counts.updated, w.counts.unchanged) == (0, 1, 9)
            out.append(_rows(store))
    assert out[0] == out[1]
    assert {r["machine"] for r in out[1]} == {"alice-laptop"}


def test_a_mark_committed_during_a_refresh_is_not_lost(pg_url):
    with open_store(pg_url) as hub, open_store(pg_url) as other:
        w = hub.session("src", "log")
        w.add(rec("a"))
        w.finish(None)
        # a writer holds an uncommitted row while the hub refreshes: its mark survives the refresh
        other.conn.execute("BEGIN")
        ow = other.session("src", "log")
        ow._in_tx = True
        ow.add(rec("b", minutes=1))
        ow.flush()
        assert hub.refresh_rollup() == 1
        other.conn.execute("COMMIT")
        assert hub.refresh_rollup() == 1
        (total,) = hub.usage_totals(0, 2**40, tz=None, columns=[], cost="auto", filters=Filters())
        assert total.requests == 2 and total.input_tokens == 200


def test_grafana_views_match_the_report(pg_url):
    with open_store(pg_url) as hub:
        w = hub.session("src", "log", "bob")
        for i in range(48):
            w.add(rec(f"k{i}", minutes=i * 60, model="m1" if i % 2 else "m2", cost=Decimal("0.5"), currency="USD",
                      cost_kind="logged"))
        w.finish(None)
        hub.refresh_rollup()
        daily = hub.conn.execute(
            "SELECT day, model, machine, cost_kind, currency, SUM(requests), SUM(input_tokens), SUM(cost) "
            "FROM usage_daily GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2").fetchall()
        report = hub.usage_totals(0, 2**33, tz=UTC, columns=["model", "machine"], cost="auto", filters=Filters())
    expected = sorted((t.day, *t.columns, t.cost_kind, t.currency, t.requests, t.input_tokens,
                       Decimal(t.cost_nanos).scaleb(-9)) for t in report)
    assert [tuple(r) for r in daily] == expected
    assert len(daily) == 6  # 48 hours from 09:00 touch three UTC days, two models each


def test_a_password_in_the_url_never_shows():
    url = "postgresql://alice:s3cr%40t@127.0.0.1:1/x?sslmode=disable&password=other"
    assert redact_url(url) == "postgresql://alice:***@127.0.0.1:1/x?sslmode=disable&password=***"
    assert set(url_secrets(url)) >= {"s3cr%40t", "s3cr@t", "other"}
    with pytest.raises(StoreError) as err:
        open_store(url)
    message = str(err.value)
    assert message.startswith("cannot open database postgresql://alice:***@127.0.0.1:1/x")
    assert "s3cr" not in message and "other" not in message and "\n" not in message


def test_each_machine_keeps_its_own_cursors_on_a_hub(pg_url):
    from tokenmeter.store.pg import PgStore

    with PgStore.open(pg_url, owner="m-a") as a, PgStore.open(pg_url, owner="m-b") as b:
        for store, pos in ((a, 10), (b, 99)):
            w = store.session("qwen-code", "log", store.state_suffix)
            w.add(rec(f"k{pos}", account=store.state_suffix))
            w.finish({"pos": pos})
        a.record_error("qwen-code", "boom")
        assert a.get_cursor("qwen-code") == {"pos": 10} and b.get_cursor("qwen-code") == {"pos": 99}
        states_a, states_b = a.source_states(), b.source_states()
        assert list(states_a) == list(states_b) == ["qwen-code"]
        assert states_a["qwen-code"]["last_error"] == "boom" and states_b["qwen-code"]["last_error"] is None
        assert len(a.usage_rows()) == 2  # the rows themselves are shared


def test_db_merge_into_a_hub_adds_new_rows_once(tmp_path, pg_url):
    other = tmp_path / "other.db"
    with Store.open(other) as s:
        w = s.session("src", "log", "carol")
        for i in range(5):
            w.add(rec(f"m{i}", minutes=i * 20, account="other"))
        w.finish(None)
    with open_store(pg_url) as hub:
        first = hub.merge(other)
        second = hub.merge(other)
        hub.refresh_rollup()
        (total,) = hub.usage_totals(0, 2**33, tz=None, columns=["machine"], cost="auto", filters=Filters())
    assert (first["usage"], first["skipped"]) == (5, 0) and first["changes"] >= 5
    assert (second["usage"], second["changes"]) == (0, 0)
    assert total.columns == ("carol",) and total.requests == 5


def test_the_dashboard_shows_machines_only_when_there_are_several(pg_url):
    from tokenmeter.config import Config
    from tokenmeter.dashboard import render_dashboard
    from tokenmeter.insights import dashboard_data
    from tokenmeter.periods import resolve_period

    now = T0 + timedelta(days=1)
    period = resolve_period(now, UTC, preset="month")
    with open_store(pg_url) as hub:
        for i, machine in enumerate(("alice", "alice", "bob")):
            w = hub.session("src", "log", machine)
            w.add(rec(f"k{i}", minutes=i, account=machine))
            w.finish(None)
        hub.refresh_rollup()
        data = dashboard_data(hub, Config(), period, now)
        assert {r["machine"]: r["requests"] for r in data["by_machine"]} == {"alice": 2, "bob": 1}
        assert 'id="machine-table"' in render_dashboard(data)
        hub.conn.execute("UPDATE usage SET machine = 'alice'")
        hub.refresh_rollup()
        assert 'id="machine-table"' not in render_dashboard(dashboard_data(hub, Config(), period, now))


def test_the_python_api_opens_a_hub(pg_url):
    import tokenmeter

    with open_store(pg_url) as hub:
        w = hub.session("src", "log", "dana")
        w.add(rec("k1"))
        w.finish(None)
    tm = tokenmeter.open(pg_url)
    try:
        report = tm.report(period="all", by=["machine"])
        assert [(r["machine"], r["requests"]) for r in report.rows] == [("dana", 1)]
    finally:
        tm.close()


def test_a_role_that_may_only_read_gets_current_reports(pg_url):
    role = "tm_reader_" + pg_url.rsplit("tm_", 1)[1][:8]
    schema = "tm_" + pg_url.rsplit("tm_", 1)[1]
    with open_store(pg_url) as hub:
        w = hub.session("src", "log", "erin")
        w.add(rec("k1"))
        w.finish(None)
        hub.refresh_rollup()
        w = hub.session("src", "log", "erin")
        w.add(rec("k2", minutes=30))  # marked, not yet in the rollup
        w.finish(None)
        hub.conn.execute(f"CREATE ROLE {role} LOGIN")
        hub.conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        hub.conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    reader_url = pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    try:
        with open_store(reader_url) as reader:
            assert reader.read_only
            assert reader.refresh_rollup() == 1
            (total,) = reader.usage_totals(0, 2**33, tz=None, columns=[], cost="auto", filters=Filters())
            assert total.requests == 2
            with pytest.raises(sqlite3.Error) as err:
                reader.record_error("src", "x")
            mapped = write_error(err.value, reader.path)
            assert mapped is not None and mapped.reason == "read-only"
            assert "does not accept writes from this user" in str(mapped)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_libpq_reads_pgpassword_pgpass_and_sslmode(pg_url, tmp_path, monkeypatch):
    """The password comes from where libpq users keep it, never from tokenmeter's own settings."""
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    host, port = urlsplit(pg_url).hostname, urlsplit(pg_url).port or 5432
    pgpass.write_text(f"{host}:{port}:*:*:from-pgpass\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    with open_store(pg_url) as hub:
        assert hub.conn.raw.info.password == "from-pgpass"
    monkeypatch.setenv("PGPASSWORD", "from-env")
    with open_store(pg_url) as hub:
        assert hub.conn.raw.info.password == "from-env"
        assert "from-env" not in hub.path
    sep = "&" if "?" in pg_url else "?"
    with open_store(f"{pg_url}{sep}sslmode=disable") as hub:
        assert hub.conn.raw.info.get_parameters().get("sslmode") == "disable"
        assert hub.conn.raw.info.pgconn.ssl_in_use is False
