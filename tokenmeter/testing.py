"""Test kit for tokenmeter plugins, and a pytest plugin you opt in to.

Its fixtures load where a ``conftest.py`` says ``pytest_plugins = ["tokenmeter.testing"]``; it is
not registered with pytest for every session (tox's ``tox.pytest`` is opt-in the same way), so
installing tokenmeter never changes anyone else's test run. The functions work without that line.

- ``fake_context(source_id, now=..., env=..., transport=...)`` builds a ``SourceContext`` whose
  clock is fixed and whose HTTP client uses an ``httpx.MockTransport`` handler if given.
- ``collect(SourceClass, settings=..., ctx=..., window=..., cursor=...)`` runs ``fetch`` without a
  database and returns the records, snapshots and last cursor.
- ``run_source(...)`` runs a source through the real host (settings, store, cursor) against a
  temporary database and returns the stored rows.
- ``SourceRunner`` does the same and returns a ``HostRun``: the run's status, message and counts,
  the stored rows, snapshots and cursor. Calling it again reuses the database (and the cursor).
- ``check_records(records)`` asserts the record contract.

Fixtures: ``tokenmeter_env`` (temporary user dirs, config and database, plugins as installed),
``fixed_now``, ``source_runner`` (a ``SourceRunner`` on a temporary database).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .records import COUNT_FIELDS, Cursor, QuotaSnapshot, UsageRecord
from .sources import Source, SourceContext, Window

__all__ = [
    "FIXED_NOW",
    "Collected",
    "HostRun",
    "SourceRunner",
    "check_records",
    "collect",
    "fake_context",
    "fixed_now",
    "run_source",
    "source_runner",
    "tokenmeter_env",
]

FIXED_NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def fake_context(
    source_id: str = "test",
    *,
    now: datetime = FIXED_NOW,
    env: Mapping[str, str] | None = None,
    handler: Callable[[Any], Any] | None = None,
    timezone: Any = UTC,
    machine_id: str = "test-machine",
    sleep: Callable[[float], None] | None = None,
) -> SourceContext:
    """A ``SourceContext`` with a fixed clock, its own env mapping and an optional mock HTTP handler.

    ``handler`` is an ``httpx.MockTransport`` handler (request -> response); the host's retry
    layer still wraps it, with ``sleep`` (default: no waiting) in place of ``time.sleep``.
    """

    def factory() -> Any:
        import httpx

        from .http import make_client

        transport = httpx.MockTransport(handler) if handler is not None else None
        return make_client(transport=transport, sleep=sleep or (lambda s: None))

    return SourceContext(
        source_id,
        now=now,
        timezone=timezone,
        machine_id=machine_id,
        http_factory=factory,
        env=dict(env or {}),
    )


@dataclass
class Collected:
    records: list[UsageRecord] = field(default_factory=list)
    snapshots: list[QuotaSnapshot] = field(default_factory=list)
    cursor: Mapping[str, Any] | None = None
    ctx: SourceContext | None = None


def collect(
    source_cls: type[Source],
    settings: Any = None,
    *,
    ctx: SourceContext | None = None,
    window: Window | None = None,
    cursor: Mapping[str, Any] | None = None,
) -> Collected:
    """Run ``source_cls.fetch`` and gather what it yields (no database involved)."""
    ctx = ctx or fake_context(source_cls.id)
    if settings is None:
        settings = source_cls.Settings()
    elif isinstance(settings, Mapping):
        settings = source_cls.Settings(**settings)
    window = window or Window(start=None, end=ctx.now())
    out = Collected(ctx=ctx)
    source = source_cls(settings, ctx)
    for item in source.fetch(window, dict(cursor or {})):
        if isinstance(item, UsageRecord):
            out.records.append(item)
        elif isinstance(item, QuotaSnapshot):
            out.snapshots.append(item)
        elif isinstance(item, Cursor):
            json.dumps(item.state)  # a cursor must be JSON
            out.cursor = item.state
        else:
            raise AssertionError(f"fetch yielded {item!r}; expected UsageRecord, QuotaSnapshot or Cursor")
    return out


def check_records(records: Iterable[UsageRecord | QuotaSnapshot]) -> None:
    """Assert the record contract: types, aware times, inclusive tokens, unique keys, JSON details."""
    seen: set[tuple[str | None, str]] = set()
    for rec in records:
        if isinstance(rec, QuotaSnapshot):
            json.dumps(dict(rec.details), default=str)
            continue
        assert isinstance(rec, UsageRecord), f"not a UsageRecord: {rec!r}"
        # re-run validation: a record built with object.__setattr__ tricks must still pass
        UsageRecord(**{f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)})
        ident = (rec.account, rec.key)
        assert ident not in seen, f"duplicate key {rec.key!r} for account {rec.account!r}"
        seen.add(ident)
        for name in COUNT_FIELDS:
            assert getattr(rec, name) is None or getattr(rec, name) >= 0
        if rec.cost is not None:
            assert rec.cost_kind in ("billed", "logged") and rec.currency
        json.dumps(dict(rec.details), default=str)


def run_source(
    source_cls: type[Source],
    settings: Mapping[str, Any] | None = None,
    *,
    db_path: str | Path,
    now: datetime = FIXED_NOW,
    env: Mapping[str, str] | None = None,
    handler: Callable[[Any], Any] | None = None,
    window: Window | None = None,
) -> list[dict[str, Any]]:
    """Run a source through the real host (settings parsing, store, cursor) and return usage rows."""
    from .fetch import run_one
    from .store import Store

    store = Store.open(db_path)
    try:
        ctx = fake_context(source_cls.id, now=now, env=env, handler=handler)
        run_one(store, source_cls, dict(settings or {}), ctx=ctx, window=window)
        return store.usage_rows(source=source_cls.id)
    finally:
        store.close()


@dataclass
class HostRun:
    """What one ``SourceRunner`` call did: the host's result and what the database now holds.

    ``status`` is ``ok`` or ``error``; ``message`` is the one-line error the user would see.
    ``rows`` are every stored usage row of the source (costs as ``Decimal``, times as ISO text),
    ``snapshots`` its stored quota snapshots, ``cursor`` the cursor the host saved.
    """

    status: str
    message: str
    exit_code: int
    new: int
    updated: int
    unchanged: int
    skipped_lines: int
    skip_examples: list[str]
    warnings: list[str]
    rows: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    cursor: dict[str, Any]


class SourceRunner:
    """Run sources through the real host against one database; each call returns a ``HostRun``."""

    def __init__(self, db_path: str | Path, *, now: datetime = FIXED_NOW) -> None:
        self.db_path = Path(db_path)
        self.now = now

    def __call__(
        self,
        source_cls: type[Source],
        settings: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
        env: Mapping[str, str] | None = None,
        handler: Callable[[Any], Any] | None = None,
        window: Window | None = None,
    ) -> HostRun:
        """Run ``source_cls`` with ``settings`` (a ``[sources.<id>]`` table as a dict)."""
        from .fetch import make_pricer, run_one
        from .store import Store

        store = Store.open(self.db_path)
        try:
            ctx = fake_context(source_cls.id, now=now or self.now, env=env, handler=handler)
            result = run_one(store, source_cls, dict(settings or {}), ctx=ctx, window=window,
                             pricer=make_pricer(None))
            snapshots = [s for s in store.snapshots(latest=False) if s["source"] == source_cls.id]
            return HostRun(
                status=result.status, message=result.message, exit_code=result.exit_code,
                new=result.new, updated=result.updated, unchanged=result.unchanged,
                skipped_lines=result.skipped_lines, skip_examples=list(result.skip_examples),
                warnings=list(result.warnings), rows=store.usage_rows(source=source_cls.id),
                snapshots=snapshots, cursor=store.get_cursor(source_cls.id),
            )
        finally:
            store.close()


@pytest.fixture
def source_runner(tmp_path: Path) -> SourceRunner:
    """A ``SourceRunner`` on a fresh temporary database, with the clock at ``FIXED_NOW``."""
    return SourceRunner(tmp_path / "source-runner.db")


@pytest.fixture
def fixed_now() -> datetime:
    """The fixed "now" the test kit uses: 2026-03-15 12:00 UTC."""
    return FIXED_NOW


@pytest.fixture
def tokenmeter_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config, data dir and database at a temporary folder; returns that folder."""
    home = tmp_path / "tokenmeter-home"
    home.mkdir()
    monkeypatch.setenv("TOKENMETER_HOME", str(home))
    monkeypatch.setenv("TOKENMETER_DB", str(home / "tokenmeter.db"))
    monkeypatch.delenv("TOKENMETER_CONFIG", raising=False)  # TOKENMETER_HOME/config.toml, if written
    return home
