"""Incremental, streaming reader for append-only log files (shared by both sources).

The cursor keeps one entry per file::

    {"v": 1, "files": {"/abs/path": {"dev", "ino", "size", "mtime", "offset", "hlen", "head", "state"}}}

``offset`` is the byte position after the last complete line consumed; ``head`` is a hash of the
first ``hlen`` bytes (at most 1 KiB). On the next run a file is

- skipped without opening it when identity, size and mtime are unchanged (warm runs are stat-only);
- continued from ``offset`` when its identity (device + inode) matches and its first ``hlen`` bytes
  still hash to ``head``; a file renamed by rotation is recognised by identity under its new name;
- re-read from 0 when it is new, truncated (size < offset) or replaced (identity or head changed).
  Re-reading is safe because record keys are derived from content, so the store replaces rows.

A last line without its newline is handed to the parser as a *tail* (it may yield records whose keys
stay stable when the line is completed) but the offset stops before it, so the next run reads it
again. Files that vanished are dropped from the cursor. Reads are big binary blocks that end at a
line boundary, so memory stays flat whatever the file size; a "line" longer than ``MAX_LINE`` (garbage
without newlines) is skipped and counted without being buffered.

Checkpoints (records + cursor committed together) land every ``CHECKPOINT_RECORDS`` records,
``CHECKPOINT_SECONDS`` of wall time or ``CHECKPOINT_BYTES``, whichever comes first, also inside one
big file: a run killed by a timeout keeps what it read up to its last checkpoint.

A file or folder the user cannot read is never skipped in silence: ``expand_paths`` returns it as an
``Unreadable`` path, ``ingest`` reads every other file, commits them, then raises ``SourceDataError``
naming the first such path (a permission problem would otherwise make budgets under-count).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from tokenmeter import Cursor, RecordBatch, SourceContext, UsageRecord, Window

from .lines import LineLocator
from .paths import Unreadable, check_readable, error_reason, expand_paths, unreadable_error

__all__ = ["BLOCK_SIZE", "LineLocator", "LineParser", "TailPlan", "Unreadable", "check_readable", "expand_paths",
           "ingest", "plan_files", "read_file"]

CURSOR_VERSION = 1
HEAD_BYTES = 1024
BLOCK_SIZE = 4 << 20
# A checkpoint commits records + cursor; commit often enough that a kill loses little work but not
# so often that serialising a big cursor dominates.
CHECKPOINT_BYTES = 256 << 20
CHECKPOINT_RECORDS = 100_000
# ...and at least this often, so a run killed by a cron timeout keeps most of what it read even when
# few records come out of many bytes (chat logs) or the database is slow
CHECKPOINT_SECONDS = 5.0
# A longer "line" is garbage (e.g. NUL blocks left by a crash): skipped without being held in memory.
MAX_LINE = 64 << 20


class LineParser(Protocol):
    """What ``ingest`` drives: one instance per file read (possibly in a worker process).

    ``block``/``tail`` return *rows* (picklable tuples); the source's ``to_record`` turns rows into
    ``UsageRecord``s in the main process. Bad lines go to ``skips`` as ``(file:line, reason)``.
    """

    skips: list[tuple[str, str]]

    def __init__(self, path: str, start: int, state: dict[str, Any] | None, opts: Any) -> None: ...

    def block(self, buf: bytes, end: int, base: int) -> list[Any]:
        """Parse complete lines ``buf[0:end]`` (``end`` is just after a newline); ``base`` is the
        file offset of ``buf[0]``."""
        ...

    def tail(self, data: bytes, base: int) -> list[Any]:
        """Parse a last line that has no newline yet (may be incomplete: never count it as bad)."""
        ...

    def state(self) -> dict[str, Any] | None:
        """JSON state to keep with the file offset (e.g. TSV duplicate counters)."""
        ...


@dataclass
class TailPlan:
    path: str
    start: int
    state: dict[str, Any] | None
    size: int
    reason: str  # "new", "append", "truncated", "replaced", "rotated", "full"


def _head_hash(f: Any, n: int) -> str:
    # pread: leaves the file position alone (called mid-read at checkpoints)
    return hashlib.sha1(os.pread(f.fileno(), n, 0) if n else b"").hexdigest()[:20]


def _open(path: str) -> BinaryIO:
    """Open a log for reading (a seam: tests run as root, who can read anything, and fake EACCES here)."""
    return open(path, "rb", buffering=0)


def plan_files(
    paths: list[str], old: Mapping[str, Mapping[str, Any]], *, full: bool = False,
    unreadable: list[Unreadable] | None = None,
) -> tuple[list[TailPlan], dict[str, dict[str, Any]]]:
    """Decide where to start in each file. Returns (plans for files to read, entries kept unchanged).

    ``Unreadable`` paths, and files that cannot be opened for a reason other than being gone, are
    appended to ``unreadable`` (their cursor entries are kept, to continue once they can be read).
    """
    by_identity = {(e.get("dev"), e.get("ino")): (p, e) for p, e in old.items()}
    present: set[tuple[int, int]] = set()
    plans: list[TailPlan] = []
    kept: dict[str, dict[str, Any]] = {}
    stats: dict[str, os.stat_result] = {}
    for path in paths:
        if isinstance(path, Unreadable):
            if unreadable is not None:
                unreadable.append(path)
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue  # vanished between glob and stat: not an error
        stats[path] = st
        present.add((st.st_dev, st.st_ino))
    for path, st in stats.items():
        ident = (st.st_dev, st.st_ino)
        prev = old.get(path)
        reason = "new"
        if prev is not None and (prev.get("dev"), prev.get("ino")) != ident:
            prev, reason = None, "replaced"
        if prev is None and ident in by_identity:
            other_path, other = by_identity[ident]
            # the same inode under a new name: rotation by rename (only if the old name moved on)
            if other_path != path and (other_path not in stats or
                                       (stats[other_path].st_dev, stats[other_path].st_ino) != ident):
                prev, reason = other, "rotated"
        if full:
            plans.append(TailPlan(path, 0, None, st.st_size, "full"))
            continue
        if prev is None:
            plans.append(TailPlan(path, 0, None, st.st_size, reason))
            continue
        offset = int(prev.get("offset", 0))
        if reason != "rotated" and st.st_size == prev.get("size") and st.st_mtime_ns == prev.get("mtime"):
            kept[path] = dict(prev)
            continue
        if st.st_size < offset:
            plans.append(TailPlan(path, 0, None, st.st_size, "truncated"))
            continue
        try:
            with _open(path) as f:
                same_head = _head_hash(f, int(prev.get("hlen", 0))) == prev.get("head")
        except FileNotFoundError:
            continue  # vanished since the stat: not an error
        except OSError as exc:
            if unreadable is not None:
                unreadable.append(Unreadable(path, error_reason(exc)))
            kept[path] = dict(prev)
            continue
        if not same_head:
            plans.append(TailPlan(path, 0, None, st.st_size, "replaced"))
            continue
        plans.append(TailPlan(path, offset, prev.get("state"), st.st_size, reason if reason == "rotated"
                              else "append"))
    return plans, kept


def read_file(parser_cls: type[LineParser], opts: Any, plan: TailPlan,
              prepare: Callable[[RecordBatch], RecordBatch] | None = None) -> Iterator[tuple[Any, ...]]:
    """Read one file from ``plan.start``; yield rows, skips and cursor entries.

    An entry follows every block of rows (``ingest`` decides which ones to commit), so a checkpoint
    can land inside a big file; the parser's ``state()`` is taken there, between two blocks.
    ``prepare``: the host's ``ctx.prepare_batch``, applied to each packed batch where it is parsed.
    """
    # module globals (tests shrink them); parsers of short lines ask for smaller blocks so the rows
    # of one block stay few
    block_size = min(BLOCK_SIZE, getattr(parser_cls, "block_size", BLOCK_SIZE))
    # a parser class may pack each block's rows into a RecordBatch here: validated where it is
    # parsed (a worker process on big reads), so the host takes it as it is
    pack: Callable[[list[Any], Any], RecordBatch] | None = getattr(parser_cls, "pack_rows", None)
    try:
        f = _open(plan.path)
    except FileNotFoundError:
        yield ("entry", None, True)  # vanished: not an error, dropped from the cursor
        return
    except OSError as exc:
        yield ("unreadable", error_reason(exc))  # e.g. EACCES: reported by ingest, never skipped quietly
        return
    with f:
        parser = parser_cls(plan.path, plan.start, plan.state, opts)
        offset = plan.start
        f.seek(offset)
        carry = b""
        while True:
            data = f.read(block_size)
            if not data:
                break
            buf = carry + data if carry else data
            end = buf.rfind(b"\n") + 1
            if end == 0:
                if len(buf) > MAX_LINE:
                    carry = b""
                    nxt = _line_end(f, block_size)
                    if nxt == -1:
                        break  # it does not end yet: left for later, like any unfinished line
                    yield ("skips", [(LineLocator(plan.path).where(offset), _too_long())])
                    f.seek(nxt)
                    offset = nxt
                    continue
                carry = buf  # a line longer than a block: keep reading
                continue
            rows = parser.block(buf, end, offset)
            if pack is not None:
                rows = _packed(rows, opts, pack, prepare)
            if parser.skips:
                yield ("skips", parser.skips)
                parser.skips = []
            if getattr(parser, "unrecognised", None):
                yield ("unrecognised", parser.unrecognised)
                parser.unrecognised = []
            carry = buf[end:]
            offset += end
            yield ("rows", rows, len(data))
            yield ("entry", _entry(f, offset, offset, parser.state()), False)
        rows = parser.tail(carry, offset) if carry else []
        if rows and pack is not None:
            rows = _packed(rows, opts, pack, prepare)
        if rows:
            yield ("rows", rows, 0)
        yield ("entry", _entry(f, offset, f.tell(), parser.state()), True)


def _packed(rows: list[Any], opts: Any, pack: Callable[[list[Any], Any], RecordBatch],
            prepare: Callable[[RecordBatch], RecordBatch] | None) -> RecordBatch:
    batch = pack(rows, opts)
    return prepare(batch) if prepare is not None and batch.rows else batch


def _line_end(f: Any, block_size: int) -> int:
    """The file position just after the next newline, reading on from here; -1 if the file ends first."""
    while True:
        pos = f.tell()
        data = f.read(block_size)
        if not data:
            return -1
        i = data.find(b"\n")
        if i != -1:
            return pos + i + 1


def _too_long() -> str:
    return f"line longer than {MAX_LINE >> 20} MB" if MAX_LINE >= 1 << 20 else f"line longer than {MAX_LINE} bytes"


# the host's batch preparation in a worker process (set when the pool starts it)
_WORKER_PREPARE: Callable[[RecordBatch], RecordBatch] | None = None


def _init_worker(prepare: Callable[[RecordBatch], RecordBatch] | None) -> None:
    global _WORKER_PREPARE
    _WORKER_PREPARE = prepare
    nice = getattr(os, "nice", None)  # not on Windows
    if WORKER_NICE and nice is not None:
        try:
            nice(WORKER_NICE)
        except OSError:
            pass


def _read_batch(parser_cls: type[LineParser], opts: Any, plans: list[TailPlan],
                prepare: Callable[[RecordBatch], RecordBatch] | None = None) -> list[tuple[str, list[Any]]]:
    """Read whole files, return their events (in a worker process, or in the main one when it would
    wait for the workers)."""
    prepare = prepare or _WORKER_PREPARE
    return [(plan.path, list(read_file(parser_cls, opts, plan, prepare))) for plan in plans]


def _batches(plans: list[TailPlan], size: int) -> list[list[TailPlan]]:
    out: list[list[TailPlan]] = []
    cur: list[TailPlan] = []
    acc = 0
    for plan in plans:
        cur.append(plan)
        acc += max(plan.size - plan.start, 0)
        if acc >= size:
            out.append(cur)
            cur, acc = [], 0
    if cur:
        out.append(cur)
    return out


def _events_parallel(parser_cls: type[LineParser], opts: Any, plans: list[TailPlan], workers: int,
                     prepare: Callable[[RecordBatch], RecordBatch] | None = None) -> Iterator[tuple[str, list[Any]]]:
    """Parse batches of files in worker processes, in order, with a bounded number in flight.

    Workers parse, check, price and encode (``prepare``: the host's, inherited when forked), so the
    main process only writes; when it catches up with the workers, it parses batches too rather
    than wait (at most ``STEAL_AHEAD``). The tokens are the same whichever process parses them.
    """
    import multiprocessing as mp
    from collections import deque

    method = "fork" if "fork" in mp.get_all_start_methods() else None
    warm = getattr(prepare, "warm", None)
    if callable(warm):
        warm()  # e.g. the price book: loaded once, before the fork, and shared with the workers
    # the workers inherit the host's preparation when forked; else the main process prepares
    pool = mp.get_context(method).Pool(workers, _init_worker, (prepare if method == "fork" else None,))
    try:
        pending: deque[Any] = deque()  # AsyncResults of the workers, or results parsed here
        batches = iter(_batches(plans, PARALLEL_BATCH))
        for batch in batches:
            pending.append(pool.apply_async(_read_batch, (parser_cls, opts, batch)))
            if len(pending) > workers * 2:
                break
        while pending:
            head = pending[0]
            if not isinstance(head, list) and not head.ready() and len(pending) <= workers * 2 + STEAL_AHEAD:
                # the main process would wait for the workers: it parses the next batch itself (the
                # results still come out in file order: the same records, cursor and checkpoints)
                nxt = next(batches, None)
                if nxt is not None:
                    pending.append(_read_batch(parser_cls, opts, nxt, prepare))
                    continue
            pending.popleft()
            results = head if isinstance(head, list) else head.get()
            nxt = next(batches, None)
            if nxt is not None:
                pending.append(pool.apply_async(_read_batch, (parser_cls, opts, nxt)))
            yield from results
    finally:
        pool.terminate()
        pool.join()


PARALLEL_MIN = 256 << 20  # below this, starting worker processes costs more than it saves
# small batches: the rows of every batch in flight are held in memory (priced and encoded ones too)
PARALLEL_BATCH = 8 << 20
STEAL_AHEAD = 2  # batches the main process may parse ahead of the workers' oldest one (bounds memory)
# workers yield the CPU to the main process, which writes: it is the pipeline's critical path
# (measured on 2 CPUs: a cold ingest 14 % faster than at equal priority)
WORKER_NICE = 5
# default: one per CPU, at most 3 (the main process mostly writes, in SQLite); none on one CPU
WORKERS: int | None = None


def ingest(
    ctx: SourceContext,
    cursor: Mapping[str, Any],
    paths: list[str],
    parser_cls: type[LineParser],
    opts: Any,
    to_record: Callable[[Any], UsageRecord | None] | None,
    window: Window,
    *,
    parallel_min: int | None = None,
    to_batch: Callable[[RecordBatch], RecordBatch] | None = None,
) -> Iterator[UsageRecord | RecordBatch | Cursor]:
    """Read what is new in ``paths`` and yield records, with ``Cursor`` checkpoints.

    A parser class with ``pack_rows`` yields ``RecordBatch``es instead: each goes through
    ``to_batch`` (e.g. to drop calls already seen) and is yielded when rows are left; without
    ``pack_rows``, each row goes through ``to_record`` (None: dropped).

    With an explicit window (``--from``) every file is re-read from the start, only records inside
    the window are yielded, and the cursor is left as it was (a backfill must not move it).
    Big cold reads are parsed in worker processes (``parallel_min`` bytes or more, 2+ CPUs).
    Files or folders that cannot be read are reported once the others are read and committed: a
    ``SourceDataError`` naming the first one (their cursor entries are kept for when they can be).
    """
    full = window.explicit
    old = cursor.get("files", {}) if cursor.get("v") == CURSOR_VERSION else {}
    unreadable: list[Unreadable] = []
    plans, files = plan_files(paths, old, full=full, unreadable=unreadable)
    if unreadable:
        # what is behind a folder we cannot list is not gone: keep its place
        hidden = tuple(u.rstrip(os.sep) + os.sep for u in unreadable)
        files.update((p, dict(e)) for p, e in old.items()
                     if p not in files and (p in unreadable or p.startswith(hidden)))
    todo = sum(max(p.size - p.start, 0) for p in plans)
    ctx.progress.set_total(todo)
    lo, hi = window.start, window.end
    since_bytes = since_records = 0
    last_checkpoint = time.monotonic()
    dirty = bool(set(old) - set(files) - {p.path for p in plans})  # vanished files to drop
    # until a file is read, a checkpoint keeps its old place (else a kill sends it back to byte 0)
    files.update((p.path, dict(old[p.path])) for p in plans if p.reason == "append")

    def checkpoint() -> Cursor:
        return Cursor({"v": CURSOR_VERSION, "files": dict(files)})

    cpus = os.cpu_count() or 1
    workers = WORKERS if WORKERS is not None else (min(cpus, 3) if cpus > 1 else 0)
    prepare = getattr(ctx, "prepare_batch", None) if to_batch is not None else None
    if todo >= (PARALLEL_MIN if parallel_min is None else parallel_min) and workers >= 1 and len(plans) > 1:
        per_file: Iterator[tuple[str, Iterable[tuple[Any, ...]]]] = _events_parallel(
            parser_cls, opts, plans, workers, prepare)
    else:
        per_file = ((p.path, read_file(parser_cls, opts, p, prepare)) for p in plans)

    for path, events in per_file:
        ctx.progress.describe(os.path.basename(path))
        for ev in events:
            kind = ev[0]
            if kind == "rows" and to_batch is not None:
                batch = to_batch(ev[1])
                if full:
                    batch = batch.pick(i for i, r in enumerate(batch.rows) if not (r[1] < lo or r[1] > hi))  # type: ignore[operator]
                if batch.rows:
                    since_records += len(batch.rows)
                    yield batch
                ctx.progress.advance(ev[2])
                since_bytes += ev[2]
            elif kind == "rows":
                assert to_record is not None
                for row in ev[1]:
                    rec = to_record(row)
                    if rec is None or (full and (rec.start < lo or rec.start > hi)):  # type: ignore[operator]
                        continue
                    since_records += 1
                    yield rec
                ctx.progress.advance(ev[2])
                since_bytes += ev[2]
            elif kind == "skips":
                for where, reason in ev[1]:
                    ctx.skip(where, reason)
            elif kind == "unrecognised":
                for where in ev[1]:
                    ctx.unrecognised(where, "token counts in a shape the reader does not know")
            elif kind == "unreadable":
                unreadable.append(Unreadable(path, ev[1]))
                if path in old and not full:
                    files.setdefault(path, dict(old[path]))
            else:  # entry
                entry = ev[1]
                if full:
                    continue
                if entry is None:
                    files.pop(path, None)
                else:
                    files[path] = entry
                dirty = True
                now = time.monotonic()
                if (since_records >= CHECKPOINT_RECORDS or now - last_checkpoint >= CHECKPOINT_SECONDS
                        or since_bytes >= CHECKPOINT_BYTES):
                    yield checkpoint()
                    since_bytes = since_records = 0
                    last_checkpoint = time.monotonic()  # the host committed meanwhile: count from now
                    dirty = False
    if not full and (dirty or cursor.get("v") != CURSOR_VERSION):
        yield checkpoint()
    if unreadable:
        # after the checkpoint above: the readable files are stored, the error is still reported
        raise unreadable_error(list({u: u for u in unreadable}.values()), stored=bool(plans))


def _entry(f: Any, offset: int, seen: int, state: dict[str, Any] | None) -> dict[str, Any]:
    st = os.fstat(f.fileno())
    hlen = min(HEAD_BYTES, offset)
    entry: dict[str, Any] = {
        "dev": st.st_dev,
        "ino": st.st_ino,
        # the size we have seen (not fstat's): a file that grew meanwhile must look changed next run
        "size": seen,
        "mtime": st.st_mtime_ns,
        "offset": offset,
        "hlen": hlen,
        "head": _head_hash(f, hlen),
    }
    if state:
        entry["state"] = state
    return entry
