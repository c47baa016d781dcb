"""Local Qwen logs: the DashScope TSV usage log (``dashscope-log``) and Qwen Code chat logs (``qwen-code``).

Both are read incrementally (see ``tail``): a run reads only bytes appended since the last one.

Qwen Code: every API call once (see ``qwen_code`` for the files and ``qwen_chat`` for which
record counts: the ``api_response`` telemetry event; an ``assistant`` line only where no event
exists). Token rules (``tokens_from_counts``), the same for events, assistant lines and the ledger:

- ``input_tokens = promptTokenCount`` and ``cache_read_tokens = cachedContentTokenCount``: the
  prompt already includes the cached part (OpenAI ``prompt_tokens_details.cached_tokens``).
  If ``cached > prompt`` the backend used the *exclusive* form: ``input = prompt + cached``.
- ``reasoning_tokens = thoughtsTokenCount`` (None on old records that lack the key). Whether
  thoughts are inside ``candidatesTokenCount`` is decided per record from ``totalTokenCount``:
  ``total == prompt + candidates`` -> inside (``output = candidates``; thoughts beyond that are an
  estimate: reasoning None); ``total == prompt + candidates + thoughts`` -> extra
  (``output = candidates + thoughts``); neither -> inside when thoughts <= candidates, else extra,
  with a note in ``details``.
- Only a total reported -> input/output/reasoning None (counted, unpriced).
- ``total_tokens = totalTokenCount`` as reported.

DashScope TSV rules: each data line is one call (``requests=1``), provider from its column, cost is
``logged`` USD (the writer's flat-rate figure); ``?`` means unknown (no model; provider ``qwen``);
``qwen-usage.tsv`` and ``qwen-vision-usage.tsv`` are read by default; keys are content-derived so
re-reads replace rows (see ``tsv``). Both sources put
``ctx.machine_id`` in ``account``.
"""

from __future__ import annotations

from typing import Any

from tokenmeter import hookimpl

from .qwen_code import QwenCodeSource
from .tsv import DashscopeLogSource

__all__ = ["DashscopeLogSource", "QwenCodeSource", "register_sources"]


@hookimpl
def register_sources(register: Any) -> None:
    register(DashscopeLogSource)
    register(QwenCodeSource)
