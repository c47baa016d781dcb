"""Local Qwen logs: the DashScope TSV usage log (``dashscope-log``) and Qwen Code chat logs (``qwen-code``).

Both are read incrementally (see ``tail``): a run reads only bytes appended since the last one.

Qwen Code token rules (``usageMetadata`` of an ``assistant`` line -> inclusive record fields):

- ``input_tokens = promptTokenCount`` and ``cache_read_tokens = cachedContentTokenCount``: the
  prompt already includes the cached part (OpenAI ``prompt_tokens_details.cached_tokens``).
  If ``cached > prompt`` the backend used the *exclusive* form: ``input = prompt + cached``.
- ``reasoning_tokens = thoughtsTokenCount`` (None on old records that lack the key). Whether
  thoughts are inside ``candidatesTokenCount`` is decided per record from ``totalTokenCount``:
  ``total == prompt + candidates`` -> inside (``output = candidates``);
  ``total == prompt + candidates + thoughts`` -> extra (``output = candidates + thoughts``);
  neither -> inside when thoughts <= candidates, else extra, with a note in ``details``.
- ``total_tokens = totalTokenCount`` as reported.
- ``/branch`` forks copy earlier lines into a new session file with the same ``uuid``: the key is
  the uuid, so each API call counts once (deduplicated within a run; the store replaces across runs).
- ``system`` lines (``ui_telemetry`` …) are never API calls, even when they carry token numbers.

DashScope TSV rules: each data line is one call (``requests=1``), provider from its column, cost is
``logged`` USD; keys are content-derived so re-reads replace rows (see ``tsv``). Both sources put
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
