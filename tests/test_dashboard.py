from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenmeter.budgets import budget_window, evaluate, parse_budgets, quota_statuses
from tokenmeter.dashboard import fmt_compact, fmt_money, render_dashboard
from tokenmeter.forecast import exhaustion_info, forecast

# -- a fixed, realistic input (also used by test_dashboard_browser.py) ----------------------------

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
                "cost": format((price * tokens).normalize(), "f"), "currency": "USD", "cost_kind": kind,
                "unpriced_requests": 0,
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
        "monthly-spend": {"limit": 20, "currency": "USD", "period": "month"},
        "welcome-credit": {"limit": 70_000_000, "unit": "tokens", "from": "2026-02-01", "provider": "qwen"},
    })
    used = {"test": sum(d["total_tokens"] for d in daily), "monthly-spend": Decimal(summary["cost"]),
            "welcome-credit": 41_300_000}
    statuses = []
    for b in budgets:
        s = evaluate(b, used[b.name], window=budget_window(b, NOW))
        rate = fc.rate_for(b.measure)
        period_end = s.period_to if b.period else None
        statuses.append(s.to_dict() | exhaustion_info(s.remaining, rate, TODAY, period_end))
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


SECTIONS = ("summary", "budgets", "daily", "share-model", "share-provider", "cost-model", "forecast", "details")
# anything that would make a browser fetch: attributes with a URL, CSS url()/@import, script APIs
RESOURCE_REFS = re.compile(
    r"""(?:\b(?:src|href|action|poster|srcset|data|formaction|background)\s*=\s*["']?\s*(?:https?:|//))"""
    r"""|url\s*\(|@import|\bfetch\s*\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon|\bimport\s*\(""",
    re.IGNORECASE,
)


def _figure(html: str, key: str) -> str:
    m = re.search(rf'data-figure="{key}"><div class="label">[^<]*</div><div class="value"[^>]*>([^<]*)<', html)
    assert m, key
    return m.group(1)


def test_all_sections_and_figures():
    html = render_dashboard(sample_data())
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert html.startswith("<!DOCTYPE html>") and html.count("<html") == 1
    # totals of the sample: 15 days x 5 models
    data = sample_data()
    total_cost = sum(Decimal(r["cost"]) for r in data["daily"])
    assert total_cost == Decimal(data["summary"]["cost"]) == Decimal("5.53992")
    assert _figure(html, "cost") == "5.54 USD"
    assert _figure(html, "tokens") == "1.64M"
    assert "1,640,000 tokens \u00b7 in 1.31M \u00b7 out 328k" in html
    assert _figure(html, "requests") == "871"
    assert _figure(html, "daily-average") == "0.3693 USD"  # 5.53992 / 15 days
    assert _figure(html, "projected") == "12.37 USD"
    assert "3 requests unpriced" in html
    # cost kinds labelled: the legend, the badges in the table, the chart legend
    for kind in ("billed", "logged", "estimated", "mixed"):
        assert f'<span class="badge {kind}"' in html
    assert "from the provider&#x27;s bill" in html and "tokens \u00d7 price table" in html
    # budgets with bars at the right width and the thresholds marked
    assert 'data-budget="test" data-level="critical"' in html
    assert '<span class="fill" style="width:82.00%"></span><i class="mark" style="left:50.0%"></i>' in html
    assert "1,640,000 tokens of 2,000,000 tokens used" in html
    assert 'data-budget="qwen:coding-plan/per_5h" data-level="critical"' in html
    assert "resets 2026-03-15 17:00" in html
    assert "runs out in ~2.9 days (2026-03-17)" in html
    assert "lasts past 2026-03-31 at this rate" in html  # monthly-spend resets before it runs out
    assert "34.4 (resets 2026-03-31 first)" in html
    # forecast and the window it used
    assert "daily rate from the last 7 complete days (2026-03-08..2026-03-14)" in html
    assert 'data-forecast="projected"' in html and "3,662,857 tokens \u00b7 17 days left" in html
    # the detailed table with percentages, and the notes
    assert '<td class="n" data-sort="47.4">47.4%</td>' in html
    assert "qwen: 12 logged requests on 2026-03-02 left out" in html


