"""Quota snapshots (free tier, coding plan, token plan) from a ``qwencloud usage summary`` document."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokenmeter import QuotaSnapshot, parse_time

from .values import as_decimal, num

__all__ = ["CODING_PLAN_WINDOWS", "PROVIDER", "summary_snapshots"]

PROVIDER = "qwen"  # the provider label of every qwencloud record and snapshot
CODING_PLAN_WINDOWS = ("per_5h", "weekly", "monthly")


def summary_snapshots(doc: Mapping[str, Any], now: datetime, ctx: Any) -> Iterator[QuotaSnapshot]:
    """Quota snapshots from a `usage summary` (or `usage free-tier`) document."""
    free_tier = doc.get("free_tier")
    for item in free_tier if isinstance(free_tier, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str):
            continue
        quota = item.get("quota")
        if not isinstance(quota, dict):
            continue  # the model's free tier is not enabled ("Enable to unlock free-tier")
        total, remaining = as_decimal(quota.get("total")), as_decimal(quota.get("remaining"))
        yield QuotaSnapshot(
            provider=PROVIDER,
            name=f"free-tier/{item['model_id']}",
            unit=str(quota.get("unit") or "tokens"),
            observed_at=now,
            total=total,
            remaining=remaining,
            used=_used(total, remaining),
            resets_at=parse_time(quota.get("resetDate")),
            details=_clean({"status": quota.get("status"), "used_pct": num(quota.get("used_pct"))}),
        )
    plan = doc.get("coding_plan")
    if isinstance(plan, dict) and plan.get("subscribed") is True:
        windows = plan.get("windows") if isinstance(plan.get("windows"), dict) else {}
        for name in CODING_PLAN_WINDOWS:
            w = windows.get(name)
            if not isinstance(w, dict):
                continue
            total, remaining = as_decimal(w.get("total")), as_decimal(w.get("remaining"))
            yield QuotaSnapshot(
                provider=PROVIDER,
                name=f"coding-plan/{name}",
                unit="requests",
                observed_at=now,
                total=total,
                remaining=remaining,
                used=_used(total, remaining),
                resets_at=parse_time(w.get("next_reset_at")),
                details=_clean({"plan": plan.get("plan"), "used_pct": num(w.get("used_pct"))}),
            )
    token = doc.get("token_plan")
    if isinstance(token, dict):
        if token.get("subscribed") is True:
            total, remaining = as_decimal(token.get("totalCredits")), as_decimal(token.get("remainingCredits"))
            yield QuotaSnapshot(
                provider=PROVIDER,
                name="token-plan/credits",
                unit="credits",
                observed_at=now,
                total=total,
                remaining=remaining,
                used=_used(total, remaining),
                resets_at=parse_time(token.get("resetDate")),
                details=_clean({"plan": token.get("planName"), "status": token.get("status"),
                                "used_pct": num(token.get("usedPct")),
                                "addon_remaining": num(token.get("addonRemaining"))}),
            )
        elif as_decimal(token.get("addonRemaining")) is not None:
            yield QuotaSnapshot(
                provider=PROVIDER, name="token-plan/addon-credits", unit="credits", observed_at=now,
                remaining=as_decimal(token.get("addonRemaining")),
            )


def _used(total: Decimal | None, remaining: Decimal | None) -> Decimal | None:
    if total is None or remaining is None:
        return None
    return max(total - remaining, Decimal(0))


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
