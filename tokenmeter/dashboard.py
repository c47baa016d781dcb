"""The offline HTML dashboard: ``render_dashboard(data) -> str``, one self-contained file.

No CDN, font, image or request of any kind: CSS and the hand-written SVG charts
(``dashboard_assets/``) are inlined, and a Content-Security-Policy (``default-src 'none'``, scripts
allowed by hash only) makes the browser refuse any load even if something slipped in. Every string
from the data is HTML-escaped here, or set with ``textContent`` by the script (model names come
from logs). Figures, budgets, forecast and the table are rendered here, so they show without
JavaScript; the charts are drawn by the script from a JSON block.

The ``data`` contract (every key optional; money as ``Decimal``, decimal string, int or float;
counts as int; ``None`` = unknown, shown as "—", never as 0). Row dicts may be report rows as they
are (``usage_report(...).as_dict()["rows"]``): ``day`` is accepted for ``date`` and
``total_tokens`` for ``tokens``::

    {
      "title": "tokenmeter usage",                    # page title
      "generated_at": "2026-03-15T12:00:00+00:00",    # str or datetime
      "period": {"from": "2026-03-01", "to": "2026-03-31", "tz": "Europe/Berlin", "label": "this month"},
      "currency": "USD",          # the currency charted; rows in other currencies show in the table only
      "summary": {                # a report "total" row (a list of them, one per currency, is fine too)
        "cost": "15.25", "currency": "USD", "cost_kind": "billed|logged|estimated|mixed|None",
        "total_tokens": 1520000, "input_tokens": 1200000, "output_tokens": 320000,
        "requests": 310, "unpriced_requests": 4,
      },
      "daily": [                  # one row per day (several per day are added up); report --by day rows
        {"date": "2026-03-01", "cost": "1.00", "currency": "USD", "cost_kind": "billed",
         "input_tokens": 80000, "output_tokens": 20000, "total_tokens": 100000, "requests": 20,
         "unpriced_requests": 0},
      ],
      "by_model": [               # report --by model,provider rows
        {"model": "acme-large", "provider": "acme", "cost": "9.10", "currency": "USD",
         "cost_kind": "billed", "total_tokens": 900000, "requests": 120},
      ],
      "by_provider": [{"provider": "acme", "cost": "12.00", "currency": "USD", "cost_kind": "mixed",
                       "total_tokens": 1300000, "requests": 250}],
      "budgets": [                # BudgetStatus.to_dict(), optionally | forecast.exhaustion_info(...)
        {"name": "test", "kind": "budget", "used": "812000", "limit": "1000000", "remaining": "188000",
         "percent": "81.20", "level": "critical", "unit": "tokens", "warn": "0.5", "critical": "0.8",
         "period": {"from": "2026-03-01", "to": "2026-03-31", "key": "..."}, "resets_at": None,
         "per_day": "60000", "days_left": 3.13, "exhausted_on": "2026-03-18",
         "period_end": "2026-03-31", "before_period_end": True},
      ],
      "forecast": Forecast.to_dict(),                 # see tokenmeter.forecast
      "by_agent": [               # report --by agent rows; the "By agent" table shows when some row
        {"agent": "main", "cost": "3.10", "currency": "USD",  # names an agent (None = not reported)
         "cost_kind": "estimated", "total_tokens": 700000, "requests": 90},
      ],
      "by_machine": [             # report --by machine rows; the "By machine" table shows when they name
        {"machine": "alice-laptop", "cost": "1.20", ...},  # two machines or more (a team hub)
      ],
      "rows": [                   # the detailed table: any report rows (date/day, week, month, quarter,
        {...},                    # provider, source, account, project, agent, model, metrics, cost,
      ],                          # currency, cost_kind, unpriced_requests); columns appear when some row has them
      "notes": ["acme: 12 logged requests on 2026-03-02 left out; a provider bill covers those days"],
    }

``share`` keys are not needed: the page computes shares from tokens and cost.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from typing import Any

from ._version import __version__
from .dashboard_values import (
    COST_KIND_HELP,
    DASH,
    add,
    as_int,
    as_str,
    chart_data,
    currency_of,
    dec,
    esc,
    fmt_amount,
    fmt_compact,
    fmt_int,
    fmt_money,
    fmt_pct,
    kind_badge,
    kinds_label,
    rows_of,
    tokens_of,
)

__all__ = ["COST_KIND_HELP", "render_dashboard"]

TIME_COLUMNS = ("date", "week", "month", "quarter")
TEXT_COLUMNS = ("machine", "provider", "source", "account", "project", "agent", "model")
COUNT_COLUMNS = (
    ("requests", "Requests"), ("input_tokens", "Input"), ("output_tokens", "Output"),
    ("cache_read_tokens", "Cache read"), ("cache_write_tokens", "Cache write"),
    ("reasoning_tokens", "Reasoning"), ("total_tokens", "Total tokens"),
)
MAX_ROWS = 5000

# registers CSP violations before anything else is parsed (the browser test reads them)
_HEAD_JS = (
    "document.addEventListener('securitypolicyviolation',function(e){var r=document.documentElement;"
    "r.setAttribute('data-csp-violations',String(+(r.getAttribute('data-csp-violations')||0)+1));"
    "r.setAttribute('data-csp-blocked',((r.getAttribute('data-csp-blocked')||'')+' '+e.blockedURI).trim());"
    "});"
)


def _json_for_script(value: Any) -> str:
    """JSON that cannot end the <script> element it sits in."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    for ch, sub in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, sub)
    return text


