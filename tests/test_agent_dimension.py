"""The agent dimension (issue 12): which agent made the calls, from the record to every report."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sqlite3
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from helpers_host import cli_json, cli_run, rec

import tokenmeter
from tokenmeter import InvalidRecord, UsageRecord
from tokenmeter.dashboard import render_dashboard
from tokenmeter.periods import Period
from tokenmeter.reports import Filters, usage_report
from tokenmeter.store import USAGE_COLUMNS, Store

NOW = {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}
T = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
ALL = Period(None, None, UTC)
# (agent, requests, input, output, cost) per record; two "main" records add up
CALLS = [
    ("main", 3, 3000, 300, "0.30"),
    ("general-purpose", 2, 2000, 200, "0.20"),
    (None, 1, 1000, 100, "0.01"),
    ("main", 1, 500, 50, "0.05"),
]
EXPECTED = {  # agent -> (requests, input, output, total tokens, cost)
    "general-purpose": (2, 2000, 200, 2200, Decimal("0.20")),
    "main": (4, 3500, 350, 3850, Decimal("0.35")),
    None: (1, 1000, 100, 1100, Decimal("0.01")),
}


def agent_records(start: datetime = T) -> list[UsageRecord]:
    return [rec(f"call-{i}", start=start, model="qwen3-coder-plus", agent=agent, requests=n,
                input_tokens=inp, output_tokens=out, cost=cost, cost_kind="logged")
            for i, (agent, n, inp, out, cost) in enumerate(CALLS)]


def put(store: Store, records, *, source: str = "qwen-code", kind: str = "log"):
    session = store.session(source, kind)
    for r in records:
        session.add(r)
    session.finish(None)
    store.refresh_rollup()  # as a fetch does: the reports read the rollup as it is
    return session.counts


@pytest.fixture
def store(any_store):
    return any_store  # SQLite and PostgreSQL (conftest.any_store)


def fill_default_db() -> None:
    """The records in the database the CLI uses (TOKENMETER_DB, set by the conftest)."""
    with tokenmeter.open() as tm:
        put(tm.store, agent_records())


# -- the record ------------------------------------------------------------------------------------


def test_record_field_follows_session_and_is_validated():
    names = [f.name for f in dataclasses.fields(UsageRecord)]
    assert names[names.index("session") + 1] == "agent"
    assert rec(agent="Explore").agent == "Explore"
    assert rec().agent is None  # not reported
    for bad in ("", 3, b"main"):
        with pytest.raises(InvalidRecord, match="agent"):
            rec(agent=bad)
    assert rec(agent="main").replace(agent=None).agent is None


# -- the store -------------------------------------------------------------------------------------


def test_agent_is_stored_and_a_changed_agent_updates_the_row(store):
    put(store, agent_records())
    assert [r["agent"] for r in store.usage_rows()] == ["main", "general-purpose", None, "main"]
    again = put(store, agent_records())
    assert (again.new, again.updated, again.unchanged) == (0, 0, 4)
    moved = put(store, [agent_records()[0].replace(agent="Explore")])
    assert (moved.new, moved.updated) == (0, 1)
    assert usage_report(store, ALL, by=["agent"], filters=Filters(agent="explore")).total[0]["requests"] == 3


def test_rows_without_agent_keep_their_content_hash(store):
    """A re-read of a log whose records have no agent leaves rows stored before m004 unchanged."""
    put(store, [rec("a")])
    before = store.conn.execute("SELECT content_hash FROM usage").fetchone()[0]
    store.conn.execute("UPDATE usage SET agent = NULL")
    counts = put(store, [rec("a")])
    assert counts.unchanged == 1
    assert store.conn.execute("SELECT content_hash FROM usage").fetchone()[0] == before


# -- reports ---------------------------------------------------------------------------------------


def _by_agent(rows):
    return {r["agent"]: (r["requests"], r["input_tokens"], r["output_tokens"], r["total_tokens"], r["cost"])
            for r in rows}


def test_report_by_agent_exact(store):
    put(store, agent_records())
    report = usage_report(store, ALL, by=["agent"])
    assert [r["agent"] for r in report.rows] == ["general-purpose", "main", None]  # None sorts last
    assert _by_agent(report.rows) == EXPECTED
    assert report.total[0]["requests"] == 7 and report.total[0]["cost"] == Decimal("0.56")
    combined = usage_report(store, ALL, by=["model", "agent"])
    assert {(r["model"], r["agent"]) for r in combined.rows} == {
        ("qwen3-coder-plus", "main"), ("qwen3-coder-plus", "general-purpose"), ("qwen3-coder-plus", None)}
    days = usage_report(store, ALL, by=["day", "agent"])
    assert [(r["day"], r["agent"], r["requests"]) for r in days.rows] == [
        ("2026-03-15", "general-purpose", 2), ("2026-03-15", "main", 4), ("2026-03-15", None, 1)]


def test_agent_filter_is_a_case_insensitive_substring(store):
    put(store, agent_records())
    only = usage_report(store, ALL, by=["agent"], filters=Filters(agent="GENERAL"))
    assert _by_agent(only.rows) == {"general-purpose": EXPECTED["general-purpose"]}
    assert usage_report(store, ALL, filters=Filters(agent="%")).total == []  # LIKE wildcards are literal


@pytest.mark.parametrize("zone", ["America/St_Johns", "Asia/Kathmandu"])
def test_rollup_gives_the_same_as_raw_rows_in_a_local_zone(store, zone):
    """Per local day × agent, the 15-minute rollup adds up exactly what the raw records do."""
    tz = ZoneInfo(zone)
    agents = ["main", "general-purpose", "Explore", None]
    records = []
    for i in range(200):  # every 37 minutes for ~5 days: crosses local midnights at odd offsets
        start = datetime(2026, 3, 8, 0, 0, tzinfo=UTC) + timedelta(minutes=37 * i)
        records.append(rec(f"r{i}", start=start, agent=agents[i % len(agents)], requests=1 + i % 3,
                           input_tokens=100 + i, output_tokens=10 + i % 7,
                           cost=Decimal(i + 1) / 1000, cost_kind="logged"))
    put(store, records)
    expected: dict[tuple[str, str | None], list] = defaultdict(lambda: [0, 0, Decimal(0)])
    for r in records:
        acc = expected[(r.start.astimezone(tz).date().isoformat(), r.agent)]
        acc[0] += r.requests
        acc[1] += r.input_tokens + r.output_tokens
        acc[2] += r.cost
    report = usage_report(store, Period(date(2026, 3, 1), date(2026, 3, 31), tz), by=["day", "agent"])
    got = {(r["day"], r["agent"]): [r["requests"], r["total_tokens"], r["cost"]] for r in report.rows}
    assert got == {k: v for k, v in expected.items()}
    assert len({d for d, _ in got}) >= 5


def test_a_ledger_day_still_replaces_its_logs_when_grouped_by_agent(store):
    """Ledger/log overlap works per provider and day, whatever the agent: no double counting."""
    put(store, agent_records())
    put(store, [rec("bill", start=T.replace(hour=0), end=T.replace(hour=0) + timedelta(days=1),
                    requests=7, input_tokens=6500, output_tokens=650, cost="0.60", cost_kind="billed")],
        source="qwen-bill", kind="ledger")
    report = usage_report(store, ALL, by=["agent"])
    assert [(r["agent"], r["requests"], r["cost"]) for r in report.rows] == [(None, 7, Decimal("0.6"))]
    assert report.notes and "7 requests" in report.notes[0]


def test_python_api(tmp_path):
    with tokenmeter.open(tmp_path / "api.db") as tm:
        put(tm.store, agent_records())
        rows = tm.usage("all", by="agent")
        assert _by_agent(rows) == EXPECTED
        assert tm.usage("all", by=["day", "agent"], agent="main")[0]["requests"] == 4
        assert tm.get_cost("all", agent="general") == {"USD": Decimal("0.20")}
        assert tm.export_csv("all", by="agent").splitlines()[0].startswith("agent,requests,")


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_table(tokenmeter_env):
    fill_default_db()
    result = cli_run(["--today", "--by", "agent", "-f", "table", "--tz", "UTC", "--offline"], NOW)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:] if line.strip()}
    # 80 columns: the cache/reasoning column is left out (--wide below shows it)
    assert lines["general-purpose"][:5] == ["general-purpose", "2", "2,000", "200", "2,200"]
    assert lines["main"][1:4] == ["4", "3,500", "350"] and "0.35" in lines["main"]
    assert lines["-"][1:4] == ["1", "1,000", "100"] and "0.01" in lines["-"]  # no agent reported
    assert lines["Total"][1] == "7" and "0.56" in lines["Total"]
    wide = cli_run(["--today", "--by", "agent", "-f", "table", "--tz", "UTC", "--offline", "--wide"], NOW)
    lines = {line.split()[0]: line.split() for line in wide.stdout.splitlines()[2:] if line.strip()}
    assert lines["general-purpose"][:7] == ["general-purpose", "2", "2,000", "200", "–", "–", "–"]


def test_cli_json_csv_tsv_quiet(tokenmeter_env):
    fill_default_db()
    out = cli_json(["report", "--today", "--by", "agent", "--json", "--offline"], NOW)
    assert out["group_by"] == ["agent"]
    got = {r["agent"]: (r["requests"], r["input_tokens"], r["output_tokens"], r["total_tokens"], r["cost"])
           for r in out["rows"]}
    assert got == {a: (*v[:4], format(v[4].normalize(), "f")) for a, v in EXPECTED.items()}  # None -> null

    text = cli_run(["report", "--today", "--by", "day,agent", "--csv", "--offline"], NOW).stdout
    assert text.splitlines()[0].startswith("day,agent,requests,input_tokens,")
    rows = {r["agent"]: r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {"main", "general-purpose", ""}  # no agent: an empty cell
    assert (rows["main"]["requests"], rows["main"]["total_tokens"], rows["main"]["cost"]) == ("4", "3850", "0.35")
    assert rows[""]["day"] == "2026-03-15" and rows[""]["cost"] == "0.01"

    tsv = cli_run(["report", "--today", "--by", "model,agent", "-f", "tsv", "--offline"], NOW).stdout.splitlines()
    header = tsv[0].split("\t")
    assert header[:2] == ["model", "agent"]
    assert {line.split("\t")[1]: line.split("\t")[header.index("requests")] for line in tsv[1:]} == {
        "general-purpose": "2", "main": "4", "": "1"}

    assert cli_run(["--today", "--agent", "MAIN", "-q", "--offline"], NOW).stdout == "3850\t0.35\t4\n"
    assert cli_run(["--today", "--agent", "nobody", "-q", "--offline"], NOW).stdout == "0\t?\t0\n"


def test_cli_rejects_agent_with_dashboard_and_unknown_dims(tokenmeter_env):
    result = cli_run(["--dashboard", "--agent", "main"], NOW)
    assert result.exit_code == 64 and "not --agent" in result.output  # a usage error
    assert cli_run(["--by", "agents", "--json"], NOW).exit_code == 4


# -- migration, merge, export ----------------------------------------------------------------------

# the m003-era rollup query (positional, without agent): what a previous version left behind
OLD_ROLLUP_SQL = """
INSERT INTO usage_rollup
SELECT start_ts - start_ts % 900, source, kind, account, provider, model, project,
       cost_nanos IS NOT NULL, currency, cost_kind, est_currency,
       COUNT(*), SUM(COALESCE(requests, 1)), SUM(requests), SUM(input_tokens), SUM(output_tokens),
       SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
       SUM(COALESCE(total_tokens, input_tokens + output_tokens)), SUM(cost_nanos), SUM(est_cost_nanos)
