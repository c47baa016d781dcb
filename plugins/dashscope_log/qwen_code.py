"""Qwen Code logs: every API call the client recorded, counted once.

Where the real client writes (see the package docstring for the counting rules):

- ``<root>/projects/<p>/chats/<sessionId>.jsonl`` and ``chats/archive/``: the session's lines,
  including a ``ui_telemetry`` ``api_response`` event for every API call (main turns, subagents and
  background agents) — the primary record (``qwen_chat``);
- ``<root>/usage/token-usage-YYYY-MM.jsonl`` (0.24.x): one line per call; counted only for sessions
  whose chat file is gone (it repeats the chat's calls);
- ``<root>/projects/<p>/subagents/<sessionId>/agent-*.jsonl`` (0.24.x): subagent transcripts; counted
  only when neither the chat file nor the ledger covers them. They carry no model: the ledger's model
  for that agent, else the root's configured model, is used so they are priced;
- ``<root>/usage_record.jsonl``: per-session sums, never counted.

Roots: ``$QWEN_RUNTIME_DIR``, the ``advanced.runtimeOutputDir`` setting, ``$QWEN_HOME``, ``~/.qwen``
(and ccusage's ``$QWEN_DATA_DIR``): every one that exists is read; record keys come from the content,
so a call seen under two roots counts once.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmeter import Cursor, RecordBatch, Source, SourceDataError, UsageRecord, Window

from . import paths
from .demo import copy_demo_data
from .lines import LineLocator
from .paths import Unreadable, check_readable
from .qwen_chat import ChatParser, Row
from .qwen_shapes import GENERIC_MARKS
from .qwen_tokens import MAIN, tokens_from_counts, unrecognised_usage, usage_to_tokens
from .seen import SeenKeys
from .tail import ingest
from .tsv import parse_timestamp

__all__ = ["QwenCodeSource", "QwenParser", "default_roots", "find_roots", "usage_to_tokens",
           "TESTED_VERSIONS"]

# Client versions the conformance tests run (tests/test_qwen_code_conformance.py).
TESTED_VERSIONS = ("0.15.10", "0.24.4")
# Folders the reader knows under a root's projects/<p>/ (others are checked for usage it would miss).
KNOWN_PROJECT_DIRS = {"chats", "subagents"}
PROVIDER = "qwen"
_SESSION = re.compile(rb'"sessionId":"([^"\\]*)"')
_BAD_JSON = (ValueError, RecursionError)


def _json_object(path: str) -> dict[str, Any]:
    """A small JSON file the client wrote (settings, agent meta), or {} when absent or unreadable."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _settings_runtime_dir(home: str) -> str | None:
    """``advanced.runtimeOutputDir`` from Qwen Code's settings.json in ``home``, if set."""
    data = _json_object(os.path.join(home, "settings.json"))
    adv = data.get("advanced")
    return _text(adv.get("runtimeOutputDir") if isinstance(adv, dict) else data.get("advanced.runtimeOutputDir"))


def default_roots() -> list[str]:
    """Every place the client may have written, in order (read when the settings are built).

    ``$QWEN_RUNTIME_DIR``, the ``advanced.runtimeOutputDir`` setting (settings.json in ``$QWEN_HOME``
    or ``~/.qwen``), ``$QWEN_HOME``, ``~/.qwen``, and ``$QWEN_DATA_DIR`` (ccusage's variable).
    """
    env = os.environ
    home = env.get("QWEN_HOME") or "~/.qwen"
    out = [env.get("QWEN_RUNTIME_DIR") or "", _settings_runtime_dir(home) or "",
           env.get("QWEN_HOME") or "", "~/.qwen", env.get("QWEN_DATA_DIR") or ""]
    seen: list[str] = []
    for r in out:
        if r and r not in seen:
            seen.append(r)
    return seen


def find_roots(roots: list[str]) -> list[str]:
    """The roots that exist, absolute, without the same folder twice."""
    out: dict[str, str] = {}
    for r in roots:
        path = os.path.abspath(os.path.expanduser(os.path.expandvars(r)))
        if os.path.isdir(path):
            out.setdefault(os.path.realpath(path), path)
    return list(out.values())


def _configured_model(root: str) -> str | None:
    model = _json_object(os.path.join(root, "settings.json")).get("model")
    return _text(model.get("name") if isinstance(model, dict) else model)


