"""Built-in plugin ``qwencloud``: QwenCloud bills and quotas through the official ``qwencloud`` CLI.

Sources:

- ``qwencloud`` (ledger): pay-as-you-go bills per day and model (billed USD, input and output tokens
  merged into ``total_tokens`` as the CLI reports them), free-tier, coding-plan and token-plan
  quota snapshots.
- ``qwencloud-logs`` (log, opt-in): per-request logs of the last 14 days with input/output tokens.
"""

from __future__ import annotations

from typing import Any

from tokenmeter import hookimpl

from .source import QwenCloudLogsSource, QwenCloudSource

__all__ = ["QwenCloudLogsSource", "QwenCloudSource", "register_sources"]


@hookimpl
def register_sources(register: Any) -> None:
    register(QwenCloudSource)
    register(QwenCloudLogsSource)