def _asset(name: str) -> str:
    return resources.files("tokenmeter").joinpath("dashboard_assets", name).read_text(encoding="utf-8")


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


# -- sections --------------------------------------------------------------------------------------


def _summary(data: Mapping[str, Any], currency: str | None, charts: Mapping[str, Any]) -> str:
    rows = rows_of(data.get("summary"))
    if not rows:  # no summary given: add up the daily rows
        rows = rows_of(data.get("daily"))
    main = [r for r in rows if not currency or not r.get("currency") or r.get("currency") == currency]
    cost = None
    kinds: set[str] = set()
    for r in main:
        cost = add(cost, dec(r.get("cost")))
        if r.get("cost_kind") and dec(r.get("cost")) is not None:
            kinds.add(str(r["cost_kind"]))
    others = [fmt_money(r.get("cost"), r.get("currency"))
              for r in rows if r not in main and dec(r.get("cost")) is not None]
    tokens = inp = out = requests = unpriced = None
    for r in rows:
        tokens = add(tokens, tokens_of(r))
        inp = add(inp, as_int(r.get("input_tokens")))
        out = add(out, as_int(r.get("output_tokens")))
        requests = add(requests, as_int(r.get("requests")))
        unpriced = add(unpriced, as_int(r.get("unpriced_requests")))
    kind = kinds_label(kinds)

    cost_detail = [kind_badge(kind)] if kind else []
    if others:
        cost_detail.append("also " + esc(", ".join(others)))
    if unpriced:
        cost_detail.append(f'<span class="warn-text">{fmt_int(unpriced)} requests unpriced</span>')
    token_detail = f"{fmt_int(tokens)} tokens"
    if inp is not None or out is not None:
        token_detail += f" \u00b7 in {fmt_compact(inp)} \u00b7 out {fmt_compact(out)}"
    days = len(charts["daily"])
    avg = (cost / days) if cost is not None and days else None
    per_req = f"{fmt_int(Decimal(tokens) / requests)} tokens per request" if tokens and requests else ""
    cards = [
        ("cost", "Cost", fmt_money(cost, currency), " ".join(cost_detail) or "&nbsp;"),
        ("tokens", "Tokens", fmt_compact(tokens), esc(token_detail)),
        ("requests", "Requests", fmt_int(requests), esc(per_req) or "&nbsp;"),
        ("daily-average", "Daily average", fmt_money(avg, currency),
         esc(f"over {days} day{'s' if days != 1 else ''} with usage") if days else "&nbsp;"),
    ]
    fc = data.get("forecast") or {}
    if fc.get("projected_cost") is not None or fc.get("projected_tokens") is not None:
        # the forecast is for the current month, in its own currency (not always the period's)
        cards.append(("projected", "Projected month-end",
                      fmt_money(fc.get("projected_cost"), fc.get("currency") or currency),
                      esc(f"{fmt_compact(fc.get('projected_tokens'))} tokens")))
    html = ['<section class="figures" id="summary" aria-label="Summary">']
    for key, label, value, detail in cards:
        exact = f' title="{esc(token_detail)}"' if key == "tokens" else ""
        html.append(f'<div class="figure" data-figure="{key}"><div class="label">{label}</div>'
                    f'<div class="value"{exact}>{esc(value)}</div><div class="detail">{detail}</div></div>')
    html.append("</section>")
    return "".join(html)


