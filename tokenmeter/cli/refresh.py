"""Bringing the database up to date before a report (DESIGN §6, "Which sources run")."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from ..errors import StoreError
from ..fetch import run_fetch
from ..output import safe_text
from ..plugin_manager import get_sources
from ..store import Store
from .common import Env

BUSY_WAIT = 2.0  # seconds each try waits for another writer's lock
BUSY_BACKOFF = (0.25, 0.5, 1.0, 2.0)  # pauses between the tries (bounded: ~14 s at worst)


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
    if store.read_only:
        click.echo("tokenmeter: note: the database is read-only; showing the data stored so far", err=True)
        return
    try:
        # a report should not sit behind a long fetch: wait briefly for the lock, retry a few times
        with store.busy_timeout(BUSY_WAIT):
            results = run_fetch(store, config, [], chosen)
            for delay in BUSY_BACKOFF:
                busy = [r.source for r in results if r.retryable]
                if not busy:
                    break
                time.sleep(delay)
                retried = {r.source: r for r in run_fetch(store, config, busy, chosen)}
                results = [retried.get(r.source, r) for r in results]
    except StoreError as exc:  # a full disk: report what is stored
        click.echo(f"tokenmeter: warning: could not refresh: {safe_text(str(exc))}", err=True)
        return
    for r in results:
        if r.retryable:
            click.echo(f"tokenmeter: note: {safe_text(r.source)} not refreshed: another tokenmeter run is "
                       "writing to the database; showing the data stored so far", err=True)
        elif r.status == "error":
            click.echo(f"tokenmeter: warning: could not refresh {safe_text(r.message)}", err=True)
