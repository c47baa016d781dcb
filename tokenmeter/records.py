"""The usage record and the quota snapshot: what every source yields (DESIGN §4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from .errors import InvalidRecord

__all__ = ["COST_KINDS", "Cursor", "QuotaSnapshot", "UsageRecord"]

COST_KINDS = ("billed", "logged")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
)
COUNT_FIELDS = ("requests", "errors", *TOKEN_FIELDS)


def _check_aware(name: str, value: Any) -> None:
    if not isinstance(value, datetime):
        raise InvalidRecord(name, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecord(name, "datetime must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")


def _check_count(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(name, f"expected an int or None, got {type(value).__name__}")
    if value < 0:
        raise InvalidRecord(name, f"must not be negative, got {value}")


def _check_optional_str(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidRecord(name, "expected a non-empty str or None")


def _check_decimal(name: str, value: Any, *, negative_ok: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidRecord(name, f"expected a finite Decimal or None, got {value!r}")
    if value < 0 and not negative_ok:
        raise InvalidRecord(name, f"must not be negative, got {value}")


def _check_details(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise InvalidRecord("details", "expected a dict")


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    """One interval of usage as a source reports it.

    ``None`` means "not reported"; never use 0 for unknown. Token counts are inclusive:
    ``input_tokens`` includes cache reads and writes, ``output_tokens`` includes reasoning.
    """

    key: str
    start: datetime
    provider: str
    end: datetime | None = None
    model: str | None = None
    account: str | None = None
    project: str | None = None
    session: str | None = None
    agent: str | None = None
    requests: int | None = None
    errors: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cost: Decimal | None = None
    currency: str | None = None
    cost_kind: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise InvalidRecord("key", "expected a non-empty str")
        if not isinstance(self.provider, str) or not self.provider:
            raise InvalidRecord("provider", "expected a non-empty str")
        _check_aware("start", self.start)
        if self.end is None:
            object.__setattr__(self, "end", self.start)
        _check_aware("end", self.end)
        if self.end < self.start:
            raise InvalidRecord("end", "must not be before start")
        for name in ("model", "account", "project", "session", "agent"):
            value = getattr(self, name)
            if value is not None and (type(value) is not str or not value):
                _check_optional_str(name, value)
        # fast path first: a large log ingest validates hundreds of thousands of records
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                _check_count(name, value)
        inp, cr, cw = self.input_tokens, self.cache_read_tokens, self.cache_write_tokens
        if inp is not None and (cr is not None or cw is not None):
            _subset(self, "cache_read_tokens", "input_tokens")
            _subset(self, "cache_write_tokens", "input_tokens")
            if cr is not None and cw is not None and cr + cw > inp:
                raise InvalidRecord(
                    "cache_write_tokens", "cache reads + writes exceed input_tokens (input is inclusive)"
                )
        if self.reasoning_tokens is not None and self.output_tokens is not None:
            _subset(self, "reasoning_tokens", "output_tokens")
        if self.errors is not None and self.requests is not None and self.errors > self.requests:
            raise InvalidRecord("errors", "more errors than requests")
        if isinstance(self.cost, int) and not isinstance(self.cost, bool):
            object.__setattr__(self, "cost", Decimal(self.cost))
        _check_decimal("cost", self.cost, negative_ok=True)
        if self.cost is not None:
            if self.currency is None or not _CURRENCY.match(self.currency):
                raise InvalidRecord("currency", "a cost needs an ISO 4217 currency such as 'USD'")
            if self.cost_kind not in COST_KINDS:
                raise InvalidRecord("cost_kind", f"a cost needs cost_kind 'billed' or 'logged', got {self.cost_kind!r}")
        else:
            if self.cost_kind is not None:
                raise InvalidRecord("cost_kind", "cost_kind is set but cost is None")
            if self.currency is not None and not _CURRENCY.match(self.currency):
                raise InvalidRecord("currency", "expected an ISO 4217 code such as 'USD'")
        _check_details(self.details)

    def replace(self, **changes: Any) -> UsageRecord:
        """Return a copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return UsageRecord(**values)


def _subset(rec: UsageRecord, part: str, whole: str) -> None:
    p, w = getattr(rec, part), getattr(rec, whole)
    if p is not None and w is not None and p > w:
        raise InvalidRecord(part, f"{part}={p} exceeds {whole}={w}; {whole} must include it")


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaSnapshot:
    """A provider-side quota or balance as observed at ``observed_at``.

    ``name`` is e.g. ``free-tier/<model>``, ``coding-plan/per_5h``, ``credits``,
    ``key-limit``; ``unit`` is ``tokens``, ``requests``, ``images`` or an ISO currency.
    """

    provider: str
    name: str
    unit: str
    observed_at: datetime
    account: str | None = None
    used: Decimal | None = None
    remaining: Decimal | None = None
    total: Decimal | None = None
    resets_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("provider", "name", "unit"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidRecord(name, "expected a non-empty str")
        _check_optional_str("account", self.account)
        _check_aware("observed_at", self.observed_at)
        if self.resets_at is not None:
            _check_aware("resets_at", self.resets_at)
        for name in ("used", "remaining", "total"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, Decimal(value))
            # remaining can go negative when a provider lets usage overrun a limit
            _check_decimal(name, getattr(self, name), negative_ok=name == "remaining")
        _check_details(self.details)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The JSON-serialisable state a source wants back next run.

    Yielding a ``Cursor`` is a checkpoint: the host commits it together with every record
    yielded before it, in one transaction.
    """

    state: Mapping[str, Any]