def _budgets(data: Mapping[str, Any]) -> str:
    budgets = rows_of(data.get("budgets"))
    html = ['<section class="card" id="budgets"><div class="card-head"><h2>Budgets &amp; quotas</h2>'
            '<span class="sub">bars mark the warning and critical thresholds</span></div>']
    if not budgets:
        html.append('<p class="empty">No budgets configured. Add <code>[budgets.&lt;name&gt;]</code> '
                    "to the config file.</p></section>")
        return "".join(html)
    html.append('<div class="budgets">')
    for b in budgets:
        level = str(b.get("level") or "ok")
        level = level if level in ("ok", "warning", "critical") else "ok"
        unit = as_str(b.get("unit"))
        percent = dec(b.get("percent")) or Decimal(0)
        width = max(Decimal(0), min(Decimal(100), percent))
        marks = "".join(f'<i class="mark" style="left:{dec(b.get(k)) * 100:.1f}%"></i>'  # type: ignore[operator]
                        for k in ("warn", "critical") if dec(b.get(k)) is not None)
        period = b.get("period") if isinstance(b.get("period"), Mapping) else {}
        foot = [f"{esc(fmt_amount(b.get('used'), unit))} of {esc(fmt_amount(b.get('limit'), unit))} used",
                f"{esc(fmt_amount(b.get('remaining'), unit))} left"]
        if b.get("resets_at"):
            foot.append(f"resets {esc(str(b['resets_at'])[:16].replace('T', ' '))}")
        elif period.get("from") or period.get("to"):
            foot.append(f"{esc(period.get('from') or '')}..{esc(period.get('to') or '')}")
        days = b.get("days_left")
        if days is not None and float(days) <= 0:
            foot.append('<span class="runout">exhausted</span>')
        elif days is not None and b.get("before_period_end") is False:
            foot.append(f'<span class="runout">lasts past {esc(b.get("period_end"))} at this rate</span>')
        elif days is not None:
            when = f" ({esc(b.get('exhausted_on'))})" if b.get("exhausted_on") else ""
            foot.append(f'<span class="runout">runs out in ~{float(days):.1f} days{when}</span>')
        elif "days_left" in b and (dec(b.get("remaining")) or 0) > 0:
            foot.append('<span class="runout">not running out at the current rate</span>')
        kind = "provider quota" if b.get("kind") == "quota" else "budget"
        html.append(
            f'<div class="budget {level}" data-budget="{esc(b.get("name"))}" data-level="{level}">'
            f'<div class="budget-head"><span class="name">{esc(b.get("name"))}</span>'
            f'<span class="kind">{kind}</span><span class="badge {level}">{level}</span>'
            f'<span class="pct">{esc(f"{percent}%")}</span></div>'
            f'<div class="meter" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{width:.1f}" aria-label="{esc(b.get("name"))}">'
            f'<span class="fill" style="width:{width:.2f}%"></span>{marks}</div>'
            f'<div class="budget-foot">{"".join(f"<span>{f}</span>" for f in foot)}</div></div>'
        )
    html.append("</div></section>")
    return "".join(html)


