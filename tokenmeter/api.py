"""The Python API for scripts: ``tokenmeter.open().usage(period="week", by=["model"])``.

A thin layer over ``tokenmeter.service``, the same functions the command line calls; CSV and JSON
text come from ``tokenmeter.render``, so ``export_csv()`` is byte for byte what ``--csv`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import service
from .config import Config
from .render import render, report_view
from .reports import Filters, Report

__all__ = ["Tokenmeter"]


class Tokenmeter:
    """An open tokenmeter database. Reads only; ``fetch()`` pulls from sources."""

    def __init__(self, db: str | Path | None = None, *, config: str | Config | None = None) -> None:
        env = service.Environment(
            config_file=None if isinstance(config, Config) else config,
            db=str(db) if db else None,
            given=config if isinstance(config, Config) else None,
            clock=service.utcnow,  # scripts pass `now=` to pin it; TOKENMETER_NOW is for the CLI
        )
        self._env = env
        self.config = env.config
        self.db_path = env.db_path
        self.store = env.open_store()

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
        machine: str | None = None,
        tz: str | None = None,
        cost: str = "auto",
        now: datetime | None = None,
    ) -> Report:
        """A full report (period, rows, total per currency, notes)."""
        query = service.report_query(
            self.config, now or self._env.now(), preset=period, date_from=date_from, date_to=date_to, days=days,
            by=by or (),  # unlike the CLI, no `by` means the total only
            filters=Filters(provider, source, model, project, agent, machine), tz=tz, cost=cost,
        )
        return service.report(self.store, self.config, query)

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
        text = render(report_view(self.report(period, **kwargs)), "json")
        if output_path:
            Path(output_path).write_text(text, encoding="utf-8")
        return text.removesuffix("\n")

    def export_csv(self, period: str | None = "month", output_path: str | Path | None = None,
                   **kwargs: Any) -> str:
        """The report as CSV text (header row, plain numbers); also written to ``output_path``."""
        text = render(report_view(self.report(period, **kwargs)), "csv")
        if output_path:
            Path(output_path).write_text(text, encoding="utf-8")
        return text

    def budgets(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """Budget and quota statuses (level ok / warning / critical), as dicts."""
        statuses = service.budgets(self.store, self.config, now or self._env.now(), self.config.timezone)
        return [s.to_dict() for s in statuses]

    def forecast(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Month-end projection and days until each budget or quota runs out."""
        return service.forecast(self.store, self.config, now or self._env.now(), self.config.timezone)

    def quotas(self) -> list[dict[str, Any]]:
        """Latest quota snapshots."""
        return service.quotas(self.store)

    def fetch(self, *sources: str) -> list[dict[str, Any]]:
        """Pull from sources (all available ones when none are named); returns per-source summaries."""
        return [r.as_dict() for r in service.fetch(self.store, self.config, sources)]
