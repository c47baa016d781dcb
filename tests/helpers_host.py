"""Shared helpers for the host's own tests: records, fake sources, test-only plugins, CLI runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from click.testing import CliRunner, Result

from tokenmeter import Cursor, Source, UsageRecord, hookimpl
from tokenmeter.plugin_manager import pm

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def rec(key: str = "k1", **kw: Any) -> UsageRecord:
    """A valid record with sensible defaults; override anything."""
    values: dict[str, Any] = {"start": T0, "provider": "qwen", "model": "qwen-plus", "requests": 1,
                              "input_tokens": 100, "output_tokens": 10}
    values.update(kw)
    if isinstance(values.get("cost"), str):
        values["cost"] = Decimal(values["cost"])
    if values.get("cost") is not None:
        values.setdefault("currency", "USD")
        values.setdefault("cost_kind", "billed")
    return UsageRecord(key=key, **values)


def make_source(
    sid: str,
    items: Iterable[Any] | Callable[..., Iterable[Any]] = (),
    *,
    provider: str = "qwen",
    kind: str = "log",
    available: str | None = None,
    settings: type | None = None,
) -> type[Source]:
    """A Source class whose fetch yields ``items`` (or calls ``items(self, window, cursor)``)."""

    def fetch(self: Source, window: Any, cursor: Mapping[str, Any]) -> Any:
        if callable(items):
            yield from items(self, window, cursor)
        else:
            yield from items

    attrs: dict[str, Any] = {"id": sid, "provider": provider, "kind": kind, "fetch": fetch,
                             "available": lambda self: available}
    if settings is not None:
        attrs["Settings"] = settings
    return type(f"Fake_{sid.replace('-', '_')}", (Source,), attrs)


class FakePlugin:
    """A test-only plugin object: ``pm.register(FakePlugin([Src]), name="fake-plugin")``."""

    def __init__(self, sources: Sequence[type[Source]] = ()) -> None:
        self.sources = list(sources)

    @hookimpl
    def register_sources(self, register: Callable[[type[Any]], None]) -> None:
        for s in self.sources:
            register(s)


def register(*sources: type[Source], name: str = "fake-plugin") -> FakePlugin:
    """Register a test-only plugin providing ``sources`` (the conftest resets the manager)."""
    plugin = FakePlugin(list(sources))
    pm.register(plugin, name=name)
    return plugin


def cli_run(args: Sequence[str], env: Mapping[str, str] | None = None) -> Result:
    """Run the tokenmeter CLI in-process. No installed plugins unless the test loads them."""
    from tokenmeter.cli import cli

    full_env = {"TOKENMETER_LOAD_PLUGINS": ""}
    full_env.update(env or {})
    return CliRunner().invoke(cli, list(args), env=full_env, catch_exceptions=False)


def cli_json(args: Sequence[str], env: Mapping[str, str] | None = None) -> Any:
    result = cli_run(args, env)
    assert result.exit_code == 0, (result.exit_code, result.output)
    return json.loads(result.stdout)


__all__ = ["T0", "Cursor", "FakePlugin", "cli_json", "cli_run", "make_source", "rec", "register"]