def _charts(charts: Mapping[str, Any]) -> str:
    kinds = "".join(f'<span><i class="swatch {k}"></i>{k}</span>' for k in COST_KIND_HELP)
    has_days = bool(charts["daily"])
    daily = (
        '<div class="charts2"><div><div class="chart-title"><b>Cost per day</b>' + kinds + "</div>"
        '<div class="chart" id="chart-daily-cost"></div></div>'
        '<div><div class="chart-title"><b>Tokens per day</b>'
        '<span><i class="swatch" style="background:var(--input)"></i>input</span>'
        '<span><i class="swatch" style="background:var(--output)"></i>output</span></div>'
        '<div class="chart" id="chart-daily-tokens"></div></div></div>'
        if has_days else '<p class="empty">No usage in this period.</p>'
    )
    seg = ('<div class="seg" data-for="{id}" role="group" aria-label="metric">'
           '<button type="button" data-metric="tokens" aria-pressed="true">Tokens</button>'
           '<button type="button" data-metric="cost" aria-pressed="false">Cost</button></div>')

    def share(id_: str, title: str, items: list[Any]) -> str:
        body = (f'<div class="donut-wrap"><div class="chart" id="chart-{id_}"></div>'
                f'<ul class="donut-legend" id="legend-{id_}"></ul></div>'
                if items else '<p class="empty">No data.</p>')
        return (f'<section class="card" id="{id_}"><div class="card-head"><h2>{title}</h2>'
                f'{seg.format(id=id_) if items else ""}</div>{body}</section>')

    cost_model = ('<div class="chart" id="chart-cost-model"></div>'
                  if any(m["cost"] for m in charts["by_model"]) else '<p class="empty">No priced usage.</p>')
    return (
        '<section class="card" id="daily"><div class="card-head"><h2>Daily trend</h2>'
        '<span class="sub">hover or tap a day for its figures</span></div>' + daily + "</section>"
        '<div class="grid2">' + share("share-model", "Share by model", charts["by_model"])
        + share("share-provider", "Share by provider", charts["by_provider"]) + "</div>"
        '<section class="card" id="cost-model"><div class="card-head"><h2>Cost by model</h2>'
        f'<span class="kinds">{kinds}</span></div>{cost_model}</section>'
    )


def _forecast(data: Mapping[str, Any], currency: str | None) -> str:
    fc = data.get("forecast")
    html = ['<section class="card" id="forecast"><div class="card-head"><h2>Forecast</h2>']
    if not isinstance(fc, Mapping) or not fc:
        html.append('</div><p class="empty">No forecast available.</p></section>')
        return "".join(html)
    window = fc.get("window") if isinstance(fc.get("window"), Mapping) else {}
    month = fc.get("month") if isinstance(fc.get("month"), Mapping) else {}
    cur = fc.get("currency") or currency
    rate_from = esc(window.get("label") or "recent days")
    html.append(f'<span class="sub">daily rate from the {rate_from}</span></div>')
    boxes = [
        ("month-to-date", "Month to date", fmt_money(fc.get("month_to_date_cost"), cur),
         f"{fmt_int(fc.get('month_to_date_tokens'))} tokens"),
        ("rate", "Daily rate", fmt_money(fc.get("cost_per_day"), cur),
         f"{fmt_int(fc.get('tokens_per_day'))} tokens/day"),
        ("projected", f"Projected by {month.get('to') or 'month end'}",
         fmt_money(fc.get("projected_cost"), cur),
         f"{fmt_int(fc.get('projected_tokens'))} tokens \u00b7 {fmt_int(fc.get('days_left'))} days left"),
    ]
    html.append('<div class="fgrid">')
    for key, label, value, detail in boxes:
        html.append(f'<div class="fbox" data-forecast="{key}"><div class="label">{esc(label)}</div>'
                    f'<div class="value">{esc(value)}</div><div class="detail">{esc(detail)}</div></div>')
    html.append("</div>")
    runout = [b for b in rows_of(data.get("budgets")) if "days_left" in b]
    if runout:
        html.append('<div class="table-wrap"><table id="exhaustion"><thead><tr><th>Budget or quota</th>'
                    '<th class="n">Remaining</th><th class="n">Per day</th><th class="n">Days left</th>'
                    "<th>Runs out on</th></tr></thead><tbody>")
        for b in runout:
            unit = as_str(b.get("unit"))
            days = b.get("days_left")
            if days is None:
                days_text = "never at this rate"
            else:
                days_text = "exhausted" if float(days) <= 0 else f"{float(days):.1f}"
                if float(days) > 0 and b.get("before_period_end") is False:
                    days_text += f" (resets {as_str(b.get('period_end'))} first)"
            html.append(f'<tr data-budget="{esc(b.get("name"))}"><td>{esc(b.get("name"))}</td>'
                        f'<td class="n">{esc(fmt_amount(b.get("remaining"), unit))}</td>'
                        f'<td class="n">{esc(fmt_amount(b.get("per_day"), unit))}</td>'
                        f'<td class="n">{esc(days_text)}</td>'
                        f'<td>{esc(b.get("exhausted_on") or DASH)}</td></tr>')
        html.append("</tbody></table></div>")
    html.append("</section>")
    return "".join(html)