@dataclass(frozen=True)
class Plan:
    """What the parsers need to know about the whole tree (sent to worker processes)."""

    chat_sessions: frozenset[str] = frozenset()
    agent_models: tuple[tuple[str, str], ...] = ()  # (agent name, model) from ledger lines, for transcripts
    default_model: str | None = None
    account: str | None = None  # the records' account (the machine id)


class LedgerParser:
    """``usage/token-usage-YYYY-MM.jsonl``: counted only for sessions with no chat file."""

    block_size = 1 << 20

    def __init__(self, path: str, start: int, state: dict[str, Any] | None, opts: Plan | None = None) -> None:
        self.locator = LineLocator(path)
        self.skips: list[tuple[str, str]] = []
        self.unrecognised: list[str] = []
        self.sessions = opts.chat_sessions if opts is not None else frozenset()

    def state(self) -> dict[str, Any] | None:
        return None

    def block(self, buf: bytes, end: int, base: int) -> list[Row]:
        rows: list[Row] = []
        p = 0
        while p < end:
            e = buf.find(b"\n", p, end)
            if e > p:
                row = self._line(buf, p, e, base + p)
                if row is not None:
                    rows.append(row)
            p = e + 1
        return rows

    def tail(self, data: bytes, base: int) -> list[Row]:
        return []  # the writer appends whole lines; an unfinished one is read next run

    def _line(self, buf: bytes, s: int, e: int, offset: int) -> Row | None:
        m = _SESSION.search(buf, s, e)
        if m is not None and m[1].decode("utf-8", "replace") in self.sessions:
            return None  # the chat file counts this session's calls
        try:
            obj = json.loads(buf[s:e])
        except UnicodeDecodeError:
            self.skips.append((self.locator.where(offset), "not UTF-8"))
            return None
        except _BAD_JSON:
            if buf[s:e].strip():
                self.skips.append((self.locator.where(offset), "corrupt JSON"))
            return None
        if not isinstance(obj, dict):
            self.skips.append((self.locator.where(offset), "not a JSON object"))
            return None
        return self._from_obj(obj, offset)

    def _from_obj(self, obj: dict[str, Any], offset: int) -> Row | None:
        if obj.get("schemaVersion") != 1 or not isinstance(obj.get("id"), str) or "inputTokens" not in obj:
            if unrecognised_usage(obj) and len(self.unrecognised) < 3:
                self.unrecognised.append(self.locator.where(offset))
            return None
        try:
            counts = []
            for name in ("inputTokens", "outputTokens", "thoughtsTokens", "cachedTokens", "totalTokens"):
                v = obj.get(name)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                    raise ValueError(f"bad {name} {v!r}")
                counts.append(v)
            p, c, t, k, total = counts
            inp, out, cached, reasoning, note = tokens_from_counts(p, c, t, k, total)
            ts = obj.get("timestamp")
            if not isinstance(ts, str):
                raise ValueError("ledger line without timestamp")
            start = parse_timestamp(ts)
        except ValueError as err:
            self.skips.append((self.locator.where(offset), str(err)))
            return None
        model, session, agent = (obj.get(k) for k in ("model", "sessionId", "source"))
        return (f"l:{obj['id']}", start, model if isinstance(model, str) and model else None, None,
                session if isinstance(session, str) and session else None, inp, out, cached, reasoning,
                total, note, agent if isinstance(agent, str) and agent else MAIN)


class TranscriptParser(ChatParser):
    """A subagent transcript (no model on its lines): the agent's model is filled in."""

    def __init__(self, path: str, start: int, state: dict[str, Any] | None, opts: Plan | None = None) -> None:
        super().__init__(path, start, state, opts)
        plan = opts or Plan()
        self.models = dict(plan.agent_models)
        self.default_model = _meta_model(path) or plan.default_model
        # projects/<p>/subagents/<session>/agent-*.jsonl
        self.project_dir = os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(path)))) or None

    def _assistant(self, uuid: str, parent: str | None, session: str | None, ts: str, model: str | None,
                   cwd: str | None, agent: str | None, um: dict[str, Any], offset: int,
                   forked_from: str | None = None) -> Row | None:
        row = super()._assistant(uuid, parent, session, ts, model, cwd, agent, um, offset, forked_from)
        if row is not None and row[2] is None:
            row = (*row[:2], self.default_model or self.models.get(row[11]), *row[3:])
        return row


