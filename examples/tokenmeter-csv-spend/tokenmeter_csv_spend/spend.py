"""Acme's daily spend export: a CSV file with a header row.

Required columns: date (YYYY-MM-DD), model, cost, currency.
Optional columns: requests, input_tokens, output_tokens, total_tokens.
An empty cell means "not reported".
"""

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from tokenmeter import ConfigError, Cursor, Source, SourceDataError, UsageRecord

REQUIRED = ("date", "model", "cost", "currency")
COUNTS = ("requests", "input_tokens", "output_tokens", "total_tokens")


class CsvSpendSource(Source):
    """Daily spend per model, from a CSV export of Acme's billing page."""

    id = "csv-spend"
    provider = "acme"
    kind = "ledger"
    description = "Daily spend per model from a CSV export"

    @dataclass
    class Settings:
        path: str = field(default="~/spend.csv", metadata={"help": "The CSV export to read (~ expanded)."})
        provider: str = field(default="acme", metadata={"help": "Provider label for the records."})
        timezone: str = field(default="UTC", metadata={"help": "Time zone the export's dates are in."})

    def available(self):
        path = Path(self.settings.path).expanduser()
        return None if path.is_file() else f"no file at {path}"

    def fetch(self, window, cursor):
        path = Path(self.settings.path).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceDataError(f"cannot read {path} ({exc.strerror}); set path in [sources.{self.id}]") from None
        digest = hashlib.sha256(data).hexdigest()
        if cursor.get("sha256") == digest and window.start is None:
            return  # unchanged since the last run: nothing to do
        try:
            zone = ZoneInfo(self.settings.timezone)
        except (KeyError, ValueError):
            raise ConfigError(f"sources.{self.id}.timezone: unknown time zone {self.settings.timezone!r}") from None

        lines = data.decode("utf-8-sig").splitlines()
        rows = csv.DictReader(lines)
        missing = [c for c in REQUIRED if c not in (rows.fieldnames or [])]
        if missing:
            raise SourceDataError(f"{path}: no {', '.join(missing)} column; is this a spend export?")

        self.ctx.progress.set_total(len(lines) - 1)
        self.ctx.progress.describe(path.name)
        for lineno, row in enumerate(rows, start=2):
            self.ctx.progress.advance()
            try:
                record = self.parse(row, zone, account=path.name)
            except ValueError as exc:
                self.ctx.skip(f"{path.name}:{lineno}", str(exc))
                continue
            if window.start is not None and record.end <= window.start:
                continue
            yield record
        yield Cursor({"sha256": digest})

    def parse(self, row, zone, account):
        """One CSV row -> one UsageRecord covering that day (ValueError if the row is bad)."""
        day = datetime.strptime(row["date"].strip(), "%Y-%m-%d").date()
        start = datetime.combine(day, time(0), zone)
        model = row["model"].strip() or None
        currency = row["currency"].strip().upper()
        try:
            cost = Decimal(row["cost"].strip())
        except InvalidOperation:
            raise ValueError(f"bad cost {row['cost']!r}") from None
        counts = {}
        for name in COUNTS:
            text = (row.get(name) or "").strip()
            counts[name] = int(text) if text else None  # empty: not reported, never 0
        return UsageRecord(
            key=f"{day}/{model}/{currency}",  # stable: fetching the same day again replaces the row
            start=start,
            end=start + timedelta(days=1),
            provider=self.settings.provider,
            model=model,
            account=account,
            cost=cost,
            currency=currency,
            cost_kind="billed",
            **counts,
        )
