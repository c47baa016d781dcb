"""Shared helpers for the log-source tests: the benchmark's log generator, loaded as a module."""

from __future__ import annotations

import importlib.util
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