def _meta_model(path: str) -> str | None:
    """The model in a transcript's ``agent-*.meta.json`` (0.24.x writes it there, not on the lines)."""
    meta = _json_object(path[: -len(".jsonl")] + ".meta.json")
    flags = meta.get("persistedCliFlags")
    return _text(meta.get("model")) or _text(flags.get("model") if isinstance(flags, dict) else None)


class QwenParser:
    """Picks the parser for a file by where it lies (one class for ``tail.ingest``)."""

    block_size = 4 << 20

    @staticmethod
    def pack_rows(rows: list[Row], plan: Plan) -> RecordBatch:
        """A block's rows as a ``RecordBatch`` (checked here, in the worker that parsed them)."""
        return RecordBatch(PROVIDER, plan.account, tuple(
            (key, start, model, project, session, agent, 1, inp, out, cached, None, reasoning, total,
             {"note": note} if note else None)
            for key, start, model, project, session, inp, out, cached, reasoning, total, note, agent in rows))

    def __new__(cls, path: str, start: int, state: dict[str, Any] | None, opts: Any = None) -> Any:  # type: ignore[misc]
        parts = path.replace(os.sep, "/").split("/")
        if len(parts) >= 2 and parts[-2] == "usage" and parts[-1].startswith("token-usage-"):
            return LedgerParser(path, start, state, opts)
        if "subagents" in parts[-4:-1]:
            return TranscriptParser(path, start, state, opts)
        return ChatParser(path, start, state, opts)


def _entries(path: str, blocked: list[str], seen: list[tuple[str, int]] | None = None,
             cache: paths.FolderCache | None = None) -> paths.Folder:
    """A folder's sub-folders and JSONL files (``paths.list_folder``: one that cannot be listed goes
    to ``blocked``; ``seen`` collects (folder, mtime); ``cache`` spares listing unchanged folders)."""
    return paths.list_folder(path, blocked, seen, cache)


def _jsonl(folder: paths.Folder, check: bool = True) -> list[str]:
    # the paths DirEntry.path would give; a plain concatenation: a warm walk makes thousands
    prefix = os.path.join(folder.path, "")
    files = [prefix + name for name in folder.jsonl]
    return _readable(files) if check else files


def _readable(files: list[str]) -> list[str]:
    """``files``, those this process may not read as ``Unreadable`` (reported, never skipped)."""
    access = paths._access
    return [p if access(p, os.R_OK) else Unreadable(p) for p in files]


def _scan_root(root: str, chats: list[str], ledgers: list[str], transcripts: list[str], other: list[str],
               seen: list[tuple[str, int]] | None = None, cache: paths.FolderCache | None = None) -> None:
    """One walk of a root with ``scandir`` (a warm run only stats what it finds: no globbing).

    ``projects/<p>/chats/*.jsonl`` and ``chats/archive/``, ``projects/<p>/subagents/**.jsonl``,
    ``usage/token-usage-*.jsonl``; other folders under ``projects/<p>/`` go to ``other`` (checked
    for usage this reader would miss). Folders that cannot be listed come back ``Unreadable``.
    """
    blocked: list[str] = []
    top = _entries(os.path.join(root, "projects"), blocked, seen, cache)
    for project in (os.path.join(top.path, name) for name in top.dirs):
        for d in _entries(project, blocked, seen, cache).dirs:
            path = os.path.join(project, d)
            if d == "chats":
                inside = _entries(path, blocked, seen, cache)
                chats += _jsonl(inside)
                if "archive" in inside.dirs:
                    chats += _jsonl(_entries(os.path.join(path, "archive"), blocked, seen, cache))
            elif d == "subagents":
                for session in _entries(path, blocked, seen, cache).dirs:
                    # checked for read permission only if read (most are covered by their chat file)
                    transcripts += _jsonl(_entries(os.path.join(path, session), blocked, seen, cache), False)
            else:
                other.append(path)
    ledgers += [p for p in _jsonl(_entries(os.path.join(root, "usage"), blocked, seen, cache))
                if os.path.basename(p).startswith("token-usage-")]
    chats += (Unreadable(b) for b in blocked)


def _sessions(chats: list[str]) -> frozenset[str]:
    return frozenset(os.path.basename(p)[:-6] for p in chats if not p.endswith(".ledger.jsonl"))


