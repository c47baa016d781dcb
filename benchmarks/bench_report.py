"""Fill a database with N synthetic usage records and time one-month reports.

    python benchmarks/bench_report.py                  # 5,000,000 records in /tmp/tokenmeter-bench.db
    python benchmarks/bench_report.py -n 1000000 --db /tmp/x.db --reuse

Per-request log records are spread evenly over the 12 months before the fixed "now" in work
sessions (20 projects, 8 models, two log sources), plus daily ledger buckets (OpenRouter all
year, a QwenCloud bill for the first half year, which the report uses instead of the qwen logs
for those days). About 1/12 of the records fall in the reported month. Prints the timing of
each report (best of 3) and the row counts; ``--by session`` reads the month's rows, not the rollup.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tokenmeter.periods import resolve_period
from tokenmeter.reports import Filters, usage_report
from tokenmeter.store import USAGE_COLUMNS, Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MODELS = [
    "qwen3-coder-plus", "qwen3-coder-flash", "qwen-plus", "qwen-max", "qwen-turbo", "qwen-flash",
    "qwen3.5-plus", "qwq-plus", "deepseek-v3.1", "claude-sonnet-4", "gpt-5-mini", "Qwen3-32B",
]
PROVIDERS = ["qwen", "qwen-singapore", "openrouter", "huawei-maas"]
SOURCES = [("qwen-code", "log"), ("dashscope-log", "log"), ("openrouter", "ledger")]


def fill(store: Store, n: int, seed: int = 7) -> None:
    """Per-request log records in work sessions (one project and model at a time, as people work),
    plus daily ledger buckets per model from two billing sources."""
    rng = random.Random(seed)
    end = int(NOW.timestamp())
    start = end - 365 * 86400
    step = (end - start) / n
    cols = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)
    sql = f"INSERT INTO usage ({cols}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
    batch: list[tuple] = []

    def add(src, kind, provider, model, project, ts, end_ts, requests, inp, out, cost, est, session=None):
        iso = datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
        iso_end = datetime.fromtimestamp(end_ts, UTC).isoformat().replace("+00:00", "Z")
        rid = hashlib.blake2b(f"{src}{ts}{len(batch)}{rng.random()}".encode(), digest_size=16).hexdigest()
        batch.append((
            rid, src, kind, "bench", rid, provider, model, project, session, None, iso, iso_end, ts, end_ts,
            requests, 0, inp, out, inp and inp // 3, None, out and out // 4, inp and inp + out,
            cost, "USD" if cost is not None else None, "billed" if cost is not None else None,
            est, "USD" if est is not None else None, "bench" if est is not None else None, "{}", "h", iso,
        ))
        if len(batch) >= 50_000:
            store.conn.executemany(sql, batch)
            batch.clear()

    store.conn.execute("BEGIN")
    i = 0
    session_left = 0
    while i < n:
        if session_left <= 0:  # a new work session
            session_left = rng.randrange(20, 400)
            src, provider = rng.choice([("qwen-code", "qwen"), ("dashscope-log", "qwen-singapore")])
            model = rng.choice(MODELS[:8])
            project = f"/home/u/p{rng.randrange(20)}"
            session = f"s{i}"
        ts = int(start + i * step)
        inp, out = rng.randrange(500, 120_000), rng.randrange(10, 4000)
        est = inp * 400 + out * 1200 if model != "qwq-plus" else None
        add(src, "log", provider, model, project, ts, ts, 1, inp, out, None, est, session)
        session_left -= 1
        i += 1
    day = start - start % 86400
    while day < end:
        for model in MODELS[8:]:
            add("openrouter", "ledger", "openrouter", model, None, day, day + 86400, 40, 900_000, 30_000,
                rng.randrange(10**8, 10**10), None)
        if day < start + 180 * 86400:  # a QwenCloud bill for the first half year only
            for model in MODELS[:4]:
                add("qwencloud", "ledger", "qwen", model, None, day, day + 86400, 300, None, None,
                    rng.randrange(10**8, 10**10), None)
        day += 86400
    if batch:
        store.conn.executemany(sql, batch)
    store.conn.execute("COMMIT")
    store.mark_all_dirty()
    t = time.perf_counter()
    buckets = store.refresh_rollup()
    print(f"built the 15-minute rollup ({buckets:,} buckets) in {time.perf_counter() - t:.1f}s")
    store.conn.execute("ANALYZE")


def best_of(fn, times: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(times):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5_000_000, help="number of records (default 5,000,000)")
    ap.add_argument("--db", default="/tmp/tokenmeter-bench.db")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing database of the right size")
    args = ap.parse_args()

    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(args.db + suffix):
                os.remove(args.db + suffix)
    store = Store.open(args.db)
    have = store.conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
    if have != args.n:
        store.conn.execute("DELETE FROM usage")
        t = time.perf_counter()
        fill(store, args.n)
        print(f"filled {args.n:,} records in {time.perf_counter() - t:.1f}s "
              f"({os.path.getsize(args.db) / 1e6:.0f} MB)")
    period = resolve_period(NOW, ZoneInfo("Europe/Berlin"), preset="month")
    in_month = store.conn.execute(
        "SELECT COUNT(*) FROM usage WHERE start_ts >= ? AND start_ts < ?", period.bounds()
    ).fetchone()[0]
    print(f"records in the reported month ({period.start}..{period.end}, Europe/Berlin): {in_month:,}")
    # --by session reads the month's usage rows (the rollup has no session column)
    for by in (["model"], ["day"], ["day", "model"], ["provider", "source"], ["session"]):
        secs, report = best_of(lambda by=by: usage_report(store, period, by=by))
        print(f"one-month report --by {','.join(by):<14} {secs * 1000:7.1f} ms  ({len(report.rows)} rows)")
    secs, report = best_of(lambda: usage_report(store, period, by=["day"], filters=Filters(model="coder")))
    print(f"one-month report --by day --model coder {secs * 1000:7.1f} ms  ({len(report.rows)} rows)")
    store.close()


if __name__ == "__main__":
    main()
