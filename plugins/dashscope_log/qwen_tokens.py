"""Qwen Code token rules: the client's counts -> inclusive record fields (see the package docstring)."""

from __future__ import annotations

import re
from typing import Any

from .tsv import MAX_TOKENS, parse_timestamp

__all__ = ["MAIN", "count", "parse_ts", "text", "tokens_from_counts", "unrecognised_usage", "usage_to_tokens"]

MAIN = "main"  # the agent of the main conversation's calls
_TOKEN_KEY = re.compile(
    r"(prompt|input|output|completion|candidates|total|cached|cache|thoughts|reasoning)"
    r"[_a-z]*tokens?(_?count)?$", re.IGNORECASE)


def count(d: dict[str, Any], name: str) -> int | None:
    v = d.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"bad {name} {v!r}")
    return v


def tokens_from_counts(p: int | None, c: int | None, t: int | None, k: int | None,
                       total: int | None) -> tuple[int | None, int | None, int | None, int | None, str | None]:
    """(prompt, candidates, thoughts, cached, total) -> (input, output, cache_read, reasoning, note).

    The rules are in the package docstring. A call that reports only a total (the backend sent only
    ``total_tokens``; the writer may still estimate thoughts from the text) has nothing else
    reliable: input/output/reasoning are None, so it is counted but never priced.
    """
    if max(p or 0, c or 0, t or 0, k or 0, total or 0) > MAX_TOKENS:
        raise ValueError("token count over 10^12")
    if not p and not c and total:
        return None, None, None, None, "only a total was reported: unpriced"
    note = None
    inp = p
    if k is not None and p is not None and k > p:
        inp = p + k  # exclusive form: cached was reported beside the prompt, not inside it
        note = "cached>prompt: read as exclusive (input = prompt + cached)"
    out = c
    reasoning = t
    if t:
        if c is None:
            out = t
        else:
            pp = p or 0
            ii = inp or 0
            if total is not None and (total == pp + c or total == ii + c):
                if t > c:  # the writer's own total leaves no room: the thoughts figure is an estimate
                    reasoning = None
                    note = "thoughts exceed what totalTokenCount allows: reasoning unknown"
            elif total is not None and (total == pp + c + t or total == ii + c + t):
                out = c + t
            elif t <= c:
                note = "totalTokenCount fits neither rule: thoughts read as inside candidates"
            else:
                out = c + t
                note = "thoughts exceed candidates: read as extra"
    return inp, out, k, reasoning, note


def usage_to_tokens(um: dict[str, Any]) -> tuple[dict[str, int | None], str | None]:
    """Map a ``usageMetadata`` dict to inclusive record fields, plus a note when a rule was guessed.

    Raises ValueError when a count is not a non-negative integer.
    """
    p, c, t, k, total = (count(um, n) for n in ("promptTokenCount", "candidatesTokenCount",
                                                 "thoughtsTokenCount", "cachedContentTokenCount",
                                                 "totalTokenCount"))
    inp, out, cached, reasoning, note = tokens_from_counts(p, c, t, k, total)
    return ({"input_tokens": inp, "output_tokens": out, "cache_read_tokens": cached,
             "reasoning_tokens": reasoning, "total_tokens": total}, note)


def unrecognised_usage(obj: Any, depth: int = 0) -> bool:
    """True when a parsed line carries positive token counts under keys no reader here knows."""
    if depth > 6:
        return False
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
                    and isinstance(key, str) and _TOKEN_KEY.search(key):
                return True
            if isinstance(value, dict | list) and unrecognised_usage(value, depth + 1):
                return True
    elif isinstance(obj, list):
        return any(unrecognised_usage(v, depth + 1) for v in obj[:50])
    return False


def text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def parse_ts(ts: str) -> Any:
    try:
        return parse_timestamp(ts)
    except ValueError:
        raise ValueError(f"bad timestamp {ts[:40]!r}") from None
