"""Fill a database with N synthetic usage records and time one-month reports.

    python benchmarks/bench_report.py                  # 5,000,000 records in /tmp/tokenmeter-bench.db
    python benchmarks/bench_report.py -n 1000000 --db /tmp/x.db --reuse
    python benchmarks/bench_report.py --db 'postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_x'

Per-request log records are spread evenly over the 12 months before the fixed "now" in work
sessions (20 projects, 8 models, 3 machines, two log sources), plus daily ledger buckets
(OpenRouter all year, a QwenCloud bill for the first half year, which the report uses instead of
the qwen logs for those days). About 1/12 of the records fall in the reported month. Prints the
timing of each report (best of 3) and the row counts; ``--by session`` reads the month's rows, not
the rollup.

``--db`` may be a SQLite file or a hub's ``postgresql://`` URL. On a hub the schema named first in
the URL's ``search_path`` is created when missing, and the fill COPYs the rows straight into the
empty ``usage`` table (``--pg-fill upsert`` writes them the way a push does instead: COPY into a
stage table, then the upsert, 20,000 rows per transaction), then marks every bucket dirty,
rebuilds the rollup and runs VACUUM ANALYZE. Target (issue): a month report over 5M stored
records in at most 0.5 s on both engines.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tokenmeter.periods import resolve_period
from tokenmeter.reports import Filters, usage_report
from tokenmeter.store import USAGE_COLUMNS, is_url, open_store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MODELS = [
    "qwen3-coder-plus", "qwen3-coder-flash", "qwen-plus", "qwen-max", "qwen-turbo", "qwen-flash",
    "qwen3.5-plus", "qwq-plus", "deepseek-v3.1", "claude-sonnet-4", "gpt-5-mini", "Qwen3-32B",
]
PROVIDERS = ["qwen", "qwen-singapore", "openrouter", "huawei-maas"]
SOURCES = [("qwen-code", "log"), ("dashscope-log", "log"), ("openrouter", "ledger")]
MACHINES = ["ana-laptop", "ben-desktop", "ci-runner"]  # log rows: the machine of their session
LEDGER_MACHINE = MACHINES[0]  # the billing accounts are fetched on one machine
PG_BATCH = 20_000  # rows per transaction for --pg-fill upsert (= push.PUSH_BATCH)
REPORT_TARGET = 0.5  # seconds, for the month report over 5M stored records
_COLS = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)
_START_TS = USAGE_COLUMNS.index("start_ts")


def rows(n: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """Per-request log records in work sessions (one project, model and machine at a time, as
    people work), then daily ledger buckets per model from two billing sources; ``USAGE_COLUMNS``
    order."""
    rng = random.Random(seed)
    end = int(NOW.timestamp())
    start = end - 365 * 86400
    step = (end - start) / n
    count = 0

    def row(src, kind, provider, model, project, ts, end_ts, requests, inp, out, cost, est, session=None,
            machine=LEDGER_MACHINE):
        nonlocal count
        count += 1
        iso = datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
        iso_end = iso if end_ts == ts else datetime.fromtimestamp(end_ts, UTC).isoformat().replace("+00:00", "Z")
        rid = hashlib.blake2b(f"{src}{ts}{count}{rng.random()}".encode(), digest_size=16).hexdigest()
        return (
            rid, src, kind, "bench", rid, provider, model, project, session, None, machine,
            iso, iso_end, ts, end_ts,
            requests, 0, inp, out, inp and inp // 3, None, out and out // 4, inp and inp + out,
            cost, "USD" if cost is not None else None, "billed" if cost is not None else None,
            est, "USD" if est is not None else None, "bench" if est is not None else None, "{}", "h", iso,
        )

    i = 0
    session_left = 0
    while i < n:
        if session_left <= 0:  # a new work session
            session_left = rng.randrange(20, 400)
            src, provider = rng.choice([("qwen-code", "qwen"), ("dashscope-log", "qwen-singapore")])
            model = rng.choice(MODELS[:8])
            project = f"/home/u/p{rng.randrange(20)}"
            machine = rng.choice(MACHINES)
            session = f"s{i}"
        ts = int(start + i * step)
        inp, out = rng.randrange(500, 120_000), rng.randrange(10, 4000)
        est = inp * 400 + out * 1200 if model != "qwq-plus" else None
        yield row(src, "log", provider, model, project, ts, ts, 1, inp, out, None, est, session, machine)
        session_left -= 1
        i += 1
    day = start - start % 86400
    while day < end:
        for model in MODELS[8:]:
            yield row("openrouter", "ledger", "openrouter", model, None, day, day + 86400, 40, 900_000, 30_000,
                      rng.randrange(10**8, 10**10), None)
        if day < start + 180 * 86400:  # a QwenCloud bill for the first half year only
            for model in MODELS[:4]:
                yield row("qwencloud", "ledger", "qwen", model, None, day, day + 86400, 300, None, None,
                          rng.randrange(10**8, 10**10), None)
        day += 86400


def fill(store: Any, n: int, seed: int = 7, *, pg_fill: str = "copy") -> None:
    """``n`` log records and the ledger rows (see ``rows``) into an empty ``store`` (a SQLite file
    or a hub), then the rollup and the planner statistics."""
    t = time.perf_counter()
    if is_url(store.path):
        _fill_pg(store, n, seed, pg_fill)
    else:
        _fill_sqlite(store, n, seed)
    print(f"wrote {n:,} records (+ ledger rows) in {time.perf_counter() - t:.1f}s")
    store.mark_all_dirty()
    t = time.perf_counter()
    buckets = store.refresh_rollup()
    print(f"built the 15-minute rollup ({buckets:,} buckets) in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    if is_url(store.path):
        # VACUUM as well: sets the visibility map and hint bits, as autovacuum would on a live hub
        store.conn.execute("VACUUM ANALYZE usage")
        store.conn.execute("VACUUM ANALYZE usage_rollup")
        store.conn.execute("VACUUM ANALYZE rollup_dirty")
    else:
        store.conn.execute("ANALYZE")
    print(f"analyzed in {time.perf_counter() - t:.1f}s")


def _fill_sqlite(store: Any, n: int, seed: int) -> None:
    sql = f"INSERT INTO usage ({_COLS}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    buckets: set[int] = set()
    store.conn.execute("BEGIN")
    for r in rows(n, seed):
        batch.append(r)
        if len(batch) >= 50_000:
            store.conn.executemany(sql, batch)
            buckets.update(b[_START_TS] - b[_START_TS] % 900 for b in batch)
            batch.clear()
    if batch:
        store.conn.executemany(sql, batch)
        buckets.update(b[_START_TS] - b[_START_TS] % 900 for b in batch)
    # what every insert does: mark its buckets for the rollup and for `db push` (usage_changes)
    store._mark_inserted(buckets)
    store.conn.execute("COMMIT")


def _fill_pg(store: Any, n: int, seed: int, how: str) -> None:
    raw = store.conn.raw
    if how == "upsert":  # the path of a push: stage table + upsert, PG_BATCH rows a transaction
        from tokenmeter.store.common import _tx
        from tokenmeter.store.pg_write import PUSH_RULE, upsert_rows

        batch: list[tuple[Any, ...]] = []
        done, t = 0, time.perf_counter()
        for r in rows(n, seed):
            batch.append(r)
            if len(batch) >= PG_BATCH:
                with _tx(store):
                    upsert_rows(store, batch, PUSH_RULE)
                done += len(batch)
                batch = []
                if done % 500_000 == 0:
                    print(f"  {done:,} rows, {done / (time.perf_counter() - t):,.0f} rows/s", flush=True)
        if batch:
            with _tx(store):
                upsert_rows(store, batch, PUSH_RULE)
        return
    # a benchmark fill: COPY straight into the empty table. The hub's statement triggers would keep
    # every row in a transition table to mark its bucket; mark_all_dirty() does that in one go
    # instead (session_replication_role needs a superuser; without it the triggers just run).
    with raw.transaction():
        try:
            with raw.transaction():
                raw.execute("SET LOCAL session_replication_role = replica")
        except Exception as exc:  # not a superuser
            print(f"  (triggers stay on: {str(exc).strip().splitlines()[0]})")
        with raw.cursor().copy(f"COPY usage ({_COLS}) FROM STDIN") as copy:
            for r in rows(n, seed):
                copy.write_row(r)


def _size(store: Any) -> str:
    if is_url(store.path):
        (size,) = store.conn.execute(
            "SELECT pg_total_relation_size('usage') + pg_total_relation_size('usage_rollup')").fetchone()
        return f"{size / 1e6:.0f} MB in usage + usage_rollup"
    return f"{os.path.getsize(store.path) / 1e6:.0f} MB"


def ensure_schema(url: str) -> str | None:
    """Create the schema named first in the URL's search_path (``options=-csearch_path=…``) if
    missing; returns its name (None when the URL names none)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        (path,) = conn.execute("SHOW search_path").fetchone()
        first = path.split(",")[0].strip().strip('"')
        if not first or first.startswith("$") or first == "public":
            return None
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{first}"')
        return first


