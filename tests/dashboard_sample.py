"""A fixed, realistic dashboard input shared by test_dashboard.py and test_dashboard_browser.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenmeter.budgets import budget_window, evaluate, parse_budgets, quota_statuses
from tokenmeter.forecast import exhaustion_info, forecast

TODAY = date(2026, 3, 15)
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
EVIL = '<img src=x onerror="alert(1)">&co'
# model, provider, cost kind, USD per token, tokens per day on a "1.0" day
MODELS = [
    ("qwen3-coder-plus", "qwen", "billed", Decimal("0.000004"), 40_000),
    ("qwen-max-latest", "qwen", "billed", Decimal("0.0000016"), 25_000),
    ("anthropic/claude-sonnet-4", "openrouter", "logged", Decimal("0.000009"), 12_000),
    ("deepseek-v3.2", "huawei-maas", "estimated", Decimal("0.0000011"), 18_000),
    (EVIL, "qwen-singapore", "logged", Decimal("0.000002"), 5_000),
]
SCALE = [1.0, 1.4, 0.8, 1.2, 1.6, 0.5, 0.3, 1.1, 1.3, 2.6, 1.5, 1.2, 0.6, 0.4, 0.9]  # 1..15 March


def _row(base: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(base)
    for key in ("requests", "input_tokens", "output_tokens", "total_tokens", "unpriced_requests"):
        out[key] = sum(r[key] for r in rows)
    out["cost"] = str(sum((Decimal(r["cost"]) for r in rows), Decimal(0)))
    out["currency"] = "USD"
    kinds = {r["cost_kind"] for r in rows}
    out["cost_kind"] = kinds.pop() if len(kinds) == 1 else "mixed"
    return out


def usage_rows() -> list[dict[str, Any]]:
    """Report-shaped rows by day, model and provider (what usage_report(by=...) gives)."""
    rows = []
    for i, scale in enumerate(SCALE):
        day = date(2026, 3, 1) + timedelta(days=i)
        for model, provider, kind, price, per_day in MODELS:
            tokens = int(per_day * scale)
            inp = tokens * 4 // 5
            rows.append({
                "day": day.isoformat(), "model": model, "provider": provider, "requests": tokens // 2000 + 1,
                "input_tokens": inp, "output_tokens": tokens - inp, "total_tokens": tokens,
                "cost": format((price * tokens).normalize(), "f"), "currency": "USD", "cost_kind": kind, "unpriced_requests": 0,
            })
    return rows


def sample_data() -> dict[str, Any]:
    rows = usage_rows()
    days = sorted({r["day"] for r in rows})
    daily = [_row({"day": d}, [r for r in rows if r["day"] == d]) for d in days]
    models = list(dict.fromkeys((r["model"], r["provider"]) for r in rows))
    by_model = [_row({"model": m, "provider": p}, [r for r in rows if (r["model"], r["provider"]) == (m, p)])
                for m, p in models]
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    by_provider = [_row({"provider": p}, [r for r in rows if r["provider"] == p]) for p in providers]
    summary = _row({}, rows)
    summary["unpriced_requests"] = 3

    series = [(date.fromisoformat(d["day"]), Decimal(d["cost"]), d["total_tokens"]) for d in daily]
    fc = forecast(series, TODAY, currency="USD")
    budgets = parse_budgets({
        "test": {"limit": 2_000_000, "unit": "tokens", "from": "2026-03-01", "to": "2026-03-31"},
        "monthly-spend": {"limit": 10, "currency": "USD", "period": "month"},
        "welcome-credit": {"limit": 70_000_000, "unit": "tokens", "from": "2026-02-01", "provider": "qwen"},
    })
    used = {"test": sum(d["total_tokens"] for d in daily), "monthly-spend": Decimal(summary["cost"]),
            "welcome-credit": 41_300_000}
    statuses = []
    for b in budgets:
        s = evaluate(b, used[b.name], window=budget_window(b, NOW))
        rate = fc.rate_for(b.measure)
        statuses.append(s.to_dict() | exhaustion_info(s.remaining, rate, TODAY))
    quota = quota_statuses([{"provider": "qwen", "name": "coding-plan/per_5h", "unit": "requests",
                             "used": 1020, "remaining": 180, "total": 1200,
                             "resets_at": "2026-03-15T17:00:00+00:00"}])
    statuses += [q.to_dict() for q in quota]
    return {
        "title": "tokenmeter usage",
        "generated_at": NOW,
        "period": {"from": "2026-03-01", "to": "2026-03-31", "tz": "Europe/Berlin", "label": "this month"},
        "currency": "USD",
        "summary": summary,
        "daily": rows,  # by day and model: the cost chart splits each day by cost kind
        "by_model": by_model,
        "by_provider": by_provider,
        "budgets": statuses,
        "forecast": fc.to_dict(),
        "rows": by_model,
        "notes": ["qwen: 12 logged requests on 2026-03-02 left out; a provider bill covers those days",
                  "see https://example.com/docs for what billed/logged/estimated mean"],
    }
