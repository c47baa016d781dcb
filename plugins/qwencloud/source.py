"""The ``qwencloud`` ledger source (billed PAYG usage + quota snapshots) and the ``qwencloud-logs`` source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from tokenmeter import (
    Cursor,
    ProviderError,
    QuotaSnapshot,
    Source,
    SourceDataError,
    UsageRecord,
    Window,
    parse_day,
    parse_time,
)

from .cli import QwenCloudCli, auth_health, not_found_message, resolve
from .quota import CODING_PLAN_WINDOWS, PROVIDER, summary_snapshots
from .values import add_months, as_decimal, as_int, check_range, last_day, month_ranges, zone

# auth_health, summary_snapshots and CODING_PLAN_WINDOWS moved to cli.py and quota.py; still importable here
__all__ = [
    "CODING_PLAN_WINDOWS",
    "PROVIDER",
    "QwenCloudLogsSource",
    "QwenCloudSource",
    "auth_health",
    "summary_snapshots",
]

#: the CLI reads only the first page (100 line items) of MaasListConsumeSummary per calendar month
ROW_LIMIT = 100
#: flag a month when its estimated line items come this close to ROW_LIMIT
TRUNCATION_ITEMS = 90
CURSOR_VERSION = 1


def _settings_field(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


class _CliSource(Source):
    """What both QwenCloud sources share: the CLI runner and the "is it installed" check."""

    def __init__(self, settings: Any, ctx: Any) -> None:
        super().__init__(settings, ctx)
        # the host's total deadline per request bounds each CLI call too (a lower one wins)
        timeout = min(float(settings.timeout), ctx.request_deadline)
        self.cli = QwenCloudCli(command=settings.command, timeout=timeout, source_id=self.id)

    def available(self) -> str | None:
        if resolve(self.settings.command) is None:
            return not_found_message(self.settings.command)
        return None


class QwenCloudSource(_CliSource):
    """QwenCloud pay-as-you-go bills per day and model, free-tier / coding-plan / token-plan quotas."""

    id = "qwencloud"
    provider = PROVIDER
    kind = "ledger"
    description = "QwenCloud billed usage and quotas through the official `qwencloud` CLI"

    @dataclass
    class Settings:
        command: str = _settings_field("qwencloud", "the qwencloud CLI: a name on PATH or a full path")
        timeout: float = _settings_field(
            60.0, "seconds one CLI call may take before it is killed (at most [tokenmeter] request_deadline)"
        )
        request_logs: bool = _settings_field(
            False,
            "per-request logs come from the `qwencloud-logs` source (kind log, so reports never add "
            "them on top of the bills): set request_logs = true there; here it only prints that hint",
        )
        backfill_months: int = _settings_field(
            12, "calendar months (this one included) the first run fetches; the CLI refuses > 1 year back"
        )
        settle_days: int = _settings_field(
            3, "the last N days (today included) are fetched again every run because bills lag"
        )
        billing_timezone: str = _settings_field(
            "UTC", "IANA zone of the CLI's billing days (the CLI zero-fills days in UTC)"
        )

        def __post_init__(self) -> None:
            check_range("timeout", self.timeout, 1, 3600)
            check_range("backfill_months", self.backfill_months, 1, 12)
            check_range("settle_days", self.settle_days, 1, 31)

    # -- host hooks ------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        """``(ok, message)`` from ``qwencloud auth status --format json`` (for ``tokenmeter sources``)."""
        return auth_health(self.cli)

    def fetch(self, window: Window, cursor: Mapping[str, Any]) -> Iterator[Any]:
        tz = zone(self.settings.billing_timezone)
        now = self.ctx.now()
        today = now.astimezone(tz).date()
        settle = max(1, int(self.settings.settle_days))
        final_through = parse_day(cursor.get("final_through")) if cursor else None
        oldest = today - timedelta(days=365)  # the CLI refuses ranges more than 1 year back

        if self.settings.request_logs:
            self.ctx.warn("qwencloud: request_logs moved to the `qwencloud-logs` source; "
                          "set request_logs = true in [sources.qwencloud-logs]")

        if window.start is not None:
            first = window.start.astimezone(tz).date()
            last = last_day(window.end, tz)
        else:
            months = max(1, int(self.settings.backfill_months))
            first = add_months(today.replace(day=1), -(months - 1))
            if final_through is not None:
                first = max(first, final_through + timedelta(days=1))
            first = min(first, today - timedelta(days=settle - 1))
            last = today
        last = min(last, today)
        if first < oldest:
            self.ctx.warn(f"qwencloud: the CLI serves one year of bills; fetching from {oldest}, not {first}")
            first = oldest

        state: dict[str, Any] = {"version": CURSOR_VERSION}
        if final_through is not None:
            state["final_through"] = final_through.isoformat()
        ranges = list(month_ranges(first, last)) if first <= last else []
        self.ctx.progress.set_total(len(ranges) + 1)
        for lo, hi in ranges:
            self.ctx.progress.describe(f"qwencloud {lo:%Y-%m}")
            yield from self._month(lo, hi, tz)
            self.ctx.progress.advance()
            if window.start is None:
                # days older than the settle window are final: never fetched again
                done = min(hi, today - timedelta(days=settle))
                if done >= lo and (final_through is None or done > final_through):
                    final_through = done
                    state["final_through"] = done.isoformat()
                yield Cursor(dict(state))

        self.ctx.progress.describe("qwencloud quotas")
        yield from self._snapshots(now)
        self.ctx.progress.advance()
        yield Cursor(dict(state))

    # -- pay-as-you-go ---------------------------------------------------------------------
    def _month(self, lo: date, hi: date, tz: tzinfo) -> Iterator[UsageRecord]:
        dates = ["--from", lo.isoformat(), "--to", hi.isoformat()]
        payg = self.cli.json(["usage", "payg", *dates], "pay_as_you_go").get("pay_as_you_go") or {}
        if not isinstance(payg, dict):
            raise SourceDataError("`qwencloud usage payg` printed pay_as_you_go that is not an object",
                                  source=self.id)
        models = payg.get("models") or []
        if not isinstance(models, list):
            raise SourceDataError("`qwencloud usage payg` printed pay_as_you_go.models that is not a list",
                                  source=self.id)
        month = f"{lo:%Y-%m}"
        rows_by_model: dict[str, list[dict[str, Any]]] = {}
        payg_cost: dict[str, Decimal | None] = {}
        for item in models:
            model = item.get("model_id") if isinstance(item, dict) else None
            if not isinstance(model, str) or not model:
                self.ctx.skip(f"payg {month}", "model entry without model_id")
                continue
            cost = as_decimal(item.get("cost"))
            if model in payg_cost:
                # payg sums per model *and unit*: a model billed in two units is listed twice
                previous = payg_cost[model]
                payg_cost[model] = None if previous is None or cost is None else previous + cost
                continue
            payg_cost[model] = cost
            try:
                doc = self.cli.json(
                    ["usage", "breakdown", "--model", model, "--granularity", "day", *dates], "rows"
                )
            except ProviderError as exc:
                if "MODEL_NOT_FOUND" not in str(exc):
                    raise
                # payg names a row by JobId/MaasTypeName when ModelName is missing; breakdown refuses those
                self.ctx.skip(f"{month}/{model}", "breakdown does not know this model; its cost is missing")
                self.ctx.warn(f"qwencloud: {month}: `usage breakdown` refused model {model!r} "
                              f"(billed {item.get('cost')} in payg); its daily rows are missing")
                continue
            rows = doc.get("rows")
            if not isinstance(rows, list):
                raise SourceDataError(
                    f"`qwencloud usage breakdown` for {model} printed rows that are not a list",
                    source=self.id,
                )
            rows_by_model[model] = [r for r in rows if isinstance(r, dict)]

        records: list[UsageRecord] = []
        items = 0
        mismatch: list[str] = []
        for model, rows in rows_by_model.items():
            total = Decimal(0)
            for row in rows:
                rec = self._day_record(row, model, lo, hi, tz)
                if rec is None:
                    continue
                records.append(rec)
                total += rec.cost or 0
                # inference: a token row is at least two bill line items (input and output)
                items += 2 if rec.total_tokens else 1
            expected = payg_cost.get(model)
            if expected is not None and abs(total - expected) > Decimal("0.01"):
                mismatch.append(f"{model} payg {expected} vs daily {total}")
        truncated = items >= TRUNCATION_ITEMS or bool(mismatch)
        if truncated:
            why = "; ".join(mismatch) if mismatch else f"about {items} bill line items"
            self.ctx.warn(
                f"qwencloud: {month} may be incomplete ({why}): the CLI reads only the first {ROW_LIMIT} "
                "line items of a month; compare with the console (Billing > Pay-as-you-go, By Day)"
            )
            records = [r.replace(details={**r.details, "possibly_truncated": True}) for r in records]
        yield from records

    def _day_record(
        self, row: dict[str, Any], model: str, lo: date, hi: date, tz: tzinfo
    ) -> UsageRecord | None:
        day = parse_day(row.get("period"))
        where = f"breakdown {model} {row.get('period')!r}"
        if day is None:
            self.ctx.skip(where, "not a YYYY-MM-DD day")
            return None
        if not lo <= day <= hi:
            return None
        cost = as_decimal(row.get("cost"))
        tokens = as_int(row.get("tokens_in"))
        usage = row.get("usage") if isinstance(row.get("usage"), dict) else {}
        units = {k: v for k, v in usage.items() if isinstance(k, str) and as_int(v)}
        if not cost and not tokens and not units:
            return None  # the CLI zero-fills days without bills
        if cost is None:
            self.ctx.skip(where, "no cost")
            return None
        currency = str(row.get("currency") or "USD").upper()
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        details: dict[str, Any] = {"charge_type": "postpaid"}
        if tokens:
            details["tokens"] = "input and output merged by the CLI"
        if units:
            details["usage"] = units
        return UsageRecord(
            key=f"{day.isoformat()}/{model}",
            start=start.astimezone(UTC),
            end=(start + timedelta(days=1)).astimezone(UTC),
            provider=PROVIDER,
            model=model,
            total_tokens=tokens or None,
            cost=cost,
            currency=currency,
            cost_kind="billed",
            details=details,
        )

    # -- snapshots -------------------------------------------------------------------------
    def _snapshots(self, now: datetime) -> Iterator[QuotaSnapshot]:
        today = now.astimezone(zone(self.settings.billing_timezone)).date()
        doc = self.cli.json(
            ["usage", "summary", "--from", today.replace(day=1).isoformat(), "--to", today.isoformat()],
            "free_tier",
        )
        yield from summary_snapshots(doc, now, self.ctx)


class QwenCloudLogsSource(_CliSource):
    """Per-request QwenCloud logs (`qwencloud usage logs`, 14 days): input/output tokens per call.

    A separate source of kind ``log`` so reports use the bills where they cover a day and these
    logs only elsewhere (free-tier calls, today before the bill lands) — never both.
    """

    id = "qwencloud-logs"
    provider = PROVIDER
    kind = "log"
    description = "QwenCloud per-request logs (last 14 days) through the `qwencloud` CLI; opt-in"

    @dataclass
    class Settings:
        request_logs: bool = _settings_field(
            False, "fetch per-request logs with `qwencloud usage logs` (off by default: many CLI calls)"
        )
        command: str = _settings_field("qwencloud", "the qwencloud CLI: a name on PATH or a full path")
        timeout: float = _settings_field(
            60.0, "seconds one CLI call may take before it is killed (at most [tokenmeter] request_deadline)"
        )
        days: int = _settings_field(14, "days of logs the first run fetches (the CLI allows at most 14)")
        page_size: int = _settings_field(100, "requests per page (the CLI allows at most 100)")
        max_pages: int = _settings_field(500, "stop after this many pages per run (and warn)")

        def __post_init__(self) -> None:
            check_range("timeout", self.timeout, 1, 3600)
            check_range("days", self.days, 1, 14)
            check_range("page_size", self.page_size, 1, 100)
            check_range("max_pages", self.max_pages, 1, 100_000)

    def available(self) -> str | None:
        if not self.settings.request_logs:
            return f"off: set request_logs = true in [sources.{self.id}]"
        return super().available()

    def health(self) -> tuple[bool, str]:
        return auth_health(self.cli)

    def fetch(self, window: Window, cursor: Mapping[str, Any]) -> Iterator[Any]:
        tz = self.ctx.timezone or UTC  # the CLI turns --from/--to into times in the machine's zone
        today = self.ctx.now().astimezone(tz).date()
        oldest = today - timedelta(days=13)
        if window.start is not None:
            first = window.start.astimezone(tz).date()
            last = min(last_day(window.end, tz), today)
        else:
            first = today - timedelta(days=max(1, min(14, int(self.settings.days))) - 1)
            through = parse_day(cursor.get("through")) if cursor else None
            if through is not None:
                first = max(first, through - timedelta(days=1))  # a day of overlap: keys replace rows
            last = today
        if first < oldest:
            self.ctx.warn(f"qwencloud-logs: the CLI serves 14 days of logs; fetching from {oldest}")
            first = oldest
        size = max(1, min(100, int(self.settings.page_size)))
        page = 1
        seen = 0
        while first <= last:
            args = ["usage", "logs", "--from", first.isoformat(), "--to", last.isoformat(),
                    "--page", str(page), "--page-size", str(size)]
            doc = self.cli.json(args, "items")
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise SourceDataError("`qwencloud usage logs` printed items that are not a list",
                                      source=self.id)
            total = as_int(doc.get("totalCount")) or 0
            self.ctx.progress.set_total(-(-total // size) if total else None)
            for item in items:
                rec = self._record(item) if isinstance(item, dict) else None
                if rec is not None:
                    yield rec
            self.ctx.progress.advance()
            seen += len(items)
            if not items or seen >= total:
                break
            if page >= int(self.settings.max_pages):
                self.ctx.warn(f"qwencloud-logs: stopped after {page} pages ({seen} of {total} requests)")
                break
            page += 1
        state = dict(cursor or {})
        if window.start is None:
            state = {"version": CURSOR_VERSION, "through": last.isoformat()}
        yield Cursor(state)

    def _record(self, item: dict[str, Any]) -> UsageRecord | None:
        rid = item.get("requestId")
        start = parse_time(item.get("createdAt"))
        if not isinstance(rid, str) or not rid or start is None:
            self.ctx.skip("usage logs item", "no requestId or createdAt")
            return None
        usages: dict[str, int] = {}
        listed = item.get("usages")
        for u in listed if isinstance(listed, list) else []:
            if isinstance(u, dict) and isinstance(u.get("key"), str) and as_int(u.get("value")) is not None:
                usages[u["key"]] = as_int(u["value"])  # type: ignore[assignment]
        inp, out = usages.pop("input", None), usages.pop("output", None)
        cache = usages.pop("cached", usages.pop("cache_read", None))
        reasoning = usages.pop("reasoning", None)
        total = usages.pop("total", None)
        if cache is not None and (inp is None or cache > inp):
            usages["cached"] = cache
            cache = None
        if reasoning is not None and (out is None or reasoning > out):
            usages["reasoning"] = reasoning
            reasoning = None
        status = item.get("statusCode")
        failed = bool(item.get("errorCode")) or (isinstance(status, int) and not 200 <= status < 300)
        duration = as_int(item.get("durationMs"))
        details: dict[str, Any] = {"status_code": status}
        if item.get("errorCode"):
            details["error_code"] = str(item["errorCode"])
        if usages:
            details["usage"] = usages
        if as_int(item.get("firstOutputDurationMs")):
            details["first_output_ms"] = as_int(item.get("firstOutputDurationMs"))
        model = item.get("model") if isinstance(item.get("model"), str) and item.get("model") else None
        return UsageRecord(
            key=f"req/{rid}",
            start=start,
            end=start + timedelta(milliseconds=duration) if duration else start,
            provider=PROVIDER,
            model=model,
            requests=1,
            errors=1 if failed else 0,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cache,
            reasoning_tokens=reasoning,
            total_tokens=total,
            details=details,
        )
