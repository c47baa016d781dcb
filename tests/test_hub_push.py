"""`tokenmeter db push` to a PostgreSQL team hub, end to end: real processes, real SQLite files, a real hub.

1. Three machines: two push their own SQLite databases at the same time, a third fetches straight
   into the hub; the hub's report is, cell for cell, the sum of the three machines' own reports.
2. A push killed (SIGKILL) after its first batch committed: the next push resumes, and the hub
   ends with exactly one copy of every local row.
3. Incremental pushes: only the buckets that changed are sent; a changed record replaces its hub
   copy; a no-op re-fetch sends nothing; a `reprice` reaches the hub.
4. A password in the hub URL never appears in any output.

The pushes and the fetches run as separate `python -m tokenmeter` processes (the way cron runs
them); reports run in-process (click's CliRunner). Each test uses a fresh hub schema (``pg_url``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner

from tokenmeter.batch import RecordBatch
from tokenmeter.records import UsageRecord
from tokenmeter.store import Store, open_store, redact_url
from tokenmeter.store.push import PUSH_BATCH

METRICS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens", "total_tokens", "unpriced_requests")
SECRET = "s3cretpw"


# -- helpers: processes, the in-process CLI, the hub ---------------------------------------------
def tm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tokenmeter", *args]


def tm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `tokenmeter ARGS` in a separate process (the environment is the test's: its own home)."""
    return subprocess.run(tm_cmd(*args), capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def tm_json(*args: str) -> Any:
    proc = tm(*args)
    assert proc.returncode == 0, (args, proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def cli(*args: str) -> Any:
    """Run the CLI in-process; the JSON it prints (it must exit 0)."""
    from tokenmeter.cli import cli as main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


def report(db: str | Path, *extra: str, by: str = "day,model") -> dict[str, Any]:
    return cli("--db", str(db), "report", "--all", "--by", by, "--tz", "UTC", "--offline", "-f", "json", *extra)


def hub_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def hub_count(url: str) -> int:
    return hub_query(url, "SELECT COUNT(*) FROM usage")[0][0]


def hub_duplicate_ids(url: str) -> list[tuple[Any, ...]]:
    return hub_query(url, "SELECT id, COUNT(*) FROM usage GROUP BY id HAVING COUNT(*) > 1")


def local_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM usage")}


def local_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0]


def write_config(path: Path, machine: str, extra: str = "") -> Path:
    path.write_text(f'[tokenmeter]\nmachine_name = "{machine}"\ntimezone = "UTC"\n\n{extra}')
    return path


# -- helpers: data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Est:
    """A price-table estimate as the store takes it (``store.base.Estimate``)."""

    cost: Decimal
    currency: str = "USD"
    basis: str = "test-prices"


def machine_records(account: str, days: Sequence[date], models: Sequence[str], n: int, *, seed: int,
                    cache: bool = False) -> list[tuple[UsageRecord, Est | None]]:
    """``n`` log records of one machine spread over ``days`` and ``models``: a third with a logged
    cost, a third with only an estimate, a third unpriced. Keys are ``call-<i>`` on every machine
    (the account, as a log source's ``ctx.machine_id``, keeps the row ids apart)."""
    rnd = random.Random(seed)
    out: list[tuple[UsageRecord, Est | None]] = []
    for i in range(n):
        day = days[i % len(days)]
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rnd.randrange(86_400))
        inp, out_tokens = rnd.randrange(100, 20_000), rnd.randrange(10, 2_000)
        kind = i % 3
        record = UsageRecord(
            key=f"call-{i}", start=start, provider="qwen", model=models[(i // len(days)) % len(models)],
            account=account, requests=1, input_tokens=inp, output_tokens=out_tokens,
            cache_read_tokens=rnd.randrange(0, inp) if cache else None, total_tokens=inp + out_tokens,
            cost=Decimal(rnd.randrange(1, 10**7)) / 10**9 if kind == 0 else None,
            currency="USD" if kind == 0 else None, cost_kind="logged" if kind == 0 else None,
        )
        out.append((record, Est(Decimal(rnd.randrange(1, 10**7)) / 10**9) if kind == 1 else None))
    return out


def write_records(db: Path, records: Iterable[tuple[UsageRecord, Est | None]], *, source: str = "qwen-code",
                  machine: str | None = None) -> None:
    """One fetch run's worth of records, written straight into the SQLite database ``db``."""
    store = Store.open(db)
    try:
        session = store.session(source, "log", machine)
        for record, est in records:
            session.add(record, est)
        session.finish(None)
    finally:
        store.close()


def write_bulk(db: Path, n: int, *, account: str = "acct-bulk", start: datetime = datetime(2026, 3, 1, tzinfo=UTC),
               step: int = 37) -> None:
    """``n`` rows through the bulk path (a ``RecordBatch``): one every ``step`` seconds from ``start``."""
    rows = tuple(
        (f"bulk-{i}", start + timedelta(seconds=step * i), ("qwen-flash", "qwen-plus")[i % 2], None, None, None,
         1, 100 + i % 50, 10 + i % 7, None, None, None, 110 + i % 50 + i % 7, None)
        for i in range(n)
    )
    estimates = [(1_000 * (1 + i % 5), "USD", "test-prices") for i in range(n)]
    store = Store.open(db)
    try:
        session = store.session("bulk-log", "log", None)
        session.add_rows(RecordBatch("qwen", account, rows), estimates)
        session.finish(None)
    finally:
        store.close()


def write_tsv(path: Path, n: int, *, seed: int) -> Path:
    """A DashScope TSV usage log (what `dashscope-log` reads) of ``n`` calls, two with an unknown model."""
    rnd = random.Random(seed)
    models = ("qwen-flash", "qwen-plus-latest", "qwen3-coder-plus")
    t0 = datetime(2026, 3, 9, tzinfo=UTC)
    times = sorted(t0 + timedelta(seconds=rnd.randrange(4 * 86_400)) for _ in range(n))
    lines = ["timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd"]
    for i, ts in enumerate(times):
        model = "?" if i in (7, 31) else models[i % len(models)]
        lines.append(f"{ts.strftime('%Y-%m-%dT%H:%M:%SZ')}\t{model}\tqwen-beijing\t{rnd.randrange(100, 30_000)}\t"
                     f"{rnd.randrange(10, 3_000)}\t{rnd.randrange(1, 10**6) / 10**6:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- helpers: report arithmetic -------------------------------------------------------------------
def cells(rep: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A report's rows by their group (day, model), numbers comparable (cost as Decimal)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rep["rows"]:
        group = tuple(row[g] for g in rep["group_by"])
        assert group not in out, f"two rows for {group}"
        out[group] = {**{m: row[m] for m in METRICS},
                      "cost": None if row["cost"] is None else Decimal(row["cost"]), "currency": row["currency"]}
    return out


def _plus(a: Any, b: Any) -> Any:
    # a report shows None where nothing was reported; anything reported counts
    return b if a is None else a if b is None else a + b


def summed(*reports: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    total: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rep in reports:
        for group, cell in cells(rep).items():
            acc = total.setdefault(group, dict.fromkeys((*METRICS, "cost", "currency")))
            for name in (*METRICS, "cost"):
                acc[name] = _plus(acc[name], cell[name])
            if cell["currency"] is not None:
                assert acc["currency"] in (None, cell["currency"])
                acc["currency"] = cell["currency"]
    return total


def requests(rep: dict[str, Any]) -> int:
    return sum(row["requests"] for row in rep["rows"])


# -- 1. three machines ---------------------------------------------------------------------------
D = date(2026, 3, 9)
A_DAYS = [D, D + timedelta(1), D + timedelta(2)]  # 9th-11th
B_DAYS = [D + timedelta(1), D + timedelta(2), D + timedelta(3), D + timedelta(4)]  # 10th-13th
A_MODELS = ["qwen-flash", "qwen3-coder-plus", "qwen-plus-latest"]
B_MODELS = ["qwen-flash", "qwen-max", "qwen-plus-latest"]


def test_three_machines_concurrent_pushes_and_a_direct_fetch_add_up(pg_url, tmp_path):
    hub = pg_url
    a_db, b_db, c_db = tmp_path / "alice.db", tmp_path / "bob.db", tmp_path / "ci-local.db"
    a_cfg = write_config(tmp_path / "a.toml", "alice-laptop")
    b_cfg = write_config(tmp_path / "b.toml", "bob-desktop")
    tsv = write_tsv(tmp_path / "qwen-usage.tsv", 160, seed=3)
    c_cfg = write_config(tmp_path / "c.toml", "ci-server", f'[sources.dashscope-log]\npaths = ["{tsv}"]\n')
    # A's rows name no machine (stored before machine names existed: the push names them);
    # B's name their machine, as `tokenmeter fetch` stores them today. Same keys on both.
    write_records(a_db, machine_records("acct-alice", A_DAYS, A_MODELS, 9_000, seed=1), machine=None)
    write_records(b_db, machine_records("acct-bob", B_DAYS, B_MODELS, 12_000, seed=2, cache=True),
                  machine="bob-desktop")
    assert (local_count(a_db), local_count(b_db)) == (9_000, 12_000)

    # round 1, on a hub nobody has migrated yet: A and B push while C fetches into it
    procs = {
        "a": subprocess.Popen(tm_cmd("--db", str(a_db), "--config", str(a_cfg), "db", "push", hub, "-f", "json"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "b": subprocess.Popen(tm_cmd("--db", str(b_db), "--config", str(b_cfg), "db", "push", hub, "-f", "json"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "c": subprocess.Popen(tm_cmd("--db", hub, "--config", str(c_cfg), "fetch", "dashscope-log", "--json"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, (name, proc.returncode, stdout, stderr)
        out[name] = json.loads(stdout)
    redacted_hub = redact_url(hub)  # the test server's URL as given, unless it holds a password
    assert set(out["a"]) == set(out["b"]) == {"hub", "machine", "rows", "new", "updated", "snapshots", "seconds"}
    assert out["a"] == {**out["a"], "hub": redacted_hub, "machine": "alice-laptop", "rows": 9_000, "new": 9_000,
                        "updated": 0, "snapshots": 0}
    assert out["b"] == {**out["b"], "hub": redacted_hub, "machine": "bob-desktop", "rows": 12_000,
                        "new": 12_000, "updated": 0, "snapshots": 0}
    c_run = out["c"]["sources"]
    assert [(s["source"], s["status"], s["new"]) for s in c_run] == [("dashscope-log", "ok", 160)]
    assert hub_count(hub) == 9_000 + 12_000 + 160
    assert hub_query(hub, "SELECT machine, COUNT(*) FROM usage GROUP BY machine ORDER BY machine") == [
        ("alice-laptop", 9_000), ("bob-desktop", 12_000), ("ci-server", 160)]
    # A and B used the same keys: their rows are apart only by account (the machine id), never merged
    assert hub_query(hub, "SELECT COUNT(DISTINCT key), COUNT(*) FROM usage WHERE source = 'qwen-code'") == [
        (12_000, 21_000)]
    assert hub_duplicate_ids(hub) == []

    # round 2: both push again at once: nothing is sent, nothing changes; C's re-fetch adds nothing
    before = hub_query(hub, "SELECT id, content_hash, est_cost_nanos, machine FROM usage ORDER BY id")
    again = [subprocess.Popen(tm_cmd("--db", str(db), "--config", str(cfg), "db", "push", hub, "-f", "json"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for db, cfg in ((a_db, a_cfg), (b_db, b_cfg))]
    for proc in again:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, (stdout, stderr)
        assert {k: v for k, v in json.loads(stdout).items() if k in ("rows", "new", "updated", "snapshots")} == {
            "rows": 0, "new": 0, "updated": 0, "snapshots": 0}
    refetch = tm_json("--db", hub, "--config", str(c_cfg), "fetch", "dashscope-log", "--json")
    assert [(s["status"], s["new"], s["updated"]) for s in refetch["sources"]] == [("ok", 0, 0)]
    assert hub_query(hub, "SELECT id, content_hash, est_cost_nanos, machine FROM usage ORDER BY id") == before
    assert hub_query(hub, "SELECT machine, rows FROM hub_pushes ORDER BY machine") == [
        ("alice-laptop", 9_000), ("bob-desktop", 12_000)]

    # C's own report: the same log fetched by the same machine into a SQLite database of its own
    c_local = tm_json("--db", str(c_db), "--config", str(c_cfg), "fetch", "dashscope-log", "--json")
    assert [(s["status"], s["new"]) for s in c_local["sources"]] == [("ok", 160)]

    a_rep, b_rep, c_rep = report(a_db), report(b_db), report(c_db)
    hub_rep = report(hub)
    assert (requests(a_rep), requests(b_rep), requests(c_rep)) == (9_000, 12_000, 160)
    # the data really overlaps: cells that two or three machines contribute to
    overlap = set(cells(a_rep)) & set(cells(b_rep)) & set(cells(c_rep))
    assert {("2026-03-10", "qwen-flash"), ("2026-03-11", "qwen-plus-latest")} <= overlap
    assert any(model is None for _, model in cells(c_rep))  # the "?" lines: no model

    expected = summed(a_rep, b_rep, c_rep)
    got = cells(hub_rep)
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    for group in expected:
        assert got[group] == expected[group], group
    total = hub_rep["total"]
    assert total["requests"] == 9_000 + 12_000 + 160
    assert Decimal(total["cost"]) == sum(Decimal(r["total"]["cost"]) for r in (a_rep, b_rep, c_rep))
    assert total["total_tokens"] == sum(r["total"]["total_tokens"] for r in (a_rep, b_rep, c_rep))

    # per machine: the hub's cells for one machine are exactly that machine's own report
    for machine, own in (("alice-laptop", a_rep), ("bob-desktop", b_rep), ("ci-server", c_rep)):
        assert report(hub, "--machine", machine)["rows"] == own["rows"], machine
    by_machine = report(hub, by="machine")
    assert [(r["machine"], r["requests"]) for r in by_machine["rows"]] == [
        ("alice-laptop", 9_000), ("bob-desktop", 12_000), ("ci-server", 160)]
    assert [Decimal(r["cost"]) for r in by_machine["rows"]] == [
        Decimal(r["total"]["cost"]) for r in (a_rep, b_rep, c_rep)]


# -- 2. a push killed halfway --------------------------------------------------------------------
KILL_ROWS = 70_000


def test_push_killed_after_its_first_batch_resumes_without_duplicates(pg_url, tmp_path):
    hub = pg_url
    local = tmp_path / "big.db"
    write_bulk(local, KILL_ROWS)
    assert KILL_ROWS > 3 * PUSH_BATCH  # several batches: a kill after the first leaves work to do
    open_store(hub).close()  # migrated beforehand: hub_pushes exists to be polled

    import psycopg

    proc = subprocess.Popen(tm_cmd("--db", str(local), "db", "push", hub, "-f", "json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(hub, autocommit=True, connect_timeout=10) as conn:
            deadline = time.monotonic() + 60
            pushed = 0
            while proc.poll() is None and time.monotonic() < deadline:
                row = conn.execute("SELECT rows FROM hub_pushes").fetchone()
                if row is not None and row[0] > 0:  # the first batch (and its watermark) committed
                    proc.send_signal(signal.SIGKILL)
                    pushed = row[0]
                    break
                time.sleep(0.002)
    finally:
        if proc.poll() is None and not pushed:
            proc.kill()
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f"the push was not caught halfway (exit {proc.returncode}); its batches are PUSH_BATCH={PUSH_BATCH} rows "
        f"and the CLI offers no way to make them smaller: {stdout} {stderr}")
    assert stdout == ""

    # what the killed push committed: whole batches, each with its watermark, nothing else
    partial = hub_count(hub)
    (seq, rows), = hub_query(hub, "SELECT seq, rows FROM hub_pushes")
    assert PUSH_BATCH <= pushed <= partial == rows < KILL_ROWS
    with sqlite3.connect(local) as conn:
        top_seq = conn.execute("SELECT MAX(seq) FROM usage_changes").fetchone()[0]
        below = conn.execute("SELECT COUNT(*) FROM usage WHERE start_ts - start_ts % 900 IN "
                             "(SELECT bucket FROM usage_changes WHERE seq <= ?)", (seq,)).fetchone()[0]
    assert 0 < seq < top_seq
    assert below == partial  # exactly the buckets up to the watermark arrived

    # the next push sends the rest, once
    resumed = tm_json("--db", str(local), "db", "push", hub, "-f", "json")
    assert (resumed["rows"], resumed["new"], resumed["updated"]) == (KILL_ROWS - partial, KILL_ROWS - partial, 0)
    assert hub_count(hub) == local_count(local) == KILL_ROWS
    assert hub_duplicate_ids(hub) == []
    assert {r[0] for r in hub_query(hub, "SELECT id FROM usage")} == local_ids(local)
    assert hub_query(hub, "SELECT seq, rows FROM hub_pushes") == [(top_seq, KILL_ROWS)]
    assert tm_json("--db", str(local), "db", "push", hub, "-f", "json")["rows"] == 0

    local_rep, hub_rep = report(local), report(hub)
    assert hub_rep["rows"] == local_rep["rows"]
    assert hub_rep["total"] == local_rep["total"]
    assert local_rep["total"]["requests"] == KILL_ROWS
    assert Decimal(local_rep["total"]["cost"]) == Decimal(sum(1_000 * (1 + i % 5) for i in range(KILL_ROWS))) / 10**9


# -- 3. incremental pushes -----------------------------------------------------------------------
def _buckets(db: Path, ids: Iterable[str]) -> set[int]:
    ids = list(ids)
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute(
            f"SELECT start_ts - start_ts % 900 FROM usage WHERE id IN ({', '.join('?' * len(ids))})", ids)}


def _rows_in(db: Path, buckets: set[int]) -> int:
    with sqlite3.connect(db) as conn:
        return sum(conn.execute("SELECT COUNT(*) FROM usage WHERE start_ts >= ? AND start_ts < ?",
                                (b, b + 900)).fetchone()[0] for b in buckets)


def test_incremental_push_sends_only_changed_buckets(pg_url, tmp_path):
    from tokenmeter.store import row_id

    hub, local = pg_url, tmp_path / "local.db"
    cfg = write_config(tmp_path / "m.toml", "dana-laptop")
    days = [date(2026, 3, 1) + timedelta(d) for d in range(10)]
    # models no price table knows and no estimates: only what the test prices later gets a price
    base = [(r, None) for r, _ in machine_records("acct-dana", days, ["zz-unit-small", "zz-unit-medium"], 3_000,
                                                  seed=7)]
    # one day of a model no price table knows: `reprice` will price it once the config does
    late = [(UsageRecord(key=f"widget-{i}", start=datetime(2026, 3, 5, 9, tzinfo=UTC) + timedelta(minutes=7 * i),
                         provider="qwen", model="zz-unit-large", account="acct-dana", requests=1,
                         input_tokens=1_000_000, output_tokens=100_000), None) for i in range(40)]
    write_records(local, base + late)
    first = tm_json("--db", str(local), "--config", str(cfg), "db", "push", hub, "-f", "json")
    assert (first["rows"], first["new"], first["updated"]) == (3_040, 3_040, 0)

    def push() -> dict[str, Any]:
        return tm_json("--db", str(local), "--config", str(cfg), "db", "push", hub, "-f", "json")

    def hub_row(key: str) -> dict[str, Any]:
        rows = hub_query(hub, "SELECT input_tokens, output_tokens, total_tokens, est_cost_nanos, machine "
                              "FROM usage WHERE key = %s AND account = 'acct-dana'", (key,))
        assert len(rows) == 1, rows
        return dict(zip(("input_tokens", "output_tokens", "total_tokens", "est_cost_nanos", "machine"), rows[0],
                        strict=True))

    # a re-fetch that finds nothing new (same records, same content) marks nothing: nothing to send
    write_records(local, base[:200])
    assert push()["rows"] == 0

    # new calls on a new day, one call whose tokens changed (the log line was completed) and one
    # whose time changed (it moves to another bucket: the old bucket is sent too, the hub row moves)
    changed_key, moved_key = "call-100", "call-200"
    (old, est), (was, was_est) = base[100], base[200]
    assert (old.key, was.key) == (changed_key, moved_key)
    changed = dataclasses.replace(old, input_tokens=old.input_tokens + 5_000, total_tokens=old.total_tokens + 5_000)
    moved_to = datetime(2026, 3, 12, 23, 59, tzinfo=UTC)
    moved = dataclasses.replace(was, start=moved_to, end=moved_to)
    new = [(UsageRecord(key=f"new-{i}", start=datetime(2026, 3, 12, 8, tzinfo=UTC) + timedelta(minutes=5 * i),
                        provider="qwen", model="zz-unit-medium", account="acct-dana", requests=1, input_tokens=500 + i,
                        output_tokens=50), None) for i in range(25)]
    moved_from = _buckets(local, [row_id("qwen-code", "acct-dana", moved_key)])
    write_records(local, [(changed, est), (moved, was_est), *new])
    keys = [changed_key, moved_key, *(f"new-{i}" for i in range(25))]
    touched = _buckets(local, [row_id("qwen-code", "acct-dana", k) for k in keys]) | moved_from
    assert len(touched) >= 3 + 25 * 5 // 15
    expected_rows = _rows_in(local, touched)
    assert expected_rows < 3_065 / 20  # a handful of buckets, not the database

    second = push()
    assert (second["rows"], second["new"], second["updated"]) == (expected_rows, 25, 2)
    assert hub_row(changed_key)["input_tokens"] == old.input_tokens + 5_000
    assert hub_row(changed_key)["total_tokens"] == old.total_tokens + 5_000
    assert hub_row(changed_key)["machine"] == "dana-laptop"
    assert hub_query(hub, "SELECT start_ts FROM usage WHERE key = %s AND account = 'acct-dana'", (moved_key,)) == [
        (int(moved_to.timestamp()),)]
    assert hub_count(hub) == local_count(local) == 3_065
    assert hub_duplicate_ids(hub) == []
    assert push()["rows"] == 0
    assert report(hub)["rows"] == report(local)["rows"]

    # a price for zz-unit-large in the config, `reprice`: new estimates travel with the next push
    priced = write_config(tmp_path / "m.toml", "dana-laptop",
                          '[prices."zz-unit-large"]\ninput = 1.5\noutput = 6\ncurrency = "USD"\n')
    proc = tm("--db", str(local), "--config", str(priced), "reprice")
    assert proc.returncode == 0, proc.stderr
    assert "40 estimates changed" in proc.stdout, proc.stdout
    widget_ids = [row_id("qwen-code", "acct-dana", f"widget-{i}") for i in range(40)]
    third = push()
    assert (third["rows"], third["new"], third["updated"]) == (_rows_in(local, _buckets(local, widget_ids)), 0, 40)
    # 1M input at 1.5 + 100k output at 6 per million: 2.1 USD a call
    assert hub_row("widget-0")["est_cost_nanos"] == 2_100_000_000
    widgets = report(hub, "--model", "zz-unit-large", by="model")["rows"]
    assert [(w["requests"], Decimal(w["cost"]), w["unpriced_requests"]) for w in widgets] == [(40, Decimal("84"), 0)]
    assert report(hub)["rows"] == report(local)["rows"]
    assert hub_count(hub) == 3_065


# -- 4. no password in any output ----------------------------------------------------------------
@pytest.mark.parametrize(("url", "secrets"), [
    (f"postgresql://postgres:{SECRET}@127.0.0.1:1/test", [SECRET]),
    (f"postgresql://postgres@127.0.0.1:1/test?password={SECRET}", [SECRET]),
    ("postgresql://postgres:s3cret%21pw@127.0.0.1:1/test", ["s3cret%21pw", "s3cret!pw"]),
    (f"postgresql://postgres:{SECRET}@127.0.0.1:99999/test", [SECRET]),  # libpq rejects the port itself
    (f"postgresql://postgres:{SECRET}@127.0.0.1:1/test?sslmode=bogus", [SECRET]),
])
def test_push_errors_never_show_the_password(tmp_path, url, secrets):
    local = tmp_path / "local.db"
    write_bulk(local, 10)
    runs = {  # text, json and --debug (a traceback) at once
        extra: subprocess.Popen(tm_cmd("--db", str(local), "db", "push", url, *extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        for extra in (("-f", "text"), ("-f", "json"), ("--debug",))
    }
    for extra, proc in runs.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 4, (extra, proc.returncode, stdout, stderr)
        for secret in secrets:
            assert secret not in stdout and secret not in stderr, (extra, stderr)
        assert "***" in stderr
        if extra != ("--debug",):
            assert stdout == ""
            assert len(stderr.strip().splitlines()) == 1, stderr
            assert "cannot open database postgresql://postgres" in stderr
            if extra == ("-f", "json"):
                assert json.loads(stderr)["error"]["exit_code"] == 4


def test_hub_password_from_the_config_is_not_shown_either(tmp_path):
    local = tmp_path / "local.db"
    write_bulk(local, 10)
    cfg = write_config(tmp_path / "m.toml", "erin", f'[hub]\nurl = "postgresql://tm:{SECRET}@127.0.0.1:1/team"\n')
    proc = tm("--db", str(local), "--config", str(cfg), "db", "push")
    assert proc.returncode == 4
    assert SECRET not in proc.stdout + proc.stderr
    # a warning about keeping the password in the config (without it), then the one-line error
    assert proc.stderr.strip().splitlines() == [
        "tokenmeter: warning: hub.url holds a password; prefer ~/.pgpass or PGPASSWORD",
        "Error: cannot open database postgresql://tm:***@127.0.0.1:1/team: "
        "Is the server running on that host and accepting TCP/IP connections?"]


def test_db_path_of_a_hub_hides_the_password():
    proc = tm("--db", f"postgresql://u:{SECRET}@127.0.0.1:1/x", "db", "path")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "postgresql://u:***@127.0.0.1:1/x\n", "")
    proc = tm("--db", f"postgresql://u@127.0.0.1:1/x?sslmode=disable&password={SECRET}", "db", "path")
    assert (proc.returncode, proc.stdout) == (0, "postgresql://u@127.0.0.1:1/x?sslmode=disable&password=***\n")


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{password}@{host}"))


def test_a_successful_push_shows_the_hub_without_its_password(pg_url, tmp_path):
    if not pg_url.startswith("postgresql://"):
        pytest.skip("TOKENMETER_TEST_PG is not a URL")
    local = tmp_path / "local.db"
    write_bulk(local, 10)
    url = _with_password(pg_url, SECRET)
    shown = url.replace(f":{SECRET}@", ":***@")
    proc = tm("--db", str(local), "db", "push", url, "-f", "json")
    assert SECRET not in proc.stdout + proc.stderr
    if proc.returncode != 0:  # a server that checks passwords: the error is what must hide it
        assert proc.returncode == 4 and "***" in proc.stderr
        pytest.skip("the test server checks passwords; the error path was checked instead")
    assert json.loads(proc.stdout)["hub"] == shown
    local2 = tmp_path / "local2.db"
    write_bulk(local2, 5, account="acct-2")
    proc = tm("--db", str(local2), "db", "push", url)
    assert proc.returncode == 0 and SECRET not in proc.stdout + proc.stderr
    assert f"to {shown} as " in proc.stdout


@pytest.mark.parametrize("how", ["copy", "restore"])
def test_a_copied_or_restored_database_pushes_its_own_rows(tmp_path, pg_url, how):
    """A copy of a database file, or a backup restored over it, is a new file: its first push must
    not trust the watermark the original left on the hub (that would skip its rows for good)."""
    x, y = tmp_path / "x.db", tmp_path / "y.db"
    day = [date(2026, 3, 2)]
    write_records(x, machine_records("acct-x", day, ["qwen-plus"], 10, seed=1))
    assert tm_json("--db", str(x), "db", "push", pg_url, "-f", "json")["rows"] == 10
    if how == "copy":
        y.write_bytes(x.read_bytes())  # a new machine set up from x's file
        write_records(x, machine_records("acct-x", [date(2026, 3, 3)], ["qwen-plus"], 10, seed=2))
        assert tm_json("--db", str(x), "db", "push", pg_url, "-f", "json")["rows"] == 10
        write_records(y, machine_records("acct-y", [date(2026, 3, 4)], ["qwen-max"], 5, seed=3))
    else:
        backup = x.read_bytes()
        write_records(x, machine_records("acct-x", [date(2026, 3, 3)], ["qwen-plus"], 10, seed=2))
        assert tm_json("--db", str(x), "db", "push", pg_url, "-f", "json")["rows"] == 10
        x.unlink()
        y.write_bytes(backup)  # restored (as a new file, as restores are)
        write_records(y, machine_records("acct-y", [date(2026, 3, 4)], ["qwen-max"], 6, seed=3))
    pushed = tm_json("--db", str(y), "db", "push", pg_url, "-f", "json")
    assert local_ids(y) <= {r[0] for r in hub_query(pg_url, "SELECT id FROM usage")}
    assert pushed["new"] == (5 if how == "copy" else 6) and hub_duplicate_ids(pg_url) == []
    assert tm_json("--db", str(y), "db", "push", pg_url, "-f", "json")["rows"] == 0


def test_a_large_push_shows_a_progress_bar_on_a_terminal(monkeypatch):
    import io

    from tokenmeter.cli.db import _ProgressBar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    small = _ProgressBar()
    small.update(100, 1_000)  # a small push: no bar
    small.close()
    assert err.getvalue() == ""
    bar = _ProgressBar()
    for done in (20_000, 40_000, 60_000):
        bar.update(done, 60_000)
    bar.close()
    assert "Pushing" in err.getvalue() and "100%" in err.getvalue()