FROM usage GROUP BY 1, source, kind, account, provider, model, project, 8, currency, cost_kind, est_currency
"""


def previous_version_db(path, records) -> None:
    """A database at schema m003 holding ``records`` (no agent column), its rollup built."""
    import sqlite_utils

    from tokenmeter.store.migrations import migrations

    migrations.apply(sqlite_utils.Database(path), stop_before="m004_agent")
    scratch = path.with_name(path.stem + "-scratch.db")
    with Store.open(scratch) as s:
        put(s, records)
    old_cols = ", ".join(f'"{c}"' for c in USAGE_COLUMNS if c not in ("agent", "machine"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ATTACH DATABASE ? AS scratch", (str(scratch),))
    conn.execute(f"INSERT INTO usage ({old_cols}) SELECT {old_cols} FROM scratch.usage")
    conn.execute("DETACH DATABASE scratch")
    conn.execute(OLD_ROLLUP_SQL)
    conn.execute("DELETE FROM rollup_dirty")
    assert "agent" not in {r[1] for r in conn.execute("PRAGMA table_info(usage)")}
    conn.close()


def test_migration_from_the_previous_schema_keeps_rows_and_totals(tmp_path):
    old = tmp_path / "old.db"
    records = [r.replace(agent=None) for r in agent_records()]
    previous_version_db(old, records)
    with Store.open(tmp_path / "reference.db") as ref:
        put(ref, records)
        expected = usage_report(ref, ALL, by=["day", "model"]).as_dict()
    migrate = cli_run(["db", "migrate", "--db", str(old)])
    assert migrate.exit_code == 0 and "Applied 2 migration(s): m004_agent, m005_hub" in migrate.stdout
    with Store.open(old) as s:
        assert s.pending_migrations() == []
        assert len(s.usage_rows()) == 4 and {r["agent"] for r in s.usage_rows()} == {None}
        rollup = s.conn.execute("SELECT * FROM usage_rollup ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall()
        # the old rollup is correct as it stands: nothing to rebuild, and a rebuild changes nothing
        assert s.conn.execute("SELECT COUNT(*) FROM rollup_dirty").fetchone()[0] == 0
        assert usage_report(s, ALL, by=["day", "model"]).as_dict() == expected
        by_agent = usage_report(s, ALL, by=["agent"])
        assert [(r["agent"], r["requests"], r["cost"]) for r in by_agent.rows] == [(None, 7, Decimal("0.56"))]
        s.mark_all_dirty()
        s.refresh_rollup()
        assert s.conn.execute("SELECT * FROM usage_rollup ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall() == rollup
        # new records with agents land next to the old rows
        put(s, [rec("new", start=T, agent="main", requests=2)])
        assert usage_report(s, ALL, by=["agent"]).rows[0]["agent"] == "main"


def test_merge_a_previous_version_database(tmp_path):
    old, ours = tmp_path / "old.db", tmp_path / "ours.db"
    previous_version_db(old, [rec("from-old", start=T, account="machine-b", requests=5)])
    with Store.open(ours) as s:
        put(s, agent_records())
        counts = s.merge(old)
        assert counts["usage"] == 1
        s.refresh_rollup()
        merged = {r["key"]: r["agent"] for r in s.usage_rows()}
        assert merged["from-old"] is None and merged["call-0"] == "main"
        report = usage_report(s, ALL, by=["agent"])
        assert {r["agent"]: r["requests"] for r in report.rows} == {"general-purpose": 2, "main": 4, None: 6}
        assert s.merge(old) == {"usage": 0, "quota_snapshots": 0, "skipped": 0, "changes": 0}
    # and the other way round: our agents travel into a database of this version
    with Store.open(tmp_path / "third.db") as s:
        s.merge(ours)
        assert {r["key"]: r["agent"] for r in s.usage_rows()} == merged


def test_db_export_carries_agent(tokenmeter_env):
    fill_default_db()
    rows = json.loads(cli_run(["db", "export", "--json"]).stdout)
    assert [r["agent"] for r in rows] == ["main", "general-purpose", None, "main"]
    header = cli_run(["db", "export", "--csv"]).stdout.splitlines()[0].split(",")
    assert header[header.index("session") + 1] == "agent"


# -- the dashboard ---------------------------------------------------------------------------------


def test_dashboard_has_the_agent_breakdown(tokenmeter_env):
    from tokenmeter.config import load_config
    from tokenmeter.insights import dashboard_data

    fill_default_db()
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    with tokenmeter.open() as tm:
        tm.store.refresh_rollup()
        data = dashboard_data(tm.store, load_config(None), Period(date(2026, 3, 1), date(2026, 3, 31), UTC), now)
    assert _by_agent(data["by_agent"]) == EXPECTED
    html = render_dashboard(data)
    section = html[html.index('<section class="card" id="agents">'):html.index('id="details"')]
    assert "<h2>By agent</h2>" in section and 'id="agent-table"' in section
    for agent in ("main", "general-purpose"):
        assert f"<td>{agent}</td>" in section
    assert '<td class="n" data-sort="7">7</td>' not in section  # per agent, not the total
    assert '<td class="n" data-sort="4">4</td>' in section  # main's requests
    assert '<td>\u2014</td>' in section  # no agent reported: a dash, never hidden
    details = html[html.index('id="detail-table"'):]
    assert '<th class="" data-col="agent">Agent</th>' in details


def test_dashboard_without_agents_is_unchanged():
    rows = [{"day": "2026-03-15", "model": "m", "provider": "qwen", "requests": 1, "total_tokens": 10,
             "cost": "0.1", "currency": "USD", "cost_kind": "logged", "agent": None}]
    html = render_dashboard({"rows": rows, "by_agent": [dict(rows[0])]})
    assert 'id="agents"' not in html and 'data-col="agent"' not in html
