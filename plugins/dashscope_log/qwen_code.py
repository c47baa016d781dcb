"""Qwen Code chat logs: ``<root>/projects/<project>/chats/<sessionId>.jsonl``.

One record per ``assistant`` line carrying ``usageMetadata``; key = ``uuid``, project = ``cwd``,
session = ``sessionId``. Token rules are in the package docstring (``usage_to_tokens``).

Speed: most bytes are message text. Lines are found with ``bytes.find`` (memchr) and only lines
containing ``"usageMetadata"`` are looked at closely. For those the fast path matches the short
top-level fields at the start of the line (uuid, parentUuid, sessionId, timestamp, type) and at
the end (model, usageMetadata, trailing scalars) with anchored byte regexes, and ``json.loads``
only the small usageMetadata object. Anything that does not fit that exact shape goes to
``json.loads`` of the whole line; a line that fails both is counted as skipped. Other lines only
get a structural check (starts with ``{``, ends with ``}``, no NUL bytes); those that fail it are
given to ``json.loads`` and counted if it fails.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tokenmeter import Cursor, Source, SourceContext, UsageRecord, Window

from .tail import LineLocator, expand_paths, ingest
from .tsv import parse_timestamp

__all__ = ["QwenCodeSource", "QwenCodeParser", "default_roots", "usage_to_tokens"]

MARK = b'"usageMetadata"'
_HEAD = re.compile(
    rb'\{"uuid":"([^"\\]+)","parentUuid":(?:null|"[^"\\]*"),"sessionId":"([^"\\]*)",'
    rb'"timestamp":"([^"\\]+)","type":"([a-z_]+)"'
)
_CWD = re.compile(rb',"cwd":"([^"\\]*)"')
_TAIL = re.compile(
    rb'\},"model":"([^"\\]*)","usageMetadata":(\{[^{}]*\})'
    rb'(?:,"[A-Za-z_]+":(?:-?\d+(?:\.\d+)?|"[^"\\]*"|true|false|null))*\}[ \t\r]*'
)
_NOT_CALLS = (b"user", b"system", b"tool_result")


def default_roots() -> list[str]:
    """$QWEN_RUNTIME_DIR, else $QWEN_DATA_DIR, else ~/.qwen (read when the settings are built)."""
    for var in ("QWEN_RUNTIME_DIR", "QWEN_DATA_DIR"):
        if os.environ.get(var):
            return [os.environ[var]]
    return ["~/.qwen"]


def _count(um: dict[str, Any], name: str) -> int | None:
    v = um.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"bad {name} {v!r}")
    return v


def usage_to_tokens(um: dict[str, Any]) -> tuple[dict[str, int | None], str | None]:
    """Map a ``usageMetadata`` dict to inclusive record fields, plus a note when a rule was guessed.

    Raises ValueError when a count is not a non-negative integer.
    """
    p = _count(um, "promptTokenCount")
    c = _count(um, "candidatesTokenCount")
    t = _count(um, "thoughtsTokenCount")
    k = _count(um, "cachedContentTokenCount")
    total = _count(um, "totalTokenCount")
    note = None
    inp = p
    if k is not None and p is not None and k > p:
        inp = p + k  # exclusive form: cached was reported beside the prompt, not inside it
        note = "cached>prompt: read as exclusive (input = prompt + cached)"
    out = c
    if t is not None and t > 0:
        if c is None:
            out = t
        else:
            pp = p or 0
            inside = total is not None and total in (pp + c, (inp or 0) + c)
            extra = total is not None and total in (pp + c + t, (inp or 0) + c + t)
            if inside and t <= c:
                out = c
            elif extra:
                out = c + t
            elif t <= c:
                note = "totalTokenCount fits neither rule: thoughts read as inside candidates"
            else:
                out = c + t
                note = "thoughts exceed candidates: read as extra"
    return (
        {
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": k,
            "reasoning_tokens": t,
            "total_tokens": total,
        },
        note,
    )


class QwenCodeParser:
    """Parses one chat file. ``seen`` (hashes of uuids) is shared by all files of a run."""

    def __init__(self, ctx: SourceContext, path: str, locator: LineLocator, account: str,
                 seen: set[int]) -> None:
        self.ctx = ctx
        self.locator = locator
        self.account = account
        self.seen = seen
        # fallback project when a line has no cwd: the sanitised project folder name
        self.project_dir = os.path.basename(os.path.dirname(os.path.dirname(path))) or None

    def state(self) -> dict[str, Any] | None:
        return None

    def block(self, buf: bytes, end: int, base: int) -> Iterator[UsageRecord]:
        find = buf.find
        nxt = find(MARK, 0, end)
        has_nul = find(b"\x00", 0, end) != -1
        p = 0
        while p < end:
            e = find(b"\n", p, end)
            if nxt != -1 and nxt < e:
                if not has_nul or find(b"\x00", p, e) == -1:
                    rec = self._usage_line(buf, p, e, base)
                    if rec is not None:
                        yield rec
                else:
                    self.ctx.skip(self.locator.where(base + p), "NUL bytes")
                nxt = find(MARK, e, end)
            elif e > p and (buf[p] != 123 or buf[e - 1] != 125 or
                            (has_nul and find(b"\x00", p, e) != -1)):
                self._check_other(buf[p:e], base + p)
            p = e + 1

    def tail(self, data: bytes, base: int) -> Iterator[UsageRecord]:
        # An unterminated last line is counted only if it is complete JSON; never skipped as bad.
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(obj, dict):
            rec = self._from_obj(obj, base)
            if rec is not None:
                yield rec

    # -- internals ---------------------------------------------------------------------------
    def _check_other(self, line: bytes, offset: int) -> None:
        s = line.strip()
        if not s:
            return
        if b"\x00" in s:
            self.ctx.skip(self.locator.where(offset), "NUL bytes")
            return
        try:
            json_obj = json.loads(s)
        except UnicodeDecodeError:
            self.ctx.skip(self.locator.where(offset), "not UTF-8")
            return
        except ValueError:
            self.ctx.skip(self.locator.where(offset), "corrupt JSON")
            return
        if not isinstance(json_obj, dict):
            self.ctx.skip(self.locator.where(offset), "not a JSON object")

    def _usage_line(self, buf: bytes, s: int, e: int, base: int) -> UsageRecord | None:
        m = _HEAD.match(buf, s, e)
        if m is not None:
            typ = m[4]
            if typ in _NOT_CALLS:
                return None  # system lines (ui_telemetry …) are never API calls
            if typ == b"assistant":
                mpos = buf.find(b',"message":', m.end(), e)
                t = buf.rfind(b'},"model":"', mpos, e) if mpos != -1 else -1
                tm = _TAIL.fullmatch(buf, t, e) if t != -1 else None
                # the head must hold only scalars, and a second record start means two lines were
                # glued together by a crash: let json.loads decide
                if (tm is not None and buf.find(b"{", m.end(), mpos) == -1
                        and buf.find(b'{"uuid":"', s + 1, e) == -1):
                    try:
                        uuid = m[1].decode()
                        um = json.loads(tm[2])
                        cm = _CWD.search(buf, m.end(), mpos)
                        return self._record(uuid, m[2].decode(), m[3].decode(), tm[1].decode(),
                                            cm[1].decode() if cm else None, um, base + s)
                    except UnicodeDecodeError:
                        self.ctx.skip(self.locator.where(base + s), "not UTF-8")
                        return None
                    except ValueError as err:
                        self.ctx.skip(self.locator.where(base + s), str(err))
                        return None
        line = buf[s:e]
        try:
            obj = json.loads(line)
        except UnicodeDecodeError:
            self.ctx.skip(self.locator.where(base + s), "not UTF-8")
            return None
        except ValueError:
            self.ctx.skip(self.locator.where(base + s), "corrupt JSON")
            return None
        if not isinstance(obj, dict):
            self.ctx.skip(self.locator.where(base + s), "not a JSON object")
            return None
        return self._from_obj(obj, base + s)

    def _from_obj(self, obj: dict[str, Any], offset: int) -> UsageRecord | None:
        um = obj.get("usageMetadata")
        if obj.get("type") != "assistant" or not isinstance(um, dict):
            return None
        uuid, session, ts, model, cwd = (obj.get(k) for k in ("uuid", "sessionId", "timestamp",
                                                              "model", "cwd"))
        if not isinstance(uuid, str) or not uuid or not isinstance(ts, str):
            self.ctx.skip(self.locator.where(offset), "assistant line without uuid or timestamp")
            return None
        try:
            return self._record(uuid, session if isinstance(session, str) else "", ts,
                                model if isinstance(model, str) else "",
                                cwd if isinstance(cwd, str) else None, um, offset)
        except ValueError as err:
            self.ctx.skip(self.locator.where(offset), str(err))
            return None

    def _record(self, uuid: str, session: str, ts: str, model: str, cwd: str | None,
                um: Any, offset: int) -> UsageRecord | None:
        h = hash(uuid)
        if h in self.seen:
            return None  # a /branch fork copies earlier lines verbatim: each API call counts once
        if not isinstance(um, dict):
            raise ValueError("usageMetadata is not an object")
        tokens, note = usage_to_tokens(um)
        try:
            start: datetime = parse_timestamp(ts)
        except ValueError:
            raise ValueError(f"bad timestamp {ts[:40]!r}") from None
        self.seen.add(h)
        return UsageRecord(
            key=uuid,
            start=start,
            provider="qwen",
            model=model or None,
            account=self.account,
            project=cwd or self.project_dir,
            session=session or None,
            requests=1,
            details={"note": note} if note else {},
            **tokens,
        )


class QwenCodeSource(Source):
    """Qwen Code CLI chat recordings: one record per assistant API call."""

    id = "qwen-code"
    provider = "qwen"
    kind = "log"
    description = "Qwen Code chat logs (projects/*/chats/*.jsonl), read incrementally"

    @dataclass
    class Settings:
        roots: list[str] = field(
            default_factory=default_roots,
            metadata={"help": "Qwen Code data dirs holding projects/*/chats/*.jsonl "
                              "(default $QWEN_RUNTIME_DIR, else $QWEN_DATA_DIR, else ~/.qwen)"},
        )

    def _files(self) -> list[str]:
        return expand_paths(os.path.join(r, "projects", "*", "chats", "*.jsonl") for r in self.settings.roots)

    def available(self) -> str | None:
        if self._files():
            return None
        where = ", ".join(os.path.join(r, "projects/*/chats/*.jsonl") for r in self.settings.roots)
        return f"no log files at {where}"

    def fetch(self, window: Window, cursor: Any) -> Iterator[UsageRecord | Cursor]:
        account = self.ctx.machine_id
        seen: set[int] = set()

        def make(path: str, start: int, state: dict[str, Any] | None, locator: LineLocator) -> QwenCodeParser:
            return QwenCodeParser(self.ctx, path, locator, account, seen)

        yield from ingest(self.ctx, cursor, self._files(), make, window)