def test_chart_data_block():
    html = render_dashboard(sample_data())
    block = re.search(r'<script type="application/json" id="tm-data">(.*?)</script>', html, re.S).group(1)
    charts = json.loads(block)
    assert charts["currency"] == "USD"
    assert [d["date"] for d in charts["daily"]][:2] == ["2026-03-01", "2026-03-02"]
    assert len(charts["daily"]) == 15
    first = charts["daily"][0]
    assert first["cost_s"] == "0.3378" and first["total"] == 100_000 and first["requests"] == 54
    assert first["by_kind"] == {"billed": {"v": 0.2, "s": "0.20"}, "logged": {"v": 0.118, "s": "0.118"},
                                "estimated": {"v": 0.0198, "s": "0.0198"}}
    assert {m["label"] for m in charts["by_model"]} >= {"qwen3-coder-plus", EVIL}
    assert sum(p["tokens"] for p in charts["by_provider"]) == 1_640_000


def test_strings_are_escaped():
    data = sample_data()
    data["title"] = "<b>my</b> usage"
    data["notes"] = ["</script><script>alert(1)</script>"]
    data["by_model"].append({"model": "</script><img src=x onerror=alert(2)>", "provider": "x", "cost": "1",
                             "total_tokens": 5, "requests": 1, "cost_kind": '"><svg onload=alert(3)>'})
    data["rows"] = data["by_model"]
    html = render_dashboard(data)
    assert EVIL not in html and "<img" not in html and "<b>my</b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;co" in html
    assert "&lt;b&gt;my&lt;/b&gt; usage" in html
    assert "<svg onload" not in html and "&quot;&gt;&lt;svg onload=alert(3)&gt;" in html
    # exactly the three scripts of the page: the JSON block cannot be closed from inside
    assert html.count("<script") == 3 and html.count("</script>") == 3
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(2)\\u003e" in html


def test_no_network_references_and_a_strict_csp():
    data = sample_data()
    html = render_dashboard(data)
    assert not RESOURCE_REFS.search(html), RESOURCE_REFS.search(html)
    # the only URL in the file is the user's note, as escaped text
    assert re.findall(r"https?://[^\s<\"]*", html) == ["https://example.com/docs"]
    data["notes"] = []
    assert "http://" not in render_dashboard(data) and "https://" not in render_dashboard(data)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    assert csp.startswith("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 2
    for script in scripts:  # every inline script runs by hash, nothing else can
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "<link" not in html and "<iframe" not in html and "<img" not in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "@media (prefers-color-scheme: dark)" in html and "@media (max-width: 520px)" in html


def test_empty_and_minimal_data():
    html = render_dashboard({})
    for section in ("summary", "budgets", "daily", "forecast", "details"):
        assert f'id="{section}"' in html
    assert "No usage in this period." in html and "No budgets configured." in html
    assert "No forecast available." in html
    assert _figure(html, "cost") == "\u2014"  # unknown, never 0
    # report rows as they come (day / total_tokens keys, a list of totals in two currencies)
    html = render_dashboard({
        "summary": [{"cost": "2.50", "currency": "USD", "cost_kind": "estimated", "total_tokens": 10,
                     "requests": 2}, {"cost": "3.20", "currency": "EUR", "cost_kind": "billed",
                                      "total_tokens": 5, "requests": 1}],
        "daily": [{"day": "2026-03-01", "cost": "2.50", "currency": "USD", "total_tokens": 10},
                  {"day": "2026-03-01", "cost": "3.20", "currency": "EUR", "total_tokens": 5}],
    })
    assert _figure(html, "cost") == "2.50 USD" and "also 3.20 EUR" in html
    assert _figure(html, "tokens") == "15"
    charts = json.loads(re.search(r'id="tm-data">(.*?)</script>', html).group(1))
    assert charts["daily"] == [{"date": "2026-03-01", "cost": 2.5, "cost_s": "2.50", "cost_kind": None,
                                "by_kind": {"none": {"v": 2.5, "s": "2.50"}}, "input": None, "output": None,
                                "total": 15, "requests": None, "unpriced": None}]


def test_number_formats():
    assert fmt_money(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert fmt_money(Decimal("0.36918"), "USD") == "0.3692 USD"
    assert fmt_money(Decimal("0.007726"), "USD") == "0.007726 USD"
    assert fmt_money(Decimal("0.5"), "USD") == "0.50 USD"
    assert fmt_money(0, "USD") == "0.00 USD"
    assert fmt_money(None, "USD") == "\u2014"
    assert fmt_compact(1_640_000) == "1.64M" and fmt_compact(328_000) == "328k" and fmt_compact(999) == "999"
    assert fmt_compact(70_000_000_000) == "70B" and fmt_compact(12_500) == "12.5k"
