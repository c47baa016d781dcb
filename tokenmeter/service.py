"""The one façade the CLI and the Python API both call: reports, budgets, forecasts, quotas,
reconciliation, the dashboard, metrics, fetches, sources and prices.

Every function here takes what it reads (a store, the config, "now") and returns plain results;
none opens a database or prints (notes go to a ``say`` callback). ``Environment`` is the one way to
load a config and open a store; the CLI's ``Env`` and ``tokenmeter.open()`` are both built on it.

What a read refreshes first is decided once, in ``prepare``: log sources are re-read (cheap,
incremental) when the caller asks for it, ledgers only with ``refresh="all"`` or when stale, and
the report rollup is always brought up to date, because the queries read it as it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .config import Config, db_path, fixed_now, load_config, parse_timezone
from .errors import ConfigError, SourceDataError, StoreError, UsageError
from .periods import Period, resolve_period
from .reports import ORDERS, Filters, Report, parse_group_by, reconcile_report, usage_report
from .store import Store, UsageStore, open_store

if TYPE_CHECKING:
    from .budgets import BudgetStatus
    from .fetch import SourceResult
    from .metrics import Figures
    from .sources import Source, SourceContext, Window

__all__ = [
    "Environment", "Refresh", "ReportQuery", "alerts", "budgets", "dashboard", "default_group_by", "demo",
    "demo_config", "export_rows", "fetch", "forecast", "metrics", "period", "pinned_now", "prepare", "prices",
    "quota_rows", "quotas", "reconcile", "refresh_sources", "report", "report_query", "reprice", "source_rows",
    "utcnow", "zone",
]

Refresh = Literal["none", "logs", "all"]
Say = Callable[[str], None]

BUSY_WAIT = 2.0  # seconds each try waits for another writer's lock
BUSY_BACKOFF = (0.25, 0.5, 1.0, 2.0)  # pauses between the tries (bounded: ~14 s at worst)


def utcnow() -> datetime:
    """The current time (the Python API's clock: it ignores ``TOKENMETER_NOW``)."""
    return datetime.now(UTC)


def pinned_now() -> datetime:
    """``TOKENMETER_NOW`` if set (demos, tests), else the current time."""
    return fixed_now() or datetime.now(UTC)


def _silent(_: str) -> None:
    pass


# -- the environment ------------------------------------------------------------------------------

@dataclass
class Environment:
    """A config file, a database path and a clock: what every command and ``tokenmeter.open()`` needs.

    The config is loaded on first use (so ``db path`` works before a config exists); its warnings go
    to ``warn``.
    """

    config_file: str | None = None
    db: str | None = None
    clock: Callable[[], datetime] = pinned_now
    warn: Say = _silent
    given: Config | None = None  # a config already loaded (the Python API accepts one)
    _config: Config | None = field(default=None, init=False, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self.given or load_config(self.config_file)
            if self.given is None:
                for w in self._config.warnings:
                    self.warn(w)
        return self._config

    @property
    def db_path(self) -> str:
        return str(db_path(self.db, self.config))

    def open_store(self) -> Store:
        return open_store(self.db_path)

    def now(self) -> datetime:
        return self.clock()

    def timezone(self, name: str | None) -> tzinfo:
        return zone(self.config, name)


def zone(config: Config, name: str | None) -> tzinfo:
    """``--tz NAME`` if given, else the config's zone (else the system's)."""
    return parse_timezone(name) if name else config.timezone


def period(config: Config, now: datetime, *, preset: str | None = None, date_from: str | None = None,
           date_to: str | None = None, days: int | None = None, tz: str | None = None) -> Period:
    """The period a command names, in its time zone."""
    return resolve_period(now, zone(config, tz), preset=preset, date_from=date_from, date_to=date_to, days=days)


# -- refreshing before a read ---------------------------------------------------------------------

def prepare(store: UsageStore, config: Config, *, refresh: Refresh = "none", say: Say = _silent) -> None:
    """Bring the store up to date before a read: sources first (if asked), then the rollup."""
    if refresh != "none":
        refresh_sources(store, config, everything=refresh == "all", say=say)
    store.refresh_rollup()  # the queries read the rollup as it is (after fetch, merge, reprice)


def _stale(store: UsageStore, source: str, max_age: int | None) -> bool:
    if max_age is None:
        return False
    state = store.source_states().get(source) or {}
    last = state.get("last_success")
    if not last:
        return True
    when = datetime.fromisoformat(last.replace("Z", "+00:00"))
    return (datetime.now(UTC) - when).total_seconds() > max_age


def refresh_sources(store: UsageStore, config: Config, *, everything: bool = False, say: Say = _silent) -> None:
    """Log sources: cheap incremental read. Ledger sources: only when ``everything`` or stale.

    Notes (read-only database, another writer, a failed source) go to ``say``; the read goes on
    with the data stored so far.
    """
    from .fetch import run_fetch
    from .output import safe_text
    from .plugin_manager import get_sources

    chosen = {}
    for sid, cls in get_sources().items():
        if not config.source_enabled(sid):
            continue
        if cls.kind == "log" or everything or _stale(store, sid, config.refresh_after):
            chosen[sid] = cls
    if not chosen:
        return
    if store.read_only:
        say("tokenmeter: note: the database is read-only; showing the data stored so far")
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
        say(f"tokenmeter: warning: could not refresh: {safe_text(str(exc))}")
        return
    for r in results:
        if r.retryable:
            say(f"tokenmeter: note: {safe_text(r.source)} not refreshed: another tokenmeter run is "
                "writing to the database; showing the data stored so far")
        elif r.status == "error":
            say(f"tokenmeter: warning: could not refresh {safe_text(r.message)}")


# -- reports --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportQuery:
    """A checked report request: period, grouping, filters, cost mode."""

    period: Period
    by: list[str]
    filters: Filters = field(default_factory=Filters)
    cost: str = "auto"
    order: str = "asc"


def default_group_by(p: Period) -> list[str]:
    """Without --by: one day is broken down by model, a longer period by day."""
    return ["model"] if p.start is not None and p.start == p.end else ["day"]


def report_query(
    config: Config,
    now: datetime,
    *,
    preset: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    days: int | None = None,
    by: str | Sequence[str] | None = None,
    filters: Filters | None = None,
    tz: str | None = None,
    cost: str = "auto",
    breakdown: bool = False,
    order: str = "asc",
) -> ReportQuery:
    """Resolve and check a report request before any database is touched; ``by=None``: the default.

    ``breakdown`` adds a per-model split inside each group (ccusage's ``--breakdown``); ``order``
    is ``asc`` or ``desc`` (see ``reports.usage_report``).
    """
    p = period(config, now, preset=preset, date_from=date_from, date_to=date_to, days=days, tz=tz)
    dims = parse_group_by(by) if by is not None else default_group_by(p)
    if breakdown and "model" not in dims:
        dims.append("model")
    if order not in ORDERS:
        raise UsageError(f"--order {order!r}: use asc or desc")
    return ReportQuery(p, dims, filters or Filters(), cost, order)


def report(store: UsageStore, config: Config, query: ReportQuery, *, refresh: Refresh = "none",
           say: Say = _silent) -> Report:
    """Usage and cost for ``query`` (``reports.usage_report``), the store refreshed first."""
    prepare(store, config, refresh=refresh, say=say)
    return usage_report(store, query.period, by=query.by, filters=query.filters, cost=query.cost,
                        order=query.order)


def reconcile(store: UsageStore, config: Config, p: Period, filters: Filters) -> list[dict[str, Any]]:
    """Billed vs logged vs estimated per day × model, with the log-minus-estimate difference."""
    prepare(store, config)
    rows = reconcile_report(store, p, filters=filters)
    for row in rows:
        # a log's own cost beside the price table's estimate of the same calls (same currency only)
        lg, e = row["logged"], row["estimated"]
        row["logged_minus_estimated"] = lg - e if lg is not None and e is not None else None
    return rows


# -- budgets, forecasts, quotas, dashboard, metrics -----------------------------------------------

def budgets(store: UsageStore, config: Config, now: datetime, tz: tzinfo) -> list[BudgetStatus]:
    """Every configured budget's status, then every provider quota's."""
    from .insights import budget_statuses

    prepare(store, config)
    return budget_statuses(store, config, now, tz)


def alerts(store: UsageStore, config: Config, statuses: Sequence[BudgetStatus], *,
           dry_run: bool = False) -> list[dict[str, Any]]:
    """Send (or with ``dry_run`` show) the alerts due for ``statuses``; what happened per alert."""
    from .config import request_deadline
    from .insights import load_channels, notify

    if not dry_run and store.read_only:
        # what was sent could not be recorded, so every run would send it again
        raise StoreError(f"database {store.path} is read-only (the file or its folder is not writable): "
                         "--notify cannot record sent alerts; use --dry-run, or run it as the database's "
                         "owner", reason="read-only")
    return notify(store, statuses, load_channels(config), dry_run=dry_run, deadline=request_deadline(config))


def forecast(store: UsageStore, config: Config, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """Month-end projection and days until each budget, credit or quota runs out."""
    from .insights import forecast_data

    prepare(store, config)
    return forecast_data(store, config, now, tz)


def quotas(store: UsageStore) -> list[dict[str, Any]]:
    """The latest quota snapshots, as stored."""
    return store.snapshots(latest=True)


def quota_rows(store: UsageStore) -> list[dict[str, Any]]:
    """The latest quota snapshots with ``used_pct`` (None when the total is unknown)."""
    rows = quotas(store)
    for r in rows:
        if r["total"] and r["used"] is not None and r["total"] > 0:
            r["used_pct"] = float(round(r["used"] / r["total"] * 100, 1))
        elif r["total"] and r["remaining"] is not None and r["total"] > 0:
            r["used_pct"] = float(round((r["total"] - r["remaining"]) / r["total"] * 100, 1))
        else:
            r["used_pct"] = None
    return rows


def dashboard(store: UsageStore, config: Config, p: Period, now: datetime) -> dict[str, Any]:
    """Everything the HTML dashboard shows for period ``p``."""
    from .insights import dashboard_data

    prepare(store, config)
    return dashboard_data(store, config, p, now)


def metrics(store: UsageStore, config: Config, now: datetime, tz: tzinfo, *, top: int,
            refresh: Refresh = "none", say: Say = _silent) -> Figures:
    """The figures ``tokenmeter metrics`` exports (the same numbers as the reports)."""
    from .metrics import gather

    prepare(store, config, refresh=refresh, say=say)
    return gather(store, config, now, tz, top=top)


# -- fetching, sources, prices --------------------------------------------------------------------

def fetch(
    store: Store,
    config: Config,
    names: Sequence[str] = (),
    installed: Mapping[str, type[Source]] | None = None,
    *,
    window: Window | None = None,
    on_progress: Callable[[SourceContext], None] | None = None,
    on_result: Callable[[SourceResult], None] | None = None,
) -> list[SourceResult]:
    """Pull from the named sources (all available ones when none are named) into ``store``."""
    from .fetch import run_fetch
    from .plugin_manager import get_sources

    return run_fetch(store, config, list(names), get_sources() if installed is None else installed,
                     window=window, on_progress=on_progress, on_result=on_result)


def source_rows(store: UsageStore, config: Config, *, check: bool = True) -> list[dict[str, Any]]:
    """Every installed source: enabled, ready or why not, last fetch, last error, settings, info."""
    from .config import build_settings, settings_help
    from .fetch import _redact, make_context
    from .plugin_manager import get_sources

    states = store.source_states()
    runs = store.last_runs()
    rows = []
    for sid, cls in get_sources().items():
        state = states.get(sid, {})
        run = runs.get(sid, {})
        row: dict[str, Any] = {
            "source": sid, "kind": cls.kind, "provider": cls.provider,
            "plugin": getattr(cls, "_tokenmeter_plugin", None),
            "enabled": config.source_enabled(sid), "status": "ready",
            "last_success": state.get("last_success"), "last_error": state.get("last_error"),
            "last_run": run.get("started_at"),
            "settings": settings_help(cls.Settings),
        }
        ctx = make_context(config, sid)
        try:
            source = cls(build_settings(cls.Settings, config.source_table(sid), f"sources.{sid}"), ctx)
            reason = source.available()
            if hasattr(source, "info"):
                row["info"] = source.info(_cursor(state))
            if reason:
                row["status"] = f"not ready: {reason}"
            elif check and hasattr(source, "health"):
                ok, message = source.health()
                row["status"] = "ready" if ok else f"not ready: {message}"
        except ConfigError as exc:
            row["status"] = f"config error: {exc}"
        except SourceDataError as exc:  # e.g. a log it cannot read: not ready, and why
            row["status"] = f"not ready: {exc}"
        except Exception as exc:  # a health check must not break the listing
            row["status"] = f"check failed: {type(exc).__name__}: {exc}"
        finally:
            ctx.close()
        row["status"] = _redact(row["status"], ctx.secrets)
        if not row["enabled"]:
            row["status"] = "disabled"
        rows.append(row)
    return rows


def _cursor(state: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(state.get("cursor") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def prices(config: Config, model: str | None, day: date) -> tuple[str, list[dict[str, Any]]]:
    """The price basis and the price rows for ``model`` (substring; None: all) in force on ``day``."""
    from .pricing import PriceBook

    book = PriceBook.load(overrides=config.prices or None)
    return book.basis, book.rows(model, day=day)


def reprice(store: UsageStore, config: Config) -> tuple[int, int]:
    """Re-estimate every stored row with today's prices; returns (changed, total)."""
    from .fetch import make_pricer
    from .fetch import reprice as reprice_rows

    return reprice_rows(store, make_pricer(config))


def export_rows(store: UsageStore) -> tuple[list[dict[str, Any]], list[str]]:
    """Every usage row and the export's columns (costs as decimals, no internal columns)."""
    from .store import USAGE_COLUMNS

    columns = [c for c in USAGE_COLUMNS if c not in ("cost_nanos", "est_cost_nanos", "content_hash",
                                                     "start_ts", "end_ts")]
    columns[columns.index("currency"):columns.index("currency")] = ["cost"]
    columns.insert(columns.index("est_currency"), "estimated_cost")
    return store.usage_rows(), columns


# -- the demo -------------------------------------------------------------------------------------

def demo_config(installed: Mapping[str, Any], workdir: Path, say: Say = _silent) -> Config:
    """A config running every installed source that offers demo data (``Source.demo_settings``)."""
    from .output import safe_text

    offered: dict[str, dict[str, Any]] = {}
    for sid, cls in installed.items():
        try:
            settings = cls.demo_settings(workdir / sid)
        except Exception as exc:  # one plugin's broken demo must not stop the others'
            say(safe_text(f"{sid}: no demo: {type(exc).__name__}: {exc}"))
            continue
        if settings is not None:
            offered[sid] = dict(settings)
    if not offered:
        raise ConfigError("no installed source offers demo data; check `tokenmeter plugins` for load errors")
    return Config(sources=offered)


def demo(store: Store, config: Config, installed: Mapping[str, type[Source]]) -> tuple[list[SourceResult], Report]:
    """Fetch the demo sources of ``config`` into ``store``; report all of it by provider and model."""
    results = fetch(store, config, list(config.sources), installed)
    return results, report(store, config, ReportQuery(Period(None, None, UTC), ["provider", "model"]))
