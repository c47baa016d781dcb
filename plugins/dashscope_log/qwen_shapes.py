"""The line shapes the real Qwen Code client writes, as byte patterns for the fast paths of ``qwen_chat``.

A key in raw bytes followed by ``":`` can only be structural: inside a JSON string the quotes are
escaped. Anything that does not fit these exact shapes goes to ``json.loads``.
"""

from __future__ import annotations

import re

MARK_A = b'"usageMetadata"'
# the prefix also finds renamed events (e.g. api_response_v2), which are reported as unrecognised
MARK_T = b'"event.name":"qwen-code.api_response'
MARK_T_FULL = MARK_T + b'"'
# structural token-count keys (a quote and a colon right after: never inside a JSON string)
GENERIC_MARKS = (b'TokenCount":', b'token_count":', b'Tokens":', b'_tokens":')
SCAN_A = b'ount":'  # the end of every ...TokenCount / ..._token_count key
SCAN_B = b'okens":'  # ...Tokens / ..._tokens keys
# both at once, in one pass: a search for '":' that looks back for either ending finds the same
# places as two bytes.find scans at half their cost (most bytes are message text)
SCAN = re.compile(rb'":(?:(?<=ount":)|(?<=okens":))')
GENERIC = re.compile(rb'(?:TokenCount|token_count|Tokens|_tokens)":')

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
AGENT_KEY = b'"subagent_name":"'