def open_bench_store(db: str, *, reuse: bool) -> Any:
    """The store at ``db``, emptied unless ``reuse``."""
    if is_url(db):
        ensure_schema(db)
        store = open_store(db)
        if not reuse:
            store.conn.execute("TRUNCATE usage, usage_rollup, rollup_dirty, hub_pushes")
        return store
    if not reuse:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
    return open_store(db)


def best_of(fn, times: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(times):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def month_period():
    return resolve_period(NOW, ZoneInfo("Europe/Berlin"), preset="month")


def time_reports(store: Any, stored: int | None = None) -> dict[str, float]:
    """Print the one-month report timings (best of 3); returns them in seconds by grouping."""
    period = month_period()
    in_month = store.conn.execute(
        "SELECT COUNT(*) FROM usage WHERE start_ts >= ? AND start_ts < ?", period.bounds()
    ).fetchone()[0]
    engine = "PostgreSQL" if is_url(store.path) else "SQLite"
    if stored is None:
        stored = store.conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
    print(f"[{engine}] {stored:,} stored records; in the reported month "
          f"({period.start}..{period.end}, Europe/Berlin): {in_month:,}")
    out: dict[str, float] = {}
    # --by session reads the month's usage rows (the rollup has no session column)
    for by in (["model"], ["day"], ["day", "model"], ["provider", "source"], ["machine"], ["session"]):
        secs, report = best_of(lambda by=by: usage_report(store, period, by=by))
        out[",".join(by)] = secs
        print(f"one-month report --by {','.join(by):<14} {secs * 1000:7.1f} ms  ({len(report.rows)} rows)")
    secs, report = best_of(lambda: usage_report(store, period, by=["day"], filters=Filters(model="coder")))
    out["day --model coder"] = secs
    print(f"one-month report --by day --model coder {secs * 1000:7.1f} ms  ({len(report.rows)} rows)")
    rollup = [s for k, s in out.items() if k != "session"]
    worst = max(rollup)
    verdict = "ok" if worst <= REPORT_TARGET else "OVER TARGET"
    print(f"[{engine}] slowest rollup report {worst * 1000:.1f} ms (target <= {REPORT_TARGET * 1000:.0f} ms "
          f"over 5M records): {verdict}; --by session (row scan) {out['session'] * 1000:.1f} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5_000_000, help="number of log records (default 5,000,000)")
    ap.add_argument("--db", default="/tmp/tokenmeter-bench.db",
                    help="a SQLite file, or a hub's postgresql:// URL (its search_path schema is created)")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing database of the right size")
    ap.add_argument("--pg-fill", choices=("copy", "upsert"), default="copy",
                    help="hub fill: COPY into usage (default), or stage + upsert batches as a push writes")
    args = ap.parse_args()

    store = open_bench_store(args.db, reuse=args.reuse)
    have = store.conn.execute("SELECT COUNT(*) FROM usage WHERE kind = 'log'").fetchone()[0]
    if have != args.n:
        if have:
            if is_url(args.db):
                store.conn.execute("TRUNCATE usage, usage_rollup, rollup_dirty, hub_pushes")
            else:
                store.conn.execute("DELETE FROM usage")
        t = time.perf_counter()
        fill(store, args.n, pg_fill=args.pg_fill)
        print(f"filled {args.n:,} records in {time.perf_counter() - t:.1f}s ({_size(store)})")
    else:
        stale = store.refresh_rollup()  # e.g. bench_hub re-estimated a week of this file
        print(f"reusing {have:,} records ({_size(store)})" + (f"; refreshed {stale:,} rollup buckets" if stale else ""))
    time_reports(store)
    store.close()


if __name__ == "__main__":
    main()