def _agents(data: Mapping[str, Any], currency: str | None) -> str:
    """The "By agent" table, only when some row names an agent (a source that reports them)."""
    if not any(r.get("agent") is not None for r in rows_of(data.get("by_agent"))):
        return ""
    return _table(data, currency, rows_key="by_agent", section="agents", title="By agent", table_id="agent-table")


def _machines(data: Mapping[str, Any], currency: str | None) -> str:
    """The "By machine" table, on a team hub: only when the rows name more than one machine."""
    if len({r.get("machine") for r in rows_of(data.get("by_machine"))} - {None}) < 2:
        return ""
    return _table(data, currency, rows_key="by_machine", section="machines", title="By machine",
                  table_id="machine-table")


def _table(data: Mapping[str, Any], currency: str | None, *, rows_key: str = "rows", section: str = "details",
           title: str = "Details", table_id: str = "detail-table") -> str:
    """A sortable table of report rows: ``data[rows_key]`` (the details, or the per-agent rows)."""
    rows = rows_of(data.get(rows_key))
    html = [f'<section class="card" id="{section}"><div class="card-head"><h2>{title}</h2>']
    if not rows:
        html.append('</div><p class="empty">No rows.</p></section>')
        return "".join(html)
    shown = rows[:MAX_ROWS]
    more = f" \u00b7 first {MAX_ROWS:,} of {len(rows):,} rows" if len(rows) > MAX_ROWS else ""
    html.append(f'<span class="sub">click a column to sort{more}</span></div>')

    def has(key: str) -> bool:
        return any(r.get(key) is not None for r in shown)

    date_key = "date" if has("date") else "day"
    cols: list[tuple[str, str, str]] = []  # (key, title, type)
    for key in (date_key, *TIME_COLUMNS[1:]):
        if has(key):
            cols.append((key, "Date" if key == date_key else key.capitalize(), "text"))
    cols += [(k, k.capitalize(), "text") for k in TEXT_COLUMNS if has(k)]
    cols += [(k, title, "int") for k, title in COUNT_COLUMNS if has(k)]
    if not has("total_tokens") and has("tokens"):
        cols.append(("tokens", "Tokens", "int"))
    cols += [("cost", "Cost", "money"), ("cost_kind", "Kind", "kind")]
    if has("unpriced_requests") and any(as_int(r.get("unpriced_requests")) for r in shown):
        cols.append(("unpriced_requests", "Unpriced", "int"))
    total_cost = sum((dec(r.get("cost")) or Decimal(0) for r in rows
                      if not currency or not r.get("currency") or r.get("currency") == currency), Decimal(0))
    total_tokens = sum((tokens_of(r) or 0 for r in rows), 0)
    cols += [("%cost", "% cost", "pct"), ("%tokens", "% tokens", "pct")]

    html.append(f'<div class="table-wrap"><table class="sortable" id="{table_id}"><thead><tr>')
    for key, title, kind in cols:
        cls = "n" if kind in ("int", "money", "pct") else ""
        html.append(f'<th class="{cls}" data-col="{key}">{esc(title)}</th>')
    html.append("</tr></thead><tbody>")
    for r in shown:
        html.append("<tr>")
        for key, _title, kind in cols:
            if kind == "int":
                v = as_int(r.get(key))
                html.append(f'<td class="n" data-sort="{v if v is not None else ""}">{fmt_int(v)}</td>')
            elif kind == "money":
                v = dec(r.get("cost"))
                html.append(f'<td class="n" data-sort="{v if v is not None else ""}">'
                            f"{esc(fmt_money(v, r.get('currency') or currency))}</td>")
            elif kind == "kind":
                html.append(f"<td>{kind_badge(r.get('cost_kind'))}</td>")
            elif kind == "pct":
                same = not currency or not r.get("currency") or r.get("currency") == currency
                part, whole = (r.get("cost"), total_cost) if key == "%cost" else (tokens_of(r), total_tokens)
                text = fmt_pct(part, whole) if key != "%cost" or same else DASH
                sort = text.rstrip("%") if text != DASH else ""
                html.append(f'<td class="n" data-sort="{sort}">{text}</td>')
            else:
                v = as_str(r.get(key))
                cls = ' class="model"' if key == "model" else ""
                title = f' title="{esc(v)}"' if key == "model" and v else ""
                html.append(f"<td{cls}{title}>{esc(v) if v else DASH}</td>")
        html.append("</tr>")
    html.append("</tbody></table></div>")
    notes = [n for n in (data.get("notes") or []) if n] if rows_key == "rows" else []
    if notes:
        html.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    html.append("</section>")
    return "".join(html)


