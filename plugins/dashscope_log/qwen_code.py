"""Qwen Code chat logs: ``<root>/projects/<project>/chats/<sessionId>.jsonl``.

One record per ``assistant`` line carrying ``usageMetadata``; key = ``uuid``, project = ``cwd``,
session = ``sessionId``. Token rules are in the package docstring (``usage_to_tokens``).

Speed: most bytes are message text. Lines are found with ``bytes.find`` (memchr) and only lines
containing ``"usageMetadata"`` are looked at closely. For those the fast path matches the short
top-level fields at the start of the line (uuid, parentUuid, sessionId, timestamp, type, cwd, and
the model where Qwen Code writes it) and at the end (usageMetadata, after the model when the model
follows the message, trailing scalars) with anchored byte regexes; the message in between is not
parsed. Anything that does not fit that exact shape goes to ``json.loads`` of the
whole line; a line that fails both is counted as skipped (a partial line glued to the next record
by a crash is counted and the record after it recovered). Other lines only get a structural check
(starts with ``{``, ends with ``}``, no NUL bytes); those that fail it go to ``json.loads`` and are
counted if it fails. Non-UTF-8 bytes are detected in the fields a record uses (and in any line
``json.loads`` sees), not inside message text the fast path skips over.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tokenmeter import Cursor, Source, UsageRecord, Window

from .tail import LineLocator, expand_paths, ingest
from .tsv import MAX_TOKENS, parse_timestamp

__all__ = ["QwenCodeSource", "QwenCodeParser", "default_roots", "usage_to_tokens"]

MARK = b'"usageMetadata"'
# [^"] is enough inside JSON strings: a quote in a value is escaped, so a value with \" simply fails
# to match and goes to json.loads; captured values containing a backslash go there too.
_HEAD = re.compile(
    rb'\{"uuid":"([^"]+)","parentUuid":(?:null|"[^"]*"),"sessionId":"([^"]*)",'
    rb'"timestamp":"([^"]+)","type":"([a-z_]+)"'
)
# the same, through to the message: one regex call on the common path
_HEAD_FULL = re.compile(
    rb'\{"uuid":"([^"]+)","parentUuid":(?:null|"[^"]*"),"sessionId":"([^"]*)",'
    rb'"timestamp":"([^"]+)","type":"assistant"(?:,"subtype":"[^"]*")?(?:,"cwd":"([^"]*)")?'
    rb'(?:,"[A-Za-z_]+":(?:"[^"]*"|-?\d+|true|false|null))*,"message":'
)
_SCALARS = rb'(?:,"[A-Za-z_]+":(?:-?\d+(?:\.\d+)?|"[^"]*"|true|false|null))*\}[ \t\r]*'
_USAGE_STD = (rb'"usageMetadata":\{"promptTokenCount":(\d+),"candidatesTokenCount":(\d+)'
              rb'(?:,"thoughtsTokenCount":(\d+))?,"totalTokenCount":(\d+),"cachedContentTokenCount":(\d+)\}')
_USAGE = rb'"usageMetadata":(\{[^{}]*\})'
# model after the message
_TAIL_STD = re.compile(rb'\},"model":"([^"]*)",' + _USAGE_STD + _SCALARS)
_TAIL = re.compile(rb'\},"model":"([^"]*)",' + _USAGE + _SCALARS)
# Qwen Code's own order (recordAssistantTurn): the model among the short fields, usage after the message
_UTAIL_STD = re.compile(rb'\},' + _USAGE_STD + _SCALARS)
_UTAIL = re.compile(rb'\},' + _USAGE + _SCALARS)
# in the short fields a value cannot hold a quote, so these can only match keys
_HEAD_MODEL = re.compile(rb',"model":"([^"]*)"')
_HEAD_CWD = re.compile(rb',"cwd":"([^"]*)"')
_BAD_JSON = (ValueError, RecursionError)  # RecursionError: absurdly deep nesting in a garbage line
_NOT_CALLS = (b"user", b"system", b"tool_result")

# (uuid, start, model, project, session, input, output, cache_read, reasoning, total, note)
Row = tuple[Any, ...]


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


def _tokens(p: int | None, c: int | None, t: int | None, k: int | None,
            total: int | None) -> tuple[int | None, int | None, str | None]:
    """-> (input_tokens, output_tokens, note); the rules are in the package docstring."""
    if max(p or 0, c or 0, t or 0, k or 0, total or 0) > MAX_TOKENS:
        raise ValueError("token count over 10^12")
    note = None
    inp = p
    if k is not None and p is not None and k > p:
        inp = p + k  # exclusive form: cached was reported beside the prompt, not inside it
        note = "cached>prompt: read as exclusive (input = prompt + cached)"
    out = c
    if t:
        if c is None:
            out = t
        else:
            pp = p or 0
            ii = inp or 0
            if total is not None and (total == pp + c or total == ii + c) and t <= c:
                pass  # thoughts inside candidates
            elif total is not None and (total == pp + c + t or total == ii + c + t):
                out = c + t
            elif t <= c:
                note = "totalTokenCount fits neither rule: thoughts read as inside candidates"
            else:
                out = c + t
                note = "thoughts exceed candidates: read as extra"
    return inp, out, note


def usage_to_tokens(um: dict[str, Any]) -> tuple[dict[str, int | None], str | None]:
    """Map a ``usageMetadata`` dict to inclusive record fields, plus a note when a rule was guessed.

    Raises ValueError when a count is not a non-negative integer.
    """
    p, c, t, k, total = (_count(um, n) for n in ("promptTokenCount", "candidatesTokenCount",
                                                 "thoughtsTokenCount", "cachedContentTokenCount",
                                                 "totalTokenCount"))
    inp, out, note = _tokens(p, c, t, k, total)
    return ({"input_tokens": inp, "output_tokens": out, "cache_read_tokens": k, "reasoning_tokens": t,
             "total_tokens": total}, note)


class QwenCodeParser:
    """Parses one chat file into rows (runs in a worker process on big cold reads)."""

    def __init__(self, path: str, start: int, state: dict[str, Any] | None, opts: Any = None) -> None:
        self.locator = LineLocator(path)
        self.skips: list[tuple[str, str]] = []
        # fallback project when a line has no cwd: the sanitised project folder name
        self.project_dir = os.path.basename(os.path.dirname(os.path.dirname(path))) or None

    def state(self) -> dict[str, Any] | None:
        return None

    def _skip(self, offset: int, reason: str) -> None:
        self.skips.append((self.locator.where(offset), reason))

    def block(self, buf: bytes, end: int, base: int) -> list[Row]:
        rows: list[Row] = []
        find = buf.find
        nxt = find(MARK, 0, end)
        has_nul = find(b"\x00", 0, end) != -1
        p = 0
        while p < end:
            e = find(b"\n", p, end)
            if nxt != -1 and nxt < e:
                if not has_nul or find(b"\x00", p, e) == -1:
                    row = self._usage_line(buf, p, e, base)
                    if row is not None:
                        rows.append(row)
                else:
                    self._skip(base + p, "NUL bytes")
                nxt = find(MARK, e, end)
            elif e > p and (buf[p] != 123 or buf[e - 1] != 125 or (has_nul and find(b"\x00", p, e) != -1)):
                self._check_other(buf[p:e], base + p)  # not "{...}": is it JSON at all?
            p = e + 1
        return rows

    def tail(self, data: bytes, base: int) -> list[Row]:
        # An unterminated last line is counted only if it is complete JSON; never skipped as bad.
        try:
            obj = json.loads(data)
        except _BAD_JSON:
            return []
        row = self._from_obj(obj, base) if isinstance(obj, dict) else None
        return [row] if row is not None else []

    # -- internals ---------------------------------------------------------------------------
    def _check_other(self, line: bytes, offset: int) -> None:
        s = line.strip()
        if not s:
            return
        if b"\x00" in s:
            self._skip(offset, "NUL bytes")
            return
        try:
            obj = json.loads(s)
        except UnicodeDecodeError:
            self._skip(offset, "not UTF-8")
            return
        except _BAD_JSON:
            self._skip(offset, "corrupt JSON")
            return
        if not isinstance(obj, dict):
            self._skip(offset, "not a JSON object")

    def _usage_line(self, buf: bytes, s: int, e: int, base: int) -> Row | None:
        m = _HEAD_FULL.match(buf, s, e)
        if m is not None:
            row = self._fast(buf, s, e, m, base)
            if row is not None:
                return row or None  # False: bad line, already counted
        else:
            m = _HEAD.match(buf, s, e)
            if m is not None and m[4] in _NOT_CALLS:
                # never an API call (system ui_telemetry …), unless a partial line was glued to a
                # complete one by a crash: then json.loads below fails and the record is recovered
                if buf.find(b'{"uuid":"', s + 1, e) == -1:
                    return None
        try:
            obj = json.loads(buf[s:e])
        except UnicodeDecodeError:
            self._skip(base + s, "not UTF-8")
            return None
        except _BAD_JSON:
            k = buf.rfind(b'{"uuid":"', s + 1, e)
            if k != -1:  # a partial line (crash, disk full) followed by a complete record
                self._skip(base + s, "corrupt JSON (partial line glued to the next record)")
                return self._usage_line(buf, k, e, base)
            self._skip(base + s, "corrupt JSON")
            return None
        if not isinstance(obj, dict):
            self._skip(base + s, "not a JSON object")
            return None
        return self._from_obj(obj, base + s)

    def _fast(self, buf: bytes, s: int, e: int, m: re.Match[bytes], base: int) -> Row | None | bool:
        """The usual shape, without parsing the message; None = let json.loads decide."""
        mpos = m.end()
        if buf.find(b"\\", s, mpos) != -1:
            return None  # escapes in the short fields: json.loads unescapes them
        # Not checked here, for speed: whether the message between head and tail is itself valid.
        # (A partial assistant line glued to a complete one would count as one call, once.)
        # backward searches from the end of the line: they stop near it, not at the head
        u = buf.rfind(b',"usageMetadata":{', mpos, e)
        if u == -1:
            return None
        if buf[u - 1] == 125:  # "}," : usage right after the message, the model among the short fields
            hm = _HEAD_MODEL.search(buf, s, mpos)  # (Qwen Code's own order, see recordAssistantTurn)
            tm = _UTAIL_STD.fullmatch(buf, u - 1, e) or _UTAIL.fullmatch(buf, u - 1, e)
            if hm is None or tm is None:
                return None
            model_b, usage = hm[1], tm.groups()
        else:  # the model between the message and the usage
            t = buf.rfind(b'},"model":"', mpos, u)
            tm = (_TAIL_STD.fullmatch(buf, t, e) or _TAIL.fullmatch(buf, t, e)) if t != -1 else None
            if tm is None:
                return None
            model_b, usage = tm[1], tm.groups()[1:]
        if b"\\" in model_b:
            return None  # an escape: json.loads unescapes it
        try:
            model = model_b.decode()
            if len(usage) == 5:  # the usual key order inside usageMetadata
                p_b, c_b, th, total_b, k_b = usage
                p, c, k, total = int(p_b), int(c_b), int(k_b), int(total_b)
                t_ = int(th) if th is not None else None
                inp, out, note = _tokens(p, c, t_, k, total)
            else:
                tokens, note = usage_to_tokens(json.loads(usage[0]))
                inp, out, k, t_, total = (tokens["input_tokens"], tokens["output_tokens"],
                                          tokens["cache_read_tokens"], tokens["reasoning_tokens"],
                                          tokens["total_tokens"])
            uuid, session, ts_b, cwd = m.group(1, 2, 3, 4)
            if cwd is None:  # not right after the type (e.g. Qwen Code's "provenance" comes first)
                cm = _HEAD_CWD.search(buf, s, mpos)
                cwd = cm[1] if cm is not None else None
            ts = ts_b.decode()
            try:
                start = parse_timestamp(ts)
            except ValueError:
                raise ValueError(f"bad timestamp {ts[:40]!r}") from None
            return (uuid.decode(), start, model or None, cwd.decode() if cwd else self.project_dir,
                    session.decode() or None, inp, out, k, t_, total, note)
        except UnicodeDecodeError:
            self._skip(base + s, "not UTF-8")
        except ValueError as err:
            self._skip(base + s, str(err))
        return False

    def _from_obj(self, obj: dict[str, Any], offset: int) -> Row | None:
        um = obj.get("usageMetadata")
        if obj.get("type") != "assistant" or not isinstance(um, dict):
            return None
        uuid, session, ts, model, cwd = (obj.get(k) for k in ("uuid", "sessionId", "timestamp",
                                                              "model", "cwd"))
        if not isinstance(uuid, str) or not uuid or not isinstance(ts, str):
            self._skip(offset, "assistant line without uuid or timestamp")
            return None
        try:
            tokens, note = usage_to_tokens(um)
            try:
                start = parse_timestamp(ts)
            except ValueError:
                raise ValueError(f"bad timestamp {ts[:40]!r}") from None
        except ValueError as err:
            self._skip(offset, str(err))
            return None
        return (uuid, start, model if isinstance(model, str) and model else None,
                cwd if isinstance(cwd, str) and cwd else self.project_dir,
                session if isinstance(session, str) and session else None,
                tokens["input_tokens"], tokens["output_tokens"], tokens["cache_read_tokens"],
                tokens["reasoning_tokens"], tokens["total_tokens"], note)


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
        seen: set[int] = set()  # hashes of uuids: bounded memory, forks deduplicated within a run

        def to_record(row: Row) -> UsageRecord | None:
            uuid, start, model, project, session, inp, out, cached, reasoning, total, note = row
            h = hash(uuid)
            if h in seen:
                return None  # a /branch fork copies earlier lines verbatim: each API call counts once
            seen.add(h)
            return UsageRecord(
                key=uuid,
                start=start,
                provider="qwen",
                model=model,
                account=account,
                project=project,
                session=session,
                requests=1,
                input_tokens=inp,
                output_tokens=out,
                cache_read_tokens=cached,
                reasoning_tokens=reasoning,
                total_tokens=total,
                details={"note": note} if note else {},
            )

        yield from ingest(self.ctx, cursor, self._files(), QwenCodeParser, None, to_record, window)
