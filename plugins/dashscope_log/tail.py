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
line boundary, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tokenmeter import Cursor, SourceContext, UsageRecord, Window

__all__ = ["BLOCK_SIZE", "LineLocator", "LineParser", "TailPlan", "ingest", "plan_files"]

CURSOR_VERSION = 1
HEAD_BYTES = 1024
BLOCK_SIZE = 4 << 20
# A checkpoint commits records + cursor; commit often enough that a kill loses little work but not
# so often that serialising a big cursor dominates.
CHECKPOINT_BYTES = 64 << 20
CHECKPOINT_RECORDS = 50_000


class LineLocator:
    """Turn a byte offset into a 1-based line number, lazily (only used for skip messages)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pos = 0
        self._line = 1

    def line_at(self, offset: int) -> int:
        if offset < self._pos:
            self._pos, self._line = 0, 1
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                left = offset - self._pos
                while left > 0:
                    data = f.read(min(left, BLOCK_SIZE))
                    if not data:
                        break
                    self._line += data.count(b"\n")
                    left -= len(data)
        except OSError:
            return 0
        self._pos = offset
        return self._line

    def where(self, offset: int) -> str:
        return f"{self.path}:{self.line_at(offset)}"


class LineParser(Protocol):
    """What ``ingest`` drives, one instance per file read."""

    def block(self, buf: bytes, end: int, base: int) -> Iterable[UsageRecord]:
        """Parse complete lines ``buf[0:end]`` (``end`` is just after a newline); ``base`` is the
        file offset of ``buf[0]``."""
        ...

    def tail(self, data: bytes, base: int) -> Iterable[UsageRecord]:
        """Parse a last line that has no newline yet (may be incomplete: never count it as bad)."""
        ...

    def state(self) -> dict[str, Any] | None:
        """JSON state to keep with the file offset (e.g. TSV duplicate counters)."""
        ...


ParserFactory = Callable[[str, int, "dict[str, Any] | None", LineLocator], LineParser]


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


def expand_paths(patterns: Iterable[str]) -> list[str]:
    """Expand ``~`` and globs; return existing regular files, absolute, sorted, without duplicates."""
    import glob

    out: dict[str, None] = {}
    for pattern in patterns:
        pattern = os.path.expanduser(os.path.expandvars(pattern))
        matches = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
        for m in sorted(matches):
            if os.path.isfile(m):
                out.setdefault(os.path.abspath(m), None)
    return list(out)


def plan_files(
    paths: list[str], old: Mapping[str, Mapping[str, Any]], *, full: bool = False
) -> tuple[list[TailPlan], dict[str, dict[str, Any]]]:
    """Decide where to start in each file. Returns (plans for files to read, entries kept unchanged)."""
    by_identity = {(e.get("dev"), e.get("ino")): (p, e) for p, e in old.items()}
    present: set[tuple[int, int]] = set()
    plans: list[TailPlan] = []
    kept: dict[str, dict[str, Any]] = {}
    stats: dict[str, os.stat_result] = {}
    for path in paths:
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
            with open(path, "rb") as f:
                same_head = _head_hash(f, int(prev.get("hlen", 0))) == prev.get("head")
        except OSError:
            continue
        if not same_head:
            plans.append(TailPlan(path, 0, None, st.st_size, "replaced"))
            continue
        plans.append(TailPlan(path, offset, prev.get("state"), st.st_size, reason if reason == "rotated"
                              else "append"))
    return plans, kept


def ingest(
    ctx: SourceContext,
    cursor: Mapping[str, Any],
    paths: list[str],
    make_parser: ParserFactory,
    window: Window,
    *,
    block_size: int = BLOCK_SIZE,
) -> Iterator[UsageRecord | Cursor]:
    """Read what is new in ``paths`` and yield records, with ``Cursor`` checkpoints.

    With an explicit window (``--from``) every file is re-read from the start, only records inside
    the window are yielded, and the cursor is left as it was (a backfill must not move it).
    """
    full = window.explicit
    old = cursor.get("files", {}) if cursor.get("v") == CURSOR_VERSION else {}
    plans, files = plan_files(paths, old, full=full)
    ctx.progress.set_total(sum(max(p.size - p.start, 0) for p in plans))
    lo, hi = window.start, window.end
    since_bytes = since_records = 0
    dirty = bool(set(old) - set(files) - {p.path for p in plans})  # vanished files to drop

    def checkpoint() -> Cursor:
        return Cursor({"v": CURSOR_VERSION, "files": dict(files)})

    for plan in plans:
        try:
            f = open(plan.path, "rb", buffering=0)
        except OSError:
            files.pop(plan.path, None)
            continue  # vanished: not an error
        with f:
            locator = LineLocator(plan.path)
            parser = make_parser(plan.path, plan.start, plan.state, locator)
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
                    carry = buf  # a line longer than a block: keep reading
                    continue
                for rec in parser.block(buf, end, offset):
                    if full and (rec.start < lo or rec.start > hi):  # type: ignore[operator]
                        continue
                    since_records += 1
                    yield rec
                carry = buf[end:]
                offset += end
                ctx.progress.advance(len(data))
                since_bytes += end
                if not full and (since_bytes >= CHECKPOINT_BYTES or since_records >= CHECKPOINT_RECORDS):
                    files[plan.path] = _entry(f, plan.path, offset, offset, parser.state())
                    yield checkpoint()
                    since_bytes = since_records = 0
            if carry:
                for rec in parser.tail(carry, offset):
                    if full and (rec.start < lo or rec.start > hi):  # type: ignore[operator]
                        continue
                    yield rec
            if not full:
                files[plan.path] = _entry(f, plan.path, offset, offset + len(carry), parser.state())
                dirty = True
        if not full and (since_bytes >= CHECKPOINT_BYTES or since_records >= CHECKPOINT_RECORDS):
            yield checkpoint()
            since_bytes = since_records = 0
            dirty = False
    if not full and (dirty or since_records or since_bytes or cursor.get("v") != CURSOR_VERSION):
        yield checkpoint()


def _entry(f: Any, path: str, offset: int, seen: int, state: dict[str, Any] | None) -> dict[str, Any]:
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
