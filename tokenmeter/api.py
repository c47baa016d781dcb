"""The Python API for scripts: ``tokenmeter.open().usage(period="week", by=["model"])``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Config, db_path, load_config, parse_timezone
from .output import dumps, render_csv
from .periods import resolve_period
from .reports import Filters, Report, parse_group_by, usage_report
from .store import Store

__all__ = ["Tokenmeter"]

CSV_COLUMNS = [
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens", "cost", "currency", "cost_kind", "unpriced_requests",
]


class Tokenmeter:
    """An open tokenmeter database. Reads only; ``fetch()`` pulls from sources."""

    def __init__(self, db: str | Path | None = None, *, config: str | Config | None = None) -> None:
        self.config = config if isinstance(config, Config) else load_config(config)
        self.db_path = str(db_path(str(db) if db else None, self.config))
        self.store = Store.open(self.db_path)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Tokenmeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def report(
        self,
        period: str | None = "today",
        *,
        date_from: str | None = None,
        date_to: str | None = None,
        days: int | None = None,
        by: str | Sequence[str] = (),
        provider: str | None = None,
        source: str | None = None,
        model: str | None = None,
        project: str | None = None,
        agent: str | None = None,
        tz: str | None = None,
        cost: str = "auto",
        now: datetime | None = None,
    ) -> Report:
        """A full report (period, rows, total per currency, notes)."""
        zone = parse_timezone(tz) if tz else self.config.timezone
        p = resolve_period(now or datetime.now(UTC), zone, preset=period, date_from=date_from,
                           date_to=date_to, days=days)
        self.store.refresh_rollup()  # reports read the rollup as it is: bring it up to date first
        return usage_report(self.store, p, by=parse_group_by(by),
                            filters=Filters(provider, source, model, project, agent), cost=cost)

    def usage(self, period: str | None = "today", **kwargs: Any) -> list[dict[str, Any]]:
        """Rows of a report, costs as ``Decimal``; with no ``by`` a single total row per currency."""
        report = self.report(period, **kwargs)
        return report.rows if report.group_by else report.total

    def get_cost(self, period: str | None = "today", **kwargs: Any) -> dict[str, Any]:
        """Total cost per currency, e.g. ``{"USD": Decimal("1.23")}``; None-keyed for unpriced-only."""
        return {r["currency"]: r["cost"] for r in self.report(period, **kwargs).total}

    def export_json(self, period: str | None = "month", output_path: str | Path | None = None,
                    **kwargs: Any) -> str:
        """The report as JSON text (DESIGN §6 shape); also written to ``output_path`` if given."""
        text = dumps(self.report(period, **kwargs).as_dict())
        if output_path:
            Path(output_path).write_text(text + "\n", encoding="utf-8")
        return text

    def export_csv(self, period: str | None = "month", output_path: str | Path | None = None,
                   **kwargs: Any) -> str:
        """The report as CSV text (header row, plain numbers); also written to ``output_path``."""
        report = self.report(period, **kwargs)
        rows = report.rows if report.group_by else report.total
        text = render_csv(rows, [*report.group_by, *CSV_COLUMNS])
        if output_path:
            Path(output_path).write_text(text, encoding="utf-8")
        return text

    def budgets(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """Budget and quota statuses (level ok / warning / critical), as dicts."""
        from .insights import budget_statuses

        self.store.refresh_rollup()
        statuses = budget_statuses(self.store, self.config, now or datetime.now(UTC), self.config.timezone)
        return [s.to_dict() for s in statuses]

    def forecast(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Month-end projection and days until each budget or quota runs out."""
        from .insights import forecast_data

        self.store.refresh_rollup()
        return forecast_data(self.store, self.config, now or datetime.now(UTC), self.config.timezone)

    def quotas(self) -> list[dict[str, Any]]:
        """Latest quota snapshots."""
        return self.store.snapshots(latest=True)

    def fetch(self, *sources: str) -> list[dict[str, Any]]:
        """Pull from sources (all available ones when none are named); returns per-source summaries."""
        from .fetch import run_fetch
        from .plugin_manager import get_sources

        return [r.as_dict() for r in run_fetch(self.store, self.config, list(sources), get_sources())]
