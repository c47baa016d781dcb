"""The store interface: every method the rest of tokenmeter calls on a database, with plain Python
arguments and results. ``Store`` (SQLite) implements it; a second backend implements the same.

Times are UTC epoch seconds (``lo``/``hi`` are half-open ``[lo, hi)`` ranges), money is integer
nano-units (10⁻⁹ of the currency) in aggregates and ``Decimal`` in rows, local days are ``date``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..batch import RecordBatch
from ..records import QuotaSnapshot, UsageRecord

__all__ = [
    "COST_MODES", "Estimate", "Filters", "ReconcileTotal", "RunCounts", "StoredUsage", "UsageStore",
    "UsageTotal", "UsageWriter",
]

COST_MODES = ("auto", "billed", "estimated")


@dataclass(frozen=True)
class Filters:
    """Case-insensitive substring filters on usage columns (``None`` or "" = any)."""

    provider: str | None = None
    source: str | None = None
    model: str | None = None
    project: str | None = None
    agent: str | None = None
    machine: str | None = None


class Estimate(Protocol):
    """A price-table estimate of one record (what ``fetch.make_pricer``'s function returns)."""

    @property
    def cost(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def basis(self) -> str: ...


class StoredUsage(NamedTuple):
    """A stored row with what re-estimating it needs (``reprice``), and its current estimate."""

    id: str
    provider: str | None
    model: str | None
    start: datetime
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    est_cost_nanos: int | None
    est_currency: str | None
    price_basis: str | None


class UsageTotal(NamedTuple):
    """One group of ``usage_totals``: sums over the 15-minute rollup."""

    day: date | None  # the local day (``tz`` given), else None
    columns: tuple[Any, ...]  # the values of the grouping columns, in the order asked
    currency: str | None  # of the cost below (None: unpriced)
    cost_kind: str | None  # billed | logged | estimated
    excluded: bool  # log usage a ledger covers (see ``usage_totals``' ``exclude``)
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    cost_nanos: int | None
    unpriced_calls: int | None  # calls (requests, or 1 per record without a count) with no cost
    calls: int | None

    def sums(self) -> list[Any]:
        """The metrics, cost, unpriced calls and calls, in that order."""
        return list(self[5:])


class ReconcileTotal(NamedTuple):
    """One (local day, model, cost currency, estimate currency) group of ``reconcile_totals``."""

    day: date
    model: str | None
    has_cost: bool  # the rows carry their source's own cost
    currency: str | None
    est_currency: str | None
    billed_nanos: int | None  # costs of kind 'billed'
    logged_nanos: int | None  # costs of kind 'logged'
    est_nanos: int | None  # estimates of log rows
    ledger_requests: int | None
    log_requests: int | None
    unpriced_log_calls: int | None  # log calls with neither a cost nor a price


@dataclass
class RunCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    snapshots: int = 0


class UsageWriter(Protocol):
    """One source run's writes: records, snapshots and the cursor, committed together."""

    counts: RunCounts  # everything added so far
    committed: RunCounts  # what the last checkpoint made durable
    uncommitted: int  # records and snapshots added since (lost if the run fails)

    def add(self, item: UsageRecord | QuotaSnapshot, estimate: Estimate | None = None) -> None:
        """Add a record (with its price-table estimate, if any) or a quota snapshot."""

    def add_rows(self, batch: RecordBatch, estimates: Sequence[tuple[int, str, str] | None]) -> None:
        """Add a ``RecordBatch``, one ``(cost nanos, currency, basis)`` estimate or None per row."""

    def checkpoint(self, cursor: Mapping[str, Any] | None) -> None:
        """Make everything added so far durable together with the source's ``cursor``."""

    def finish(self, cursor: Mapping[str, Any] | None) -> None:
        """The last checkpoint; marks the source's run successful."""

    def abort(self) -> None:
        """Drop what the last checkpoint did not commit."""


class UsageStore(Protocol):
    """A tokenmeter database, whichever engine holds it."""

    path: str
    read_only: bool  # reports and exports work, writes fail with ``StoreError``

    def close(self) -> None: ...
    def __enter__(self) -> UsageStore: ...
    def __exit__(self, *exc: object) -> None: ...

    def busy_timeout(self, seconds: float) -> AbstractContextManager[None]:
        """Inside the block, wait at most ``seconds`` for another writer."""

    def pending_migrations(self) -> list[str]: ...

    # -- sources and runs (store/state.py)
    def get_cursor(self, source: str) -> dict[str, Any]: ...
    def source_states(self) -> dict[str, dict[str, Any]]:
        """Per source: cursor, last_success, last_error, last_error_at, updated_at."""

    def record_error(self, source: str, message: str) -> None: ...
    def log_run(self, **values: Any) -> None:
        """Append a fetch run (columns of ``fetch_runs``: source, started_at, status, new, …)."""

    def last_runs(self) -> dict[str, dict[str, Any]]: ...
    def alerts_sent(self) -> set[tuple[str, str, str]]:
        """The (budget, level, period) keys of alerts already delivered."""

    def mark_alert_sent(self, budget: str, level: str, period: str) -> None: ...

    # -- writing usage (store/session.py, store/usage.py)
    def session(self, source: str, kind: str, machine: str | None = None) -> UsageWriter:
        """The writer of one source run; its rows name ``machine`` (``[tokenmeter] machine_name``)."""
    def stored_usage(self) -> list[StoredUsage]:
        """Every stored row that names a model, for re-estimating it."""

    def set_estimates(self, estimates: Iterable[tuple[str, Estimate | None]]) -> int:
        """Store new estimates by row id in one transaction; returns how many changed."""

    def merge(self, other: str | Path, *, timeout: float | None = None) -> dict[str, int]: ...

    # -- reading rows (store/usage.py, store/quota.py)
    def usage_rows(self, **where: Any) -> list[dict[str, Any]]:
        """Stored usage rows as dicts (costs as ``Decimal``), filtered by exact column values."""

    def snapshots(self, latest: bool = True) -> list[dict[str, Any]]:
        """Quota snapshots: the latest per (provider, account, name), or all by time."""

    # -- aggregates for reports (store/rollup.py)
    def refresh_rollup(self) -> int:
        """Bring the report rollup up to date (an explicit step: the queries below never do)."""

    def mark_all_dirty(self) -> None:
        """Have the next ``refresh_rollup`` recompute every bucket."""

    def usage_span(self) -> tuple[int, int] | None:
        """The first and last rollup bucket start, or None when nothing is stored."""

    def has_usage(self, lo: int, hi: int, kind: str) -> bool: ...

    def ledger_spans(self, lo: int, hi: int, max_span: int) -> list[tuple[str, int, int]]:
        """(provider, start, end) of ledger records starting in ``[lo - max_span, hi)`` and lasting
        at most ``max_span`` seconds; an event-like one (start == end) spans its UTC day."""

    def usage_totals(
        self, lo: int, hi: int, *, tz: tzinfo | None, columns: Sequence[str], cost: str, filters: Filters,
        exclude: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> list[UsageTotal]:
        """Usage in ``[lo, hi)`` summed per local day (when ``tz``), ``columns``, currency, cost kind.

        ``columns`` are any of model, provider, source, account, project, agent, machine (read from the
        rollup) and session (read from the usage rows themselves, which the rollup does not split).

        ``cost`` (``COST_MODES``) picks each row's figure: auto = own cost, else the estimate.
        ``exclude`` maps a provider to intervals: log rows of that provider (or of one named
        ``provider-…``) in them are grouped apart with ``excluded`` set.
        """

    def reconcile_totals(self, lo: int, hi: int, *, tz: tzinfo, filters: Filters) -> list[ReconcileTotal]:
        """Billed, logged and estimated sums per local day × model × currencies."""
