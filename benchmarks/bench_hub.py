"""Time `db push` into an empty team hub (PostgreSQL), the no-op push after it, and optionally the
hub's month report.

    python benchmarks/bench_hub.py                        # push 1,000,000 records
    python benchmarks/bench_hub.py -n 5000000 --report    # push 5M, then the one-month reports
    python benchmarks/bench_hub.py --url postgresql://postgres@127.0.0.1:5432/test --schema tm_bench_hub --keep

Builds a local SQLite database of N synthetic log records (bench_report's data set: work sessions on
3 machines, plus ~4,400 daily ledger rows), kept in --local for ``--reuse-local``; creates an empty
hub in its own schema (dropped at the end unless --keep) and pushes into it with
``tokenmeter.store.push.push``. Prints the push rate (target: at least 20,000 rows/s), the part of
it spent refreshing the hub's rollup, the time of a push with nothing to send (best of 3), and of a small
incremental push (a week of rows re-estimated). ``--profile`` prints a cProfile of the first push.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_report import NOW, fill, month_period, time_reports  # noqa: E402

from tokenmeter.reports import usage_report  # noqa: E402
from tokenmeter.store import open_store  # noqa: E402
from tokenmeter.store.push import PUSH_BATCH, push  # noqa: E402

PUSH_TARGET = 20_000  # rows/s
MACHINE = "bench-pusher"  # names only rows without a machine (the data set names all of them)


def hub_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}', safe='')}"


def reset_schema(base: str, schema: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if not drop_only:
            conn.execute(f'CREATE SCHEMA "{schema}"')


def local_store(path: str, n: int, *, reuse: bool) -> Any:
    if reuse and os.path.exists(path):
        store = open_store(path)
        have = store.conn.execute("SELECT COUNT(*) FROM usage WHERE kind = 'log'").fetchone()[0]
        if have == n:
            print(f"reusing the local database {path} ({have:,} log records)")
            return store
        store.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    store = open_store(path)
    t = time.perf_counter()
    fill(store, n)
    print(f"local database {path}: {n:,} log records in {time.perf_counter() - t:.1f}s "
          f"({os.path.getsize(path) / 1e6:.0f} MB)")
    return store


def timed_push(local: Any, hub: Any, label: str, *, progress: bool = False, profile: bool = False) -> Any:
    """Push, printing the rate and how much of it the final rollup refresh took."""
    refresh = {"seconds": 0.0, "buckets": 0}
    original = hub.refresh_rollup

    def timed_refresh() -> int:
        t = time.perf_counter()
        refresh["buckets"] = original()
        refresh["seconds"] = time.perf_counter() - t
        return refresh["buckets"]

    hub.refresh_rollup = timed_refresh
    started = time.perf_counter()
    last = [0]

    def on_progress(done: int, total: int) -> None:
        if progress and (done - last[0] >= 200_000 or done == total):
            last[0] = done
            secs = time.perf_counter() - started
            print(f"  {done:>10,} / {total:,} rows sent, {secs:6.1f}s, {done / secs:,.0f} rows/s", flush=True)

    prof = cProfile.Profile() if profile else None
    try:
        if prof is not None:
            prof.enable()
        result = push(local, hub, machine=MACHINE, on_progress=on_progress)
    finally:
        if prof is not None:
            prof.disable()
        del hub.refresh_rollup
    secs = time.perf_counter() - started
    rate = result.rows / secs if secs else 0.0
    print(f"{label}: {result.rows:,} rows ({result.new:,} new, {result.updated:,} updated) in {secs:.2f} s"
          + (f" = {rate:,.0f} rows/s" if result.rows else "")
          + f"; of which the hub rollup refresh ({refresh['buckets']:,} buckets) {refresh['seconds']:.2f} s")
    if prof is not None:
        print("cProfile of the push (top 25 by internal time):")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    result.wall = secs
    return result


def check_same(local: Any, hub: Any) -> None:
    """The hub holds what the local database holds, and reports the same month."""
    a = local.conn.execute("SELECT COUNT(*), SUM(input_tokens), SUM(est_cost_nanos) FROM usage").fetchone()
    b = hub.conn.execute("SELECT COUNT(*), SUM(input_tokens), SUM(est_cost_nanos) FROM usage").fetchone()
    period = month_period()
    local.refresh_rollup()
    same = all(usage_report(local, period, by=by).rows == usage_report(hub, period, by=by).rows
               for by in (["model"], ["day", "machine"]))
    print(f"check: local {a[0]:,} rows, hub {b[0]:,} rows; sums {'equal' if tuple(a) == tuple(b) else 'DIFFER'}; "
          f"month reports {'equal' if same else 'DIFFER'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="log records to push (default 1,000,000)")
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test",
                    help="the PostgreSQL database to benchmark in (a schema of its own is created there)")
    ap.add_argument("--schema", default="tm_bench_hub", help="the hub's schema (dropped and recreated)")
    ap.add_argument("--local", default="/tmp/tokenmeter-bench-push.db", help="the local SQLite database")
    ap.add_argument("--reuse-local", action="store_true", help="reuse --local if it holds N log records")
    ap.add_argument("--report", action="store_true", help="time the one-month reports on the hub after the push")
    ap.add_argument("--profile", action="store_true", help="cProfile the first push")
    ap.add_argument("--keep", action="store_true", help="keep the hub schema")
    args = ap.parse_args()

    local = local_store(args.local, args.n, reuse=args.reuse_local)
    reset_schema(args.url, args.schema)
    url = hub_url(args.url, args.schema)
    try:
        t = time.perf_counter()
        hub = open_store(url)
        print(f"empty hub in schema {args.schema}: migrated in {time.perf_counter() - t:.2f}s; "
              f"pushing in batches of {PUSH_BATCH:,} rows")
        try:
            first = timed_push(local, hub, "first push", progress=True, profile=args.profile)
            rate = first.rows / first.wall
            print(f"push {first.rows:,} rows: {first.wall:.1f} s = {rate:,.0f} rows/s "
                  f"(target >= {PUSH_TARGET:,}): {'ok' if rate >= PUSH_TARGET else 'BELOW TARGET'}")
            check_same(local, hub)
            walls = [timed_push(local, hub, f"push again #{i} (nothing changed)").wall for i in (1, 2, 3)]
            print(f"no-op push: {min(walls) * 1000:.0f} ms (best of 3)")
            # an incremental push: a price change re-estimates the last week's records
            week = int(NOW.timestamp()) - 7 * 86400
            local.conn.execute("UPDATE usage SET est_cost_nanos = est_cost_nanos + 1 "
                               "WHERE start_ts >= ? AND est_cost_nanos IS NOT NULL", (week,))
            timed_push(local, hub, "incremental push (a week re-estimated)")
            check_same(local, hub)
            if args.report:
                print("one-month reports on the hub right after the push (no manual ANALYZE):")
                time_reports(hub)
                t = time.perf_counter()
                hub.conn.execute("VACUUM ANALYZE usage")
                hub.conn.execute("VACUUM ANALYZE usage_rollup")
                print(f"after VACUUM ANALYZE ({time.perf_counter() - t:.1f}s):")
                time_reports(hub)
        finally:
            hub.close()
    finally:
        local.close()
        if args.keep:
            print(f"kept the hub: {url}")
        else:
            reset_schema(args.url, args.schema, drop_only=True)
            print(f"dropped schema {args.schema}")


if __name__ == "__main__":
    main()