def _version_key(v: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.-]", v))


def _month(path: str) -> str:
    m = re.search(r"token-usage-(\d{4}-\d{2})\.jsonl$", path)
    return m[1] if m else ""


# the last walk available() made, for the fetch that follows it: {roots: (when, layout, other dirs)}
_LAST_LAYOUT: dict[tuple[str, ...], tuple[float, Any, list[str], list[tuple[str, int]]]] = {}
_LAYOUT_REUSE = 2.0


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class QwenCodeSource(Source):
    """Qwen Code logs: every API call (main, subagents, background agents) once."""

    id = "qwen-code"
    provider = PROVIDER
    kind = "log"
    description = "Qwen Code chat logs, subagent transcripts and usage ledger, read incrementally"

    @dataclass
    class Settings:
        roots: list[str] = field(
            default_factory=default_roots,
            metadata={"help": "Qwen Code runtime dirs holding projects/*/chats (default: every one of "
                              "$QWEN_RUNTIME_DIR, settings advanced.runtimeOutputDir, $QWEN_HOME, ~/.qwen "
                              "that exists)"},
        )

    @classmethod
    def demo_settings(cls, workdir: Path) -> dict[str, Any] | None:
        """The demo reads sample chat logs of two projects (copied to ``workdir/qwen``)."""
        return {"roots": [str(copy_demo_data("qwen", workdir))]}

    # -- files -----------------------------------------------------------------------------------
    def roots(self) -> list[str]:
        return find_roots(self.settings.roots)

    def _layout(self, *, reuse: bool = False) -> tuple[list[str], list[str], list[str], list[str]]:
        """(chat files, ledger files, transcript files, roots) under every root.

        ``reuse``: take the walk ``available()`` just made (the host checks a source, then runs it
        at once: walking 14k files twice was a third of a warm run); a walk older than
        ``_LAYOUT_REUSE`` seconds is made again.
        """
        roots = self.roots()
        if reuse:
            kept = _LAST_LAYOUT.pop(tuple(roots), None)
            if kept is not None and time.monotonic() - kept[0] < _LAYOUT_REUSE and all(
                    _mtime(d) == m for d, m in kept[3]):
                self._other_dirs = kept[2]
                return kept[1]
        chats: list[str] = []
        ledgers: list[str] = []
        transcripts: list[str] = []
        self._other_dirs: list[str] = []
        self._seen_dirs: list[tuple[str, int]] = []
        if getattr(self, "_folders", None) is None:  # the listings of the last run (a host's data folder)
            data = self.ctx.data_dir
            self._folders = paths.FolderCache(os.path.join(data, "folders.json") if data else None)
        self._folders.begin()
        for r in roots:
            _scan_root(r, chats, ledgers, transcripts, self._other_dirs, self._seen_dirs, self._folders)
        self._folders.save()
        return chats, ledgers, transcripts, roots

    def available(self) -> str | None:
        layout = chats, ledgers, transcripts, roots = self._layout()
        _LAST_LAYOUT.clear()
        _LAST_LAYOUT[tuple(roots)] = (time.monotonic(), layout, self._other_dirs, self._seen_dirs)
        check_readable(chats + ledgers + self._orphans(_sessions(chats), ledgers, transcripts))  # raises: the host
        # runs it then, so it is reported
        if chats or ledgers or transcripts:
            return None
        if not roots:
            return "no Qwen Code folder at " + ", ".join(self.settings.roots)
        return "no log files at " + ", ".join(os.path.join(r, "projects/*/chats/*.jsonl") for r in roots)

    def info(self, cursor: Mapping[str, Any]) -> dict[str, Any]:
        """Shown by ``tokenmeter sources``: the roots read, the client versions seen in the logs."""
        seen: set[str] = set()
        files = cursor.get("files") if isinstance(cursor, Mapping) else None
        for entry in (files or {}).values():
            state = entry.get("state") if isinstance(entry, Mapping) else None
            if isinstance(state, Mapping) and isinstance(state.get("versions"), list):
                seen.update(v for v in state["versions"] if isinstance(v, str))
        return {"roots": self.roots(),
                "client_versions": {v: v in TESTED_VERSIONS for v in sorted(seen, key=_version_key)},
                "tested_client_versions": list(TESTED_VERSIONS)}

    def fetch(self, window: Window, cursor: Any) -> Iterator[UsageRecord | Cursor]:
        for item in self.fetch_batches(window, cursor):
            if isinstance(item, RecordBatch):
                yield from item.records()
            else:
                yield item

    def fetch_batches(self, window: Window, cursor: Any) -> Iterator[RecordBatch | Cursor]:
        """``fetch`` in bulk: the host stores these batches without a ``UsageRecord`` per call."""
        chats, ledgers, transcripts, roots = self._layout(reuse=True)
        if not roots:  # named on the command line (else skipped as not available): say why
            raise SourceDataError(f"no Qwen Code folder at {', '.join(self.settings.roots)}: set roots in "
                                  "[sources.qwen-code] to where Qwen Code writes (see `tokenmeter sources`)")
        sessions = _sessions(chats)
        orphans = self._orphans(sessions, ledgers, transcripts)
        plan = Plan(sessions, self._agent_models(ledgers) if orphans else (),
                    next((m for m in map(_configured_model, roots) if m), None), self.ctx.machine_id)
        for where in self._unknown_places():
            self.ctx.unrecognised(where, "token counts in a file the reader does not know")
        seen = SeenKeys()

        def first_seen(batch: RecordBatch) -> RecordBatch:
            # fork copies, the same file under two roots: each call counts once
            keep = seen.new([hash(row[0]) for row in batch.rows])
            return batch if len(keep) == len(batch.rows) else batch.pick(keep)

        yield from ingest(self.ctx, cursor, chats + ledgers + orphans, QwenParser, plan, None, window,
                          to_batch=first_seen)  # type: ignore[misc]

    def _orphans(self, sessions: frozenset[str], ledgers: list[str], transcripts: list[str]) -> list[str]:
        """The transcripts that no chat file or ledger covers: read, so checked for permission."""
        months = {(_month(p), os.path.dirname(os.path.dirname(p))) for p in ledgers}
        return _readable([p for p in transcripts if self._orphan_transcript(p, sessions, months)])

    @staticmethod
    def _orphan_transcript(path: str, sessions: frozenset[str], months: set[tuple[str, str]]) -> bool:
        """Does no chat file and no ledger month cover this transcript?"""
        session = os.path.basename(os.path.dirname(path))
        if session in sessions:
            return False
        root = path  # <root>/projects/<p>/subagents/<session>/agent-*.jsonl
        for _ in range(5):
            root = os.path.dirname(root)
        try:
            import time
            t = time.gmtime(os.stat(path).st_mtime)
        except OSError:
            return False
        month = f"{t.tm_year:04d}-{t.tm_mon:02d}"
        prev = f"{t.tm_year - (t.tm_mon == 1):04d}-{(t.tm_mon - 2) % 12 + 1:02d}"
        return (month, root) not in months and (prev, root) not in months

    @staticmethod
    def _agent_models(ledgers: list[str]) -> tuple[tuple[str, str], ...]:
        """The latest model each agent used, from the ledgers' last lines."""
        out: dict[str, str] = {}
        for path in ledgers[-2:]:
            try:
                with open(path, "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - (256 << 10)))
                    data = f.read()
            except OSError:
                continue
            for raw in data.splitlines()[1:]:
                try:
                    obj = json.loads(raw)
                except (*_BAD_JSON, UnicodeDecodeError):
                    continue
                if isinstance(obj, dict) and isinstance(obj.get("source"), str) and isinstance(obj.get("model"), str):
                    out[obj["source"]] = obj["model"]
        return tuple(out.items())

    def _unknown_places(self) -> list[str]:
        """JSONL files in folders this reader does not know that hold token counts (first line found)."""
        found: list[str] = []
        for d in getattr(self, "_other_dirs", []):
            for path in sorted(glob.glob(os.path.join(glob.escape(d), "**", "*.jsonl"), recursive=True))[:20]:
                where = _first_usage_line(path)
                if where:
                    found.append(where)
                    break
        return found[:5]


def _first_usage_line(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(256 << 10)
    except OSError:
        return None
    for n, raw in enumerate(data.split(b"\n"), 1):
        if any(m in raw for m in GENERIC_MARKS):
            try:
                obj = json.loads(raw)
            except (*_BAD_JSON, UnicodeDecodeError):
                continue
            if unrecognised_usage(obj):
                return f"{path}:{n}"
    return None
