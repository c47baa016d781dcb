"""Bringing the database up to date before a report (DESIGN §6, "Which sources run")."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..fetch import run_fetch
from ..plugin_manager import get_sources
from ..store import Store
from .common import Env


def _stale(store: Store, source: str, max_age: int | None) -> bool:
    if max_age is None:
        return False
    state = store.source_states().get(source) or {}
    last = state.get("last_success")
    if not last:
        return True
    when = datetime.fromisoformat(last.replace("Z", "+00:00"))
    return (datetime.now(UTC) - when).total_seconds() > max_age


def refresh_before_report(env: Env, store: Store, *, everything: bool = False) -> None:
    """Log sources: cheap incremental read. Ledger sources: only with --refresh or when stale."""
    installed = get_sources()
    config = env.config
    chosen = {}
    for sid, cls in installed.items():
        if not config.source_enabled(sid):
            continue
        if cls.kind == "log" or everything or _stale(store, sid, config.refresh_after):
            chosen[sid] = cls
    if not chosen:
        return
    results = run_fetch(store, config, [], chosen)
    for r in results:
        if r.status == "error":
            click.echo(f"tokenmeter: warning: could not refresh {r.message}", err=True)
