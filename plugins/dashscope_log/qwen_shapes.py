"""The line shapes the real Qwen Code client writes, as byte patterns for the fast paths of ``qwen_chat``.

A key in raw bytes followed by ``":`` can only be structural: inside a JSON string the quotes are
escaped. Anything that does not fit these exact shapes goes to ``json.loads``.
"""

from __future__ import annotations

import re
from typing import Any

MARK_A = b'"usageMetadata"'
# the prefix also finds renamed events (e.g. api_response_v2), which are reported as unrecognised
MARK_T = b'"event.name":"qwen-code.api_response'
MARK_T_FULL = MARK_T + b'"'
# structural token-count keys (a quote and a colon right after: never inside a JSON string)
GENERIC_MARKS = (b'TokenCount":', b'token_count":', b'Tokens":', b'_tokens":')
SCAN_A = b'ount":'  # the end of every ...TokenCount / ..._token_count key
SCAN_B = b'okens":'  # ...Tokens / ..._tokens keys

HEAD = re.compile(
    rb'\{"uuid":"([^"]+)","parentUuid":(?:null|"([^"]*)"),"sessionId":"([^"]*)",'
    rb'"timestamp":"([^"]+)","type":"([a-z_]+)"'
)
HEAD_FULL = re.compile(
    rb'\{"uuid":"([^"]+)","parentUuid":(?:null|"([^"]*)"),"sessionId":"([^"]*)",'
    rb'"timestamp":"([^"]+)","type":"assistant"(?:,"subtype":"[^"]*")?(?:,"cwd":"([^"]*)")?'
    rb'(?:,"[A-Za-z_]+":(?:"[^"]*"|-?\d+|true|false|null))*,"message":'
)
SCALARS = rb'(?:,"[A-Za-z_]+":(?:-?\d+(?:\.\d+)?|"[^"]*"|true|false|null))*\}[ \t\r]*'
USAGE_STD = (rb'"usageMetadata":\{"promptTokenCount":(\d+),"candidatesTokenCount":(\d+)'
              rb'(?:,"thoughtsTokenCount":(\d+))?,"totalTokenCount":(\d+),"cachedContentTokenCount":(\d+)\}')
USAGE = rb'"usageMetadata":(\{[^{}]*\})'
TAIL_STD = re.compile(rb'\},"model":"([^"]*)",' + USAGE_STD + SCALARS)
TAIL = re.compile(rb'\},"model":"([^"]*)",' + USAGE + SCALARS)
UTAIL_STD = re.compile(rb'\},' + USAGE_STD + SCALARS)
UTAIL = re.compile(rb'\},' + USAGE + SCALARS)
HEAD_MODEL = re.compile(rb',"model":"([^"]*)"')
HEAD_CWD = re.compile(rb',"cwd":"([^"]*)"')
HEAD_VERSION = re.compile(rb',"version":"([^"\\]{1,40})"')
INT = re.compile(rb"[ ]*(\d{1,15})[ ]*[,}]")
BAD_JSON = (ValueError, RecursionError)  # RecursionError: absurdly deep nesting in a garbage line

# event fields: (key bytes, is-int)
EV_STR = {k: f'"{k}":"'.encode() for k in ("event.timestamp", "response_id", "model", "subagent_name")}
EV_INT = {k: f'"{k}":'.encode() for k in ("status_code", "input_token_count", "output_token_count",
                                             "cached_content_token_count", "thoughts_token_count",
                                             "total_token_count")}
NOT_CALLS = ("user", "tool_result")
NOT_CALLS_B = tuple(t.encode() for t in NOT_CALLS)
EV_STD = re.compile(
    rb'"event.name":"qwen-code.api_response","event.timestamp":"([^"\\]*)","response_id":"([^"\\]*)",'
    rb'"model":"([^"\\]*)","status_code":(\d{1,4}),"duration_ms":\d+,"input_token_count":(\d{1,15}),'
    rb'"output_token_count":(\d{1,15}),"cached_content_token_count":(\d{1,15}),'
    rb'"thoughts_token_count":(\d{1,15}),"total_token_count":(\d{1,15})[,}]')
# The real client's head has fixed widths (uuids, timestamp): the type starts at one of two offsets,
# by whether parentUuid is null. Only a hint for which exact match to try.
PARENT_AT = len(b'{"uuid":"') + 36 + len(b'","parentUuid":')
TYPE_AT_NULL = PARENT_AT + len(b'null,"sessionId":"') + 36 + len(b'","timestamp":"') + 24 + len(b'","type":"')
TYPE_AT = TYPE_AT_NULL + 34  # '"' + 36 + '"' instead of null
HEAD_MIN = TYPE_AT + 3  # shorter lines take the general path
AGENT_KEY = b'"subagent_name":"'


def has_generic(buf: bytes, s: int, e: int) -> bool:
    """Any of ``GENERIC_MARKS`` in ``buf[s:e]``? (four finds: a regex of alternatives tries every byte)"""
    a, b, c, d = GENERIC_MARKS
    find = buf.find
    return find(a, s, e) != -1 or find(b, s, e) != -1 or find(c, s, e) != -1 or find(d, s, e) != -1


def event_fields(buf: bytes, q: int, e: int) -> dict[str, Any] | None:
    """Event fields found by key, in any order; None = let json.loads decide."""
    vals: dict[str, Any] = {}
    for name, key in EV_STR.items():
        i = buf.find(key, q, e)
        if i == -1:
            continue
        i += len(key)
        j = buf.find(b'"', i, e)
        if j == -1 or buf.find(b"\\", i, j) != -1:
            return None
        vals[name] = buf[i:j]
    for name, key in EV_INT.items():
        i = buf.find(key, q, e)
        if i == -1:
            continue
        im = INT.match(buf, i + len(key), e)
        if im is None:
            return None  # null, a float, a negative number: the json path decides
        vals[name] = int(im[1])
    return vals
