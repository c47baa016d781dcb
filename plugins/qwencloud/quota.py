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
        yield _snapshot(f"free-tier/{item['model_id']}", str(quota.get("unit") or "tokens"), now,
                        quota.get("total"), quota.get("remaining"), quota.get("resetDate"),
                        {"status": quota.get("status"), "used_pct": num(quota.get("used_pct"))})
    plan = doc.get("coding_plan")
    if isinstance(plan, dict) and plan.get("subscribed") is True:
        windows = plan.get("windows") if isinstance(plan.get("windows"), dict) else {}
        for name in CODING_PLAN_WINDOWS:
            w = windows.get(name)
            if not isinstance(w, dict):
                continue
            yield _snapshot(f"coding-plan/{name}", "requests", now, w.get("total"), w.get("remaining"),
                            w.get("next_reset_at"), {"plan": plan.get("plan"), "used_pct": num(w.get("used_pct"))})
    token = doc.get("token_plan")
    if isinstance(token, dict):
        if token.get("subscribed") is True:
            yield _snapshot("token-plan/credits", "credits", now, token.get("totalCredits"),
                            token.get("remainingCredits"), token.get("resetDate"),
                            {"plan": token.get("planName"), "status": token.get("status"),
                             "used_pct": num(token.get("usedPct")),
                             "addon_remaining": num(token.get("addonRemaining"))})
        elif as_decimal(token.get("addonRemaining")) is not None:
            yield QuotaSnapshot(
                provider=PROVIDER, name="token-plan/addon-credits", unit="credits", observed_at=now,
                remaining=as_decimal(token.get("addonRemaining")),
            )


def _snapshot(name: str, unit: str, now: datetime, total_v: Any, remaining_v: Any, resets: Any,
              details: dict[str, Any]) -> QuotaSnapshot:
    """One snapshot of the summary: used = total - remaining when both are known."""
    total, remaining = as_decimal(total_v), as_decimal(remaining_v)
    return QuotaSnapshot(provider=PROVIDER, name=name, unit=unit, observed_at=now, total=total,
                         remaining=remaining, used=_used(total, remaining), resets_at=parse_time(resets),
                         details=_clean(details))


def _used(total: Decimal | None, remaining: Decimal | None) -> Decimal | None:
    if total is None or remaining is None:
        return None
    return max(total - remaining, Decimal(0))


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
