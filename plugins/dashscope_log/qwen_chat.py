"""Qwen Code chat files (``projects/<p>/chats/[archive/]<sessionId>.jsonl``): one row per API call.

What the real client writes for each API call (observed with 0.15.10 and 0.24.4):

- a ``system``/``ui_telemetry`` line whose ``uiEvent`` is a ``qwen-code.api_response`` event, for
  *every* call: main turns, subagents (``subagent_name``) and background agents such as the memory
  extractor. This is the record that counts; its key is the server's ``response_id``, which
  ``/branch`` forks and copies under another root keep verbatim. Events with a non-2xx
  ``status_code`` are errors, not usage.
- for main turns also an ``assistant`` line with ``usageMetadata`` (same numbers), written right
  after the event, with the event's uuid as ``parentUuid``. It is the same call and is not counted
  again. Old clients wrote no events: their assistant lines count, keyed by ``uuid``.

Pairing an assistant line with its event: its parent is a recent event, or a recent unpaired event
has the same token numbers. Recent events are kept (bounded) in the per-file state, so the pairing
is the same whether the two lines are read in one run or in two.

Speed: most bytes are message text. Lines are found with ``bytes.find`` (memchr). The real client's
head has fixed widths, so the type is read at a fixed offset and picks which bytes need a look:
an event's fields right after the marker, an assistant line's usage at its end; user and tool-result
lines are only checked for a glued record, and only other lines are searched whole for a token-count
key. Every line ends where the general rule (token-count key or not) would take it. The fast paths
match short top-level fields with anchored byte regexes and find event fields by key (a key in raw
bytes ``"name":`` can only be structural: inside a JSON string the quotes are escaped); anything
else goes to ``json.loads``. Lines with token counts in a shape not recognised here are reported as
unrecognised usage (never silently dropped).
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from datetime import UTC, datetime
from typing import Any

from . import qwen_shapes as S
from .lines import LineLocator
from .qwen_tokens import MAIN, tokens_from_counts, unrecognised_usage, usage_to_tokens
from .qwen_tokens import count as _count
from .qwen_tokens import parse_ts as _parse_ts
from .qwen_tokens import text as _str

__all__ = ["ChatParser", "Row"]

_fromiso = datetime.fromisoformat

# (key, start, model, project, session, input, output, cache_read, reasoning, total, note, agent)
Row = tuple[Any, ...]

RECENT = 64  # events remembered per file for pairing (main turns pair within a few lines)
KEEP = 4  # of them, kept in the cursor between runs


class ChatParser:
    """Parses one chat file into rows (runs in a worker process on big cold reads).

    State kept with the file offset: recent events for pairing, client versions seen, and the
    first unrecognised-usage position.
    """

    def __init__(self, path: str, start: int, state: dict[str, Any] | None, opts: Any = None) -> None:
        self.locator = LineLocator(path)
        self.skips: list[tuple[str, str]] = []
        self.unrecognised: list[str] = []
        # fallback project when a line has no cwd: the sanitised project folder name
        d = os.path.dirname(path)
        if os.path.basename(d) == "archive":
            d = os.path.dirname(d)
        self.project_dir = os.path.basename(os.path.dirname(d)) or None
        st = state or {}
        # recent events: uuid -> (signature, key); signature = (prompt, candidates, total)
        self.recent: dict[str, tuple[tuple[int | None, ...], str]] = {
            u: (tuple(sig), key) for u, sig, key in st.get("recent", [])}
        self.order: deque[str] = deque(self.recent)
        # events since the last assistant line: only these can still meet theirs in a later run
        self.pending = len(self.recent)
        self.versions: set[str] = set(st.get("versions", []))
        # sessions whose chat file exists: a /branch copy of their lines is not a call of its own
        self.sessions: frozenset[str] = getattr(opts, "chat_sessions", frozenset())
        self._ver_key = b""
        self._cwd_key = b""
        self._cwd_val: str | None = None
        self._vc_key = b""  # the two as the client writes them (cwd, then version): one find for both

    def state(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.recent and self.pending:
            # an assistant line follows its event within milliseconds: only the events after the
            # last assistant line are kept, so the cursor of thousands of files stays small
            keep = list(self.recent.items())[-min(self.pending, KEEP):]
            out["recent"] = [[u, list(sig), key] for u, (sig, key) in keep]
        if self.versions:
            out["versions"] = sorted(self.versions)
        return out or None

    def _skip(self, offset: int, reason: str) -> None:
        self.skips.append((self.locator.where(offset), reason))

    # -- pairing -------------------------------------------------------------------------------
    def _remember(self, uuid: str, sig: tuple[int | None, ...], key: str) -> None:
        if uuid in self.recent:
            return
        self.recent[uuid] = (sig, key)
        self.pending += 1
        order = self.order
        order.append(uuid)
        while len(order) > RECENT:
            self.recent.pop(order.popleft(), None)

    def _consume(self, uuid: str) -> bool:
        if uuid not in self.recent:
            return False
        self.pending = 0
        del self.recent[uuid]
        self.order.remove(uuid)
        return True

    def _paired(self, parent: str | None, sig: tuple[int | None, ...]) -> bool:
        """Is this assistant line the same call as a recent event? (consumes the event)"""
        self.pending = 0
        hit = self.recent.get(parent) if parent else None
        if hit is None or hit[0] != sig:
            parent = next((u for u in reversed(self.order) if self.recent[u][0] == sig), None)
        return parent is not None and self._consume(parent)

    # -- reading -------------------------------------------------------------------------------
    def block(self, buf: bytes, end: int, base: int) -> list[Row]:
        rows: list[Row] = []
        find = buf.find
        head = S.HEAD.match
        has_nul = find(b"\x00", 0, end) != -1
        p = 0
        while p < end:
            e = find(b"\n", p, end)
            if e - p < S.HEAD_MIN or (has_nul and find(b"\x00", p, e) != -1):
                row = self._plain(buf, p, e, base, True) if e > p else None
            else:
                # The real client's head has fixed widths: its type is at one of two offsets. This only
                # picks which exact match to try; every path ends where _plain would.
                c = buf[p + (S.TYPE_AT_NULL if buf[p + S.PARENT_AT] == 110 else S.TYPE_AT)]
                row = None
                if c == 115:  # "system"
                    q = find(S.MARK_T_FULL, p + S.TYPE_AT_NULL, e)
                    row = self._event_line(buf, p, e, q, base) if q != -1 else self._plain(buf, p, e, base)
                elif c == 97 and (m := head(buf, p, e)) is not None and m[5] == b"assistant":
                    # the usage near the end has a token-count key: no need to scan the message for one
                    u = buf.rfind(b',"usageMetadata":{', m.end(), e)
                    if u != -1 and find(b'ount":', u, e) != -1:
                        row = self._usage_line(buf, p, e, base, m, u)
                    else:
                        row = self._plain(buf, p, e, base)
                elif c in b"ut" and buf[e - 1] == 125 and find(b'{"uuid":"', p + 1, e) == -1 \
                        and (m := head(buf, p, e)) is not None and m[5] in S.NOT_CALLS_B:
                    pass  # never a call, token counts or not (a user line; the agent tool's result)
                else:
                    row = self._plain(buf, p, e, base, True)
            if row is not None:
                rows.append(row)
            p = e + 1
        return rows

    def _event_line(self, buf: bytes, s: int, e: int, q: int, base: int) -> Row | None:
        """A system line with the api_response marker at ``q`` (the first one from the type on)."""
        m = S.HEAD.match(buf, s, e)
        # the first marker after the head, the real client's key order: _usage_line would take _std_event
        if m is None or m[5] != b"system" or not s + S.TYPE_AT_NULL <= m.end() <= q \
                or (sm := S.EV_STD.match(buf, q, e)) is None or buf[e - 1] not in b"} \t\r" \
                or buf.find(b"\\", s, m.end()) != -1:
            return self._plain(buf, s, e, base)
        row = self._std_event(buf, s, e, m, sm, q, base)  # None: the json path, as _usage_line takes it
        return self._usage_line(buf, s, e, base) if row is None else row or None

    def _plain(self, buf: bytes, s: int, e: int, base: int, nul: bool = False) -> Row | None:
        """Any line (``nul``: it may hold NUL bytes): with a token-count key looked at closely, else checked."""
        if nul and buf.find(b"\x00", s, e) != -1:
            self._skip(base + s, "NUL bytes")
            return None
        if buf.find(S.SCAN_A, s, e) != -1 or buf.find(S.SCAN_B, s, e) != -1:
            return self._usage_line(buf, s, e, base)
        if buf[s] != 123 or buf[e - 1] != 125:
            self._check_other(buf[s:e], base + s)  # not "{...}": is it JSON at all?
        return None

    def tail(self, data: bytes, base: int) -> list[Row]:
        # An unterminated last line is counted only if it is complete JSON; never skipped as bad.
        # Pairing state is left alone: the line is read again, completed, next run.
        try:
            obj = json.loads(data)
        except S.BAD_JSON:
            return []
        if not isinstance(obj, dict):
            return []
        saved = (dict(self.recent), deque(self.order), self.pending)
        try:
            row = self._from_obj(obj, base)
        finally:
            self.recent, self.order, self.pending = saved
        return [row] if row is not None else []

    # -- internals ---------------------------------------------------------------------------
    def _check_other(self, line: bytes, offset: int, usage: bool = False) -> Row | None:
        """A line without the usual markers: valid JSON? With token counts, in a shape we know?"""
        s = line.strip()
        if not s:
            return None
        if b"\x00" in s:
            self._skip(offset, "NUL bytes")
            return None
        try:
            obj = json.loads(s)
        except UnicodeDecodeError:
            self._skip(offset, "not UTF-8")
            return None
        except S.BAD_JSON:
            self._skip(offset, "corrupt JSON")
            return None
        if not isinstance(obj, dict):
            self._skip(offset, "not a JSON object")
        elif usage:
            return self._from_obj(obj, offset)  # e.g. written with spaces after the colons
        return None

    def _check_unrecognised(self, obj: dict[str, Any], offset: int) -> None:
        if obj.get("type") in S.NOT_CALLS:
            return  # e.g. the agent tool's result sums its subagent's run: not a call
        if unrecognised_usage(obj) and len(self.unrecognised) < 3:
            self.unrecognised.append(self.locator.where(offset))

    def _usage_line(self, buf: bytes, s: int, e: int, base: int, m: re.Match[bytes] | None = None,
                    u: int = -2) -> Row | None:
        """A line with a token-count key: an assistant line, an event, or something else.

        ``m``: the line's HEAD match if taken already; ``u``: where its usage is (-1: none), if known.
        """
        if m is None:
            m = S.HEAD.match(buf, s, e)
        if m is not None:
            typ = m[5]
            if typ == b"assistant":
                parent = m[2]
                if parent is not None and self.recent and buf[e - 1] == 125 \
                        and (u if u != -2 else buf.rfind(b',"usageMetadata":{', m.end(), e)) != -1 \
                        and self._consume(parent.decode("ascii", "replace")):
                    # the assistant line right after its event: that event counted the call (a torn
                    # copy of the line never ends in "}" after its usage, so it cannot take the pairing)
                    return None
                fm = S.HEAD_FULL.match(buf, s, e)
                if fm is not None:
                    row = self._fast_assistant(buf, s, e, fm, base)
                    if row is not None:
                        return row or None  # False: bad line or not counted
            elif typ == b"system":
                q = buf.find(S.MARK_T_FULL, m.end(), e)
                if q != -1:
                    row = self._fast_event(buf, s, e, m, q, base)
                    if row is not None:
                        return row or None
                elif buf.find(S.MARK_T, m.end(), e) == -1 and not S.has_generic(buf, s, e) \
                        and buf.find(b'{"uuid":"', s + 1, e) == -1:
                    return None  # e.g. an attribution snapshot's promptCount: not token counts
            elif typ in S.NOT_CALLS_B and buf.find(b'{"uuid":"', s + 1, e) == -1:
                # never a call (a user line; the agent tool's result sums its subagent's run), unless
                # a crash glued a partial line to a complete one: then json.loads sorts it out
                return None
        try:
            obj = json.loads(buf[s:e])
        except UnicodeDecodeError:
            self._skip(base + s, "not UTF-8")
            return None
        except S.BAD_JSON:
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

    def _version(self, buf: bytes, s: int, stop: int) -> None:
        if self._ver_key and buf.find(self._ver_key, s, stop) != -1:
            return  # the version of the line before: the usual case
        vm = S.HEAD_VERSION.search(buf, s, stop)
        if vm is not None:
            self._ver_key = vm[0]
            self._vc_key = self._cwd_key + vm[0][1:] if self._cwd_key else b""
            if len(self.versions) < 32:
                self.versions.add(vm[1].decode("ascii", "replace"))

    def _fast_assistant(self, buf: bytes, s: int, e: int, m: re.Match[bytes], base: int) -> Row | None | bool:
        """The usual assistant shape, without parsing the message; None = let json.loads decide."""
        mpos = m.end()
        if buf.find(b"\\", s, mpos) != -1:
            return None  # escapes in the short fields: json.loads unescapes them
        u = buf.rfind(b',"usageMetadata":{', mpos, e)
        if u == -1:
            return None
        if buf[u - 1] == 125:  # "}," : usage right after the message, the model among the short fields
            hm = S.HEAD_MODEL.search(buf, s, mpos)
            tm = S.UTAIL_STD.fullmatch(buf, u - 1, e) or S.UTAIL.fullmatch(buf, u - 1, e)
            if hm is None or tm is None:
                return None
            model_b, usage = hm[1], tm.groups()
        else:  # the model between the message and the usage
            t = buf.rfind(b'},"model":"', mpos, u)
            tm = (S.TAIL_STD.fullmatch(buf, t, e) or S.TAIL.fullmatch(buf, t, e)) if t != -1 else None
            if tm is None:
                return None
            model_b, usage = tm[1], tm.groups()[1:]
        if b"\\" in model_b:
            return None
        if buf.find(b'"agentName":', s, mpos) != -1 or buf.find(b'"agentName":', u, e) != -1 \
                or buf.find(b'"forkedFrom":', u, e) != -1 or buf.find(b'"forkedFrom":', s, mpos) != -1:
            return None  # a sidechain line or a /branch copy: the json path reads agent and source
        self._version(buf, s, mpos)
        try:
            if len(usage) == 5:  # the usual key order inside usageMetadata
                p_b, c_b, th, total_b, k_b = usage
                sig = (int(p_b), int(c_b), int(total_b))
                um: dict[str, Any] = {"promptTokenCount": sig[0], "candidatesTokenCount": sig[1],
                                      "totalTokenCount": sig[2], "cachedContentTokenCount": int(k_b)}
                if th is not None:
                    um["thoughtsTokenCount"] = int(th)
            else:
                um = json.loads(usage[0])
                if not isinstance(um, dict):
                    return None
            uuid, parent, session, ts_b, cwd = m.group(1, 2, 3, 4, 5)
            if cwd is None:
                cm = S.HEAD_CWD.search(buf, s, mpos)
                cwd = cm[1] if cm is not None else None
            row = self._assistant(uuid.decode(), parent.decode() if parent else None, session.decode(),
                                  ts_b.decode(), model_b.decode(), cwd.decode() if cwd else None, None,
                                  um, base + s)
            return row if row is not None else False  # False: handled, not a call of its own
        except UnicodeDecodeError:
            self._skip(base + s, "not UTF-8")
        except ValueError as err:
            self._skip(base + s, str(err))
        return False

    def _fast_event(self, buf: bytes, s: int, e: int, m: re.Match[bytes], q: int, base: int) -> Row | None | bool:
        """A ui_telemetry api_response line, by regex or by key; None = let json.loads decide."""
        if buf.find(b"\\", s, m.end()) != -1 or buf[e - 1] not in b"} \t\r":
            return None
        sm = S.EV_STD.match(buf, q, e)
        if sm is not None:  # the real client's key order
            return self._std_event(buf, s, e, m, sm, q, base)
        try:
            uuid_b, _parent, session_b, line_ts = m.group(1, 2, 3, 4)
            self._version(buf, s, q)
            vals = S.event_fields(buf, q, e)  # another key order: find each field by key
            if vals is None:
                return None
            ev = {k: (int(v) if k in S.EV_INT else v.decode()) for k, v in vals.items()}
            row = self._event(uuid_b.decode(), session_b.decode(), line_ts.decode(),
                              self._cwd(buf, s, q), ev, base + s)
            return row if row is not None else False
        except UnicodeDecodeError:
            self._skip(base + s, "not UTF-8")
        except ValueError as err:
            self._skip(base + s, str(err))
        return False

    def _std_event(self, buf: bytes, s: int, e: int, m: re.Match[bytes], sm: re.Match[bytes], q: int,
                   base: int) -> Row | None | bool:
        """An event in the real client's key order: ``m`` is the head, ``sm`` the EV_STD match at ``q``."""
        try:
            uuid_b, session_b = m.group(1, 3)
            if self._vc_key and buf.find(self._vc_key, s, q) != -1:
                cwd = self._cwd_val  # the cwd and version of the line before: the usual case
            else:
                cwd = None
                self._version(buf, s, q)
            ts_b, rid_b, model_b, status_b, p_b, c_b, k_b, t_b, total_b = sm.groups()
            if status_b != b"200" and not 200 <= int(status_b) < 300:
                return False  # an error response: not usage
            pid = buf.rfind(b',"prompt_id":"', end := sm.end(), e)  # the agent is near the end
            a = buf.find(S.AGENT_KEY, pid if pid != -1 else end, e)
            agent = MAIN
            if a != -1:
                a += len(S.AGENT_KEY)
                j = buf.find(b'"', a, e)
                if j == -1 or buf.find(b"\\", a, j) != -1:
                    return None
                agent = buf[a:j].decode() or MAIN
            p, c, total, t, k = int(p_b), int(c_b), int(total_b), int(t_b), int(k_b)
            if not t and k <= p and (p or c) and len(total_b) < 13 and len(p_b) < 13 and len(c_b) < 13:
                inp, out, cached, reasoning, note = p, c, k, t, None  # what tokens_from_counts gives then
            else:
                inp, out, cached, reasoning, note = tokens_from_counts(p, c, t, k, total)
            ts = ts_b.decode()
            try:  # the usual "...Z" without parse_ts's two calls; else its rules and messages
                start = _fromiso(ts)
                start = start if start.tzinfo is UTC else _parse_ts(ts)
            except ValueError:
                start = _parse_ts(ts)
            uuid = uuid_b.decode()
            key = "r:" + rid_b.decode() if rid_b else "t:" + uuid
            self._remember(uuid, (p, c, total), key)
            return (key, start, model_b.decode() or None,
                    (cwd if cwd is not None else self._cwd(buf, s, q)) or self.project_dir,
                    session_b.decode() or None, inp, out, cached, reasoning, total, note, agent)
        except UnicodeDecodeError:
            self._skip(base + s, "not UTF-8")
        except ValueError as err:
            self._skip(base + s, str(err))
        return False

    def _cwd(self, buf: bytes, s: int, stop: int) -> str | None:
        """The line's cwd (lines of one file nearly always share it: a find, not a regex, then)."""
        if self._cwd_key and buf.find(self._cwd_key, s, stop) != -1:
            return self._cwd_val
        cm = S.HEAD_CWD.search(buf, s, stop)
        if cm is None:
            return None
        self._cwd_key, self._cwd_val = cm[0] + b",", cm[1].decode()
        self._vc_key = self._cwd_key + self._ver_key[1:] if self._ver_key else b""
        return self._cwd_val

    def _from_obj(self, obj: dict[str, Any], offset: int) -> Row | None:
        typ = obj.get("type")
        ver = obj.get("version")
        if isinstance(ver, str) and ver and len(self.versions) < 32:
            self.versions.add(ver[:40])
        if typ == "assistant" and isinstance(obj.get("usageMetadata"), dict):
            uuid, ts = obj.get("uuid"), obj.get("timestamp")
            if not isinstance(uuid, str) or not uuid or not isinstance(ts, str):
                self._skip(offset, "assistant line without uuid or timestamp")
                return None
            parent = obj.get("parentUuid")
            agent = obj.get("agentName")
            fork = obj.get("forkedFrom")
            try:
                return self._assistant(uuid, parent if isinstance(parent, str) else None,
                                       _str(obj.get("sessionId")), ts, _str(obj.get("model")),
                                       _str(obj.get("cwd")), _str(agent), obj["usageMetadata"], offset,
                                       _str(fork.get("sessionId")) if isinstance(fork, dict) else None)
            except ValueError as err:
                self._skip(offset, str(err))
                return None
        payload = obj.get("systemPayload")
        ev = payload.get("uiEvent") if isinstance(payload, dict) else None
        if typ == "system" and isinstance(ev, dict) and ev.get("event.name") == "qwen-code.api_response":
            uuid = obj.get("uuid")
            if not isinstance(uuid, str) or not uuid:
                self._skip(offset, "telemetry line without uuid")
                return None
            try:
                return self._event(uuid, _str(obj.get("sessionId")), _str(obj.get("timestamp")),
                                   _str(obj.get("cwd")), ev, offset)
            except ValueError as err:
                self._skip(offset, str(err))
                return None
        self._check_unrecognised(obj, offset)
        return None

    def _event(self, uuid: str, session: str | None, ts: str | None, cwd: str | None,
               ev: dict[str, Any], offset: int) -> Row | None:
        status = ev.get("status_code")
        if status is not None and (not isinstance(status, int) or not 200 <= status < 300):
            return None  # an error response: not usage
        when = ev.get("event.timestamp") or ts
        if not isinstance(when, str):
            raise ValueError("telemetry event without a timestamp")
        start = _parse_ts(when)
        p, c, t, k, total = (_count(ev, n) for n in ("input_token_count", "output_token_count",
                                                     "thoughts_token_count", "cached_content_token_count",
                                                     "total_token_count"))
        if p is None and c is None and total is None:  # renamed fields: never a silent zero
            if len(self.unrecognised) < 3:
                self.unrecognised.append(self.locator.where(offset))
            return None
        inp, out, cached, reasoning, note = tokens_from_counts(p, c, t, k, total)
        rid = ev.get("response_id")
        key = f"r:{rid}" if isinstance(rid, str) and rid else f"t:{uuid}"
        agent = ev.get("subagent_name")
        self._remember(uuid, (p or 0, c or 0, total or 0), key)
        return (key, start, _str(ev.get("model")), cwd or self.project_dir, session or None,
                inp, out, cached, reasoning, total, note,
                agent if isinstance(agent, str) and agent else MAIN)

    def _assistant(self, uuid: str, parent: str | None, session: str | None, ts: str, model: str | None,
                   cwd: str | None, agent: str | None, um: dict[str, Any], offset: int,
                   forked_from: str | None = None) -> Row | None:
        tokens, note = usage_to_tokens(um)
        start = _parse_ts(ts)
        # usage_to_tokens checked the counts: plain gets
        sig = (um.get("promptTokenCount") or 0, um.get("candidatesTokenCount") or 0, um.get("totalTokenCount") or 0)
        if self._paired(parent, sig):
            return None  # its api_response event already counted this call
        if forked_from is not None and forked_from in self.sessions:
            return None  # a /branch copy: the source session's file counts this call
        return (uuid, start, model or None, cwd or self.project_dir, session or None,
                tokens["input_tokens"], tokens["output_tokens"], tokens["cache_read_tokens"],
                tokens["reasoning_tokens"], tokens["total_tokens"], note, agent or MAIN)
