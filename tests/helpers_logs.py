"""Shared helpers for the log-source tests: the benchmark's log generator, loaded as a module."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def gen_logs() -> Any:
    """benchmarks/gen_logs.py (not a package): imported once by path."""
    if "gen_logs" in sys.modules:
        return sys.modules["gen_logs"]
    spec = importlib.util.spec_from_file_location("gen_logs", ROOT / "benchmarks" / "gen_logs.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_logs"] = mod
    spec.loader.exec_module(mod)
    return mod


def qwen_line(uuid: str, session: str, prompt: int) -> str:
    """One Qwen Code assistant line with usage (the old clients' shape, no telemetry event)."""
    return json.dumps({"uuid": uuid, "parentUuid": None, "sessionId": session, "timestamp": "2026-03-03T10:00:00Z",
                       "type": "assistant", "cwd": "/w", "model": "qwen-max",
                       "message": {"role": "model", "parts": [{"text": "x"}]},
                       "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": 1,
                                         "totalTokenCount": prompt + 1, "cachedContentTokenCount": 0}})
