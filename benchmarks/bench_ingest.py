"""Benchmark log ingest: cold ingest, warm run with nothing new, incremental run after 1 % appended,
peak RSS. Each phase runs in a fresh process so its peak RSS is its own.

    python benchmarks/bench_ingest.py --lines 1000000 --dir /tmp/tm-bench
    python benchmarks/bench_ingest.py --lines 200000 --dir /tmp/tm-bench --tsv-lines 1000000

The tree is generated once per (lines, seed) under --dir and its page cache warmed before timing.
``ingest()`` below is the one place that talks to tokenmeter: by default the real host (store,
pricing, cursor: what ``tokenmeter fetch`` does); ``--no-db`` runs the source alone (records are
built and validated, then dropped) to separate parsing from database cost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def ingest(db_path: str, roots: list[str], *, source: str = "qwen-code", host: bool = True) -> dict[str, Any]:
    """Ingest ``roots`` into ``db_path``; return {"records", "skipped"} (records seen this run).

    ``host=True``: through the real host (``tokenmeter.fetch.run_one`` with the store and the
    pricer, as ``tokenmeter fetch`` does). ``host=False``: the source alone, no database: records
    are built and validated, then dropped; the cursor is kept in ``<db_path>.cursor.json``.
    """
    from tokenmeter_plugins.dashscope_log import DashscopeLogSource, QwenCodeSource

    from tokenmeter import Cursor, UsageRecord, Window
    from tokenmeter.testing import fake_context

    cls: Any = QwenCodeSource if source == "qwen-code" else DashscopeLogSource
    table = {"roots": roots} if source == "qwen-code" else {"paths": roots}
    ctx = fake_context(cls.id)
    if host:
        from tokenmeter.fetch import make_pricer, run_one
        from tokenmeter.store import Store

        store = Store.open(db_path)
        try:
            res = run_one(store, cls, table, ctx=ctx, pricer=make_pricer(None))
        finally:
            store.close()
        if res.status != "ok":
            raise SystemExit(f"ingest failed: {res.message}")
        return {"records": res.new + res.updated + res.unchanged, "skipped": res.skipped_lines}
    cursor_file = Path(db_path + ".cursor.json")
    cursor = json.loads(cursor_file.read_text()) if cursor_file.exists() else {}
    records = 0
    state = None
    for item in cls(cls.Settings(**table), ctx).fetch(Window(None, ctx.now()), cursor):
        if isinstance(item, UsageRecord):
            records += 1
        elif isinstance(item, Cursor):
            state = json.dumps(item.state)  # what the host would commit at the checkpoint
    if state is not None:
        cursor_file.write_text(state)
    return {"records": records, "skipped": ctx.skipped}


def _phase(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    out = ingest(args.db, args.roots, source=args.source, host=not args.no_db)
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.update(
        wall=round(time.perf_counter() - t0, 3),
        cpu=round(c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime, 3),
        workers_cpu=round(ch.ru_utime + ch.ru_stime, 3),
        rss_mb=round(c1.ru_maxrss / 1024, 1),
        workers_rss_mb=round(ch.ru_maxrss / 1024, 1),
    )
    print(json.dumps(out))


def _run_phase(db: str, roots: list[str], source: str, no_db: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", "--db", db, "--source", source, "--roots", *roots]
    if no_db:
        cmd.append("--no-db")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _warm_cache(root: Path) -> int:
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                while chunk := f.read(8 << 20):
                    n += len(chunk)
    return n


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _append_one_percent(tree: Path, lines: int, seed: int) -> int:
    """Append ~1 % new lines: new calls appended to existing session files. Returns new API calls.

    The extra tree has no archived sessions (only chats/*.jsonl is appended) and no truncated
    line; files whose last line is unterminated (the tree's truncated line) are not appended to.
    """
    extra = tree.parent / (tree.name + "-extra")
    shutil.rmtree(extra, ignore_errors=True)
    subprocess.run([sys.executable, str(HERE / "gen_logs.py"), "qwen-code", "--lines", str(max(lines // 100, 50)),
                    "--seed", str(seed + 1), "--out", str(extra), "--archive-rate", "0", "--no-truncated",
                    "--fork-rate", "0"],  # a fork is a new file, never appended to another session
                   check=True, capture_output=True)
    res = json.loads((extra / "expected.json").read_text())
    targets = [p for p in sorted(tree.glob("projects/*/chats/*.jsonl")) if _ends_with_newline(p)]
    for i, src in enumerate(sorted(extra.glob("projects/*/chats/*.jsonl"))):
        with open(targets[(i * 7919) % len(targets)], "ab") as f:
            f.write(src.read_bytes())
    shutil.rmtree(extra)
    return int(res["totals"]["requests"])


def _generator_version() -> int | None:
    """The version gen_logs.py writes: a tree from another version is regenerated."""
    m = re.search(r"^GENERATOR_VERSION = (\d+)$", (HERE / "gen_logs.py").read_text(), re.M)
    return int(m[1]) if m else None


def _line(name: str, r: dict[str, Any]) -> str:
    return (f"{name:<22} {r['wall']:>7.2f} s wall {r['cpu']:>7.2f} s cpu (+{r['workers_cpu']:.2f} s in workers)"
            f"  rss {r['rss_mb']:>6.1f} MB (workers {r['workers_rss_mb']:.1f} MB)  records {r['records']}")


def _check(name: str, got: int, want: int, allow_mismatch: bool) -> None:
    if got == want:
        return
    msg = f"{name}: {got} records, expected {want} distinct API calls"
    if not allow_mismatch:
        raise SystemExit(msg + " (--allow-mismatch to time it anyway)")
    print("MISMATCH", msg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="benchmark log ingest")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default="/tmp/tokenmeter-bench")
    ap.add_argument("--tsv-lines", type=int, default=0, help="also benchmark a TSV log of this many rows")
    ap.add_argument("--no-db", action="store_true", help="run the sources alone, without the host and database")
    ap.add_argument("--allow-mismatch", action="store_true",
                    help="report, do not stop at, a record count that differs from the tree's expected.json")
    ap.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--source", default="qwen-code", help=argparse.SUPPRESS)
    ap.add_argument("--roots", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        _phase(args)
        return 0

    base = Path(args.dir)
    tree = base / f"qwen-{args.lines}-{args.seed}"
    exp_file = tree / "expected.json"
    if not exp_file.exists() or json.loads(exp_file.read_text()).get("generator_version") != _generator_version():
        shutil.rmtree(tree, ignore_errors=True)
        # in a child process: Linux keeps a process's peak RSS across fork+exec, so the parent
        # must stay small for the phases' figures to be their own
        subprocess.run([sys.executable, str(HERE / "gen_logs.py"), "qwen-code", "--lines", str(args.lines),
                        "--seed", str(args.seed), "--out", str(tree)], check=True)
    # the benchmark appends to the tree: work on a copy so the generated tree stays reusable
    work = base / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(tree, work)
    expected = json.loads((tree / "expected.json").read_text())
    size = _warm_cache(work)
    db = str(base / "bench.db")
    for p in Path(base).glob("bench.db*"):
        p.unlink()
    print("mode:", "sources only, no database (--no-db)" if args.no_db else "real host: store + pricing")
    print(f"Qwen Code tree: {expected['stats']['lines']} lines, {size / 1e9:.2f} GB, "
          f"{expected['stats']['files']} files, {expected['totals']['requests']} API calls "
          f"(cpus: {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f})")
    cold = _run_phase(db, [str(work)], "qwen-code", args.no_db)
    print(_line("cold ingest", cold))
    _check("cold ingest", cold["records"], expected["totals"]["requests"], args.allow_mismatch)
    warm = _run_phase(db, [str(work)], "qwen-code", args.no_db)
    print(_line("warm, nothing new", warm))
    new_calls = _append_one_percent(work, args.lines, args.seed)
    _warm_cache(work)
    inc = _run_phase(db, [str(work)], "qwen-code", args.no_db)
    print(_line("incremental +1 %", inc))
    _check("incremental +1 %", inc["records"], new_calls, args.allow_mismatch)
    shutil.rmtree(work)

    if args.tsv_lines:
        tsv = base / f"usage-{args.tsv_lines}.tsv"
        if not tsv.exists():
            subprocess.run([sys.executable, str(HERE / "gen_logs.py"), "tsv", "--lines", str(args.tsv_lines),
                            "--seed", str(args.seed), "--out", str(tsv)], check=True)
        _warm_cache(tsv.parent)
        tdb = str(base / "bench-tsv.db")
        for p in Path(base).glob("bench-tsv.db*"):
            p.unlink()
        print(f"TSV log: {args.tsv_lines} rows, {tsv.stat().st_size / 1e6:.0f} MB")
        print(_line("tsv cold ingest", _run_phase(tdb, [str(tsv)], "tsv", args.no_db)))
        print(_line("tsv warm", _run_phase(tdb, [str(tsv)], "tsv", args.no_db)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