# -- the page --------------------------------------------------------------------------------------


def render_dashboard(data: Mapping[str, Any]) -> str:
    """Render the dashboard described by ``data`` (see the module docstring) as one HTML string."""
    currency = currency_of(data)
    charts = chart_data(data, currency)
    title = as_str(data.get("title")) or "tokenmeter usage"
    period = data.get("period") if isinstance(data.get("period"), Mapping) else {}
    span = ""
    if period.get("from") or period.get("to"):
        span = f"{as_str(period.get('from')) or '…'} \u2192 {as_str(period.get('to')) or 'now'}"
    meta = [x for x in (
        as_str(period.get("label")),
        span,
        f"zone {as_str(period.get('tz'))}" if period.get("tz") else "",
        f"costs in {currency}" if currency else "",
        f"generated {as_str(data.get('generated_at')).replace('T', ' ')}" if data.get("generated_at") else "",  # type: ignore[union-attr]
    ) if x]
    legend = "".join(f'<span><i class="swatch {k}"></i><b>{k}</b> {esc(v)}</span>'
                     for k, v in COST_KIND_HELP.items() if k != "mixed")

    js = _asset("dashboard.js")
    csp = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src {_sha256(_HEAD_JS)} {_sha256(js)}; base-uri 'none'; form-action 'none'")
    body = "".join([
        _summary(data, currency, charts),
        _budgets(data),
        _charts(charts),
        _forecast(data, currency),
        _machines(data, currency),
        _agents(data, currency),
        _table(data, currency),
    ])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta name="color-scheme" content="light dark"><title>{esc(title)}</title>'
        f"<script>{_HEAD_JS}</script>"
        f"<style>{_asset('dashboard.css')}</style></head><body>"
        '<div class="wrap"><header class="top"><div>'
        f'<h1>{esc(title)}</h1><p class="meta">{esc(" · ".join(meta))}</p></div>'
        f'<p class="legend" id="cost-kinds">{legend}</p></header>'
        f"<main>{body}</main>"
        f"<footer>tokenmeter {esc(__version__)} \u00b7 one offline file: no network requests</footer></div>"
        '<div id="tip" class="tip" role="tooltip" hidden></div>'
        f'<script type="application/json" id="tm-data">{_json_for_script(charts)}</script>'
        f"<script>{js}</script></body></html>\n"
    )
