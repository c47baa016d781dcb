"""Figures for monitoring systems: Prometheus exposition (``tokenmeter metrics``) and OTLP push.

Every number comes from the functions the reports, budgets and quota commands use
(``usage_report``, ``budget_statuses``, ``Store.snapshots``, ``Store.source_states``), so the
month's cost, tokens and requests here equal ``tokenmeter report --month`` exactly. All series
are gauges: bills get corrected after the fact, so a value may go down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .budgets import LEVELS
from .config import Config
from .insights import budget_statuses
from .periods import Period, resolve_period
from .plugin_manager import get_sources
from .reports import Report, usage_report
from .store import Store

__all__ = [
    "FAMILIES", "OTHER_MODEL", "PERIODS", "Figures", "Sample", "TokenmeterCollector", "gather",
    "make_server", "parse_listen", "prometheus_text", "serve",
]

OTHER_MODEL = "other"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
PERIODS = ("today", "month")
TOKEN_TYPES = {  # label value -> report column; cache_* are part of input, reasoning part of output
    "input": "input_tokens", "output": "output_tokens", "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens", "reasoning": "reasoning_tokens",
}
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tokenmeter_cost": ("Cost in the currency's units (billed, logged or estimated), as the reports count it.",
                        ("provider", "model", "currency", "cost_kind", "period")),
    "tokenmeter_tokens": ("Tokens by type; cache_read and cache_write are part of input, reasoning of output.",
                          ("provider", "model", "type", "period")),
    "tokenmeter_requests": ("Requests (API calls).", ("provider", "model", "period")),
    "tokenmeter_unpriced_requests": ("Requests with neither a cost from the source nor a known price.",
                                     ("provider", "model", "period")),
    "tokenmeter_budget_ratio": ("Budget or provider quota used / limit (1 = exhausted).", ("budget", "unit")),
    "tokenmeter_budget_level": ("Budget or provider quota level: 0 ok, 1 warning, 2 critical.", ("budget",)),
    "tokenmeter_quota_remaining": ("Remaining amount of the latest provider quota snapshot.",
                                   ("provider", "name", "unit")),
    # the issue's `tokenmeter_quota_total`: promtool rejects a `_total` suffix on anything but a counter
    "tokenmeter_quota_limit": ("Total (limit) of the latest provider quota snapshot.", ("provider", "name", "unit")),
    "tokenmeter_source_last_success_timestamp_seconds": ("Unix time of the source's last successful fetch.",
                                                         ("source",)),
    "tokenmeter_source_up": ("1 if the source's last fetch succeeded, else 0.", ("source",)),
}


@dataclass(frozen=True)
class Sample:
    """One value of one series; ``labels`` in the family's label order."""

    name: str
    labels: tuple[str, ...]
    value: Decimal


@dataclass
class Figures:
    """Everything ``tokenmeter metrics`` exports, plus the periods it covers."""

    samples: list[Sample]
    periods: dict[str, Period] = field(default_factory=dict)
    now: datetime | None = None

    def family(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]


class _Sums:
    """Decimal sums per (family, labels), kept in first-seen order."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[str, ...]], Decimal] = {}

    def add(self, name: str, labels: tuple[str, ...], value: Any) -> None:
        if value is None:  # not reported: no sample, never 0
            return
        key = (name, labels)
        self.values[key] = self.values.get(key, Decimal(0)) + Decimal(value)

    def set(self, name: str, labels: tuple[str, ...], value: Decimal) -> None:
        self.values[(name, labels)] = value

    def samples(self) -> list[Sample]:
        return [Sample(n, labels, v) for (n, labels), v in self.values.items()]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _top_models(report: Report, top: int) -> set[tuple[str, str]]:
    """The ``top`` models per provider by the month's tokens (then requests, then name)."""
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for row in report.rows:
        key = (_text(row["provider"]), _text(row["model"]))
        tokens, requests = totals.get(key, (0, 0))
        totals[key] = (tokens + (row["total_tokens"] or 0), requests + (row["requests"] or 0))
    per_provider: dict[str, list[tuple[str, str]]] = {}
    for key in sorted(totals, key=lambda k: (-totals[k][0], -totals[k][1], k[1])):
        per_provider.setdefault(key[0], []).append(key)
    return {key for keys in per_provider.values() for key in (keys if top <= 0 else keys[:top])}


def _cost_parts(row: dict[str, Any], billed: dict[tuple[Any, ...], dict[str, Any]]) -> list[tuple[str, Decimal]]:
    """A report row's cost split by kind. A ``mixed`` row is split exactly: the sources' own
    costs come from the ``--cost billed`` report of the same group and currency, the rest of the
    row's cost is the price-table estimate."""
    cost, kind = row["cost"], row["cost_kind"]
    if cost is None or row["currency"] is None:
        return []
    if kind != "mixed":
        return [(kind or "estimated", cost)]
    own = billed.get((row["provider"], row["model"], row["source"], row["currency"]))
    if own is None or own["cost"] is None:
        return [("estimated", cost)]
    parts = [(own["cost_kind"] or "billed", own["cost"])]
    if cost - own["cost"]:
        parts.append(("estimated", cost - own["cost"]))
    return parts


def _usage(sums: _Sums, store: Store, period_label: str, period: Period, keep: set[tuple[str, str]] | None,
           month: Report | None = None) -> Report:
    """Add one period's cost, tokens and requests (grouped by provider, model and source) to ``sums``."""
    by = ["provider", "model", "source"]
    report = month or usage_report(store, period, by=by)
    billed: dict[tuple[Any, ...], dict[str, Any]] = {}
    if any(r["cost_kind"] == "mixed" for r in report.rows):
        for r in usage_report(store, period, by=by, cost="billed").rows:
            billed[(r["provider"], r["model"], r["source"], r["currency"])] = r
    for row in report.rows:
        provider, model = _text(row["provider"]), _text(row["model"])
        if keep is not None and (provider, model) not in keep:
            model = OTHER_MODEL
        for kind, cost in _cost_parts(row, billed):
            sums.add("tokenmeter_cost", (provider, model, row["currency"], kind, period_label), cost)
        for type_, column in TOKEN_TYPES.items():
            sums.add("tokenmeter_tokens", (provider, model, type_, period_label), row[column])
        sums.add("tokenmeter_requests", (provider, model, period_label), row["requests"])
        sums.add("tokenmeter_unpriced_requests", (provider, model, period_label), row["unpriced_requests"])
    return report


def _timestamp(value: str | None) -> Decimal | None:
    if not value:
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return Decimal(str(when.timestamp()))


def gather(store: Store, config: Config, now: datetime, tz: tzinfo, *, top: int = 20) -> Figures:
    """Every series' samples, computed from the store as the reports, budgets and quotas see it."""
    periods = {name: resolve_period(now, tz, preset=name) for name in PERIODS}
    sums = _Sums()
    month = usage_report(store, periods["month"], by=["provider", "model", "source"])
    keep = _top_models(month, top) if top > 0 else None
    _usage(sums, store, "today", periods["today"], keep)
    _usage(sums, store, "month", periods["month"], keep, month=month)

    for status in budget_statuses(store, config, now, tz):
        if status.limit:
            sums.set("tokenmeter_budget_ratio", (status.name, status.unit), status.used / status.limit)
        sums.set("tokenmeter_budget_level", (status.name,), Decimal(LEVELS.index(status.level)))

    for snap in store.snapshots(latest=True):
        used, remaining, total = snap["used"], snap["remaining"], snap["total"]
        if remaining is None and total is not None and used is not None:
            remaining = total - used
        if total is None and used is not None and remaining is not None:
            total = used + remaining
        labels = (_text(snap["provider"]), _text(snap["name"]), _text(snap["unit"]))
        sums.add("tokenmeter_quota_remaining", labels, remaining)  # two accounts: their sum
        sums.add("tokenmeter_quota_limit", labels, total)

    states = store.source_states()
    for sid in sorted(get_sources()):
        state = states.get(sid)
        if state is None or not config.source_enabled(sid):
            continue  # never fetched (not configured here) or switched off: nothing to watch
        sums.add("tokenmeter_source_last_success_timestamp_seconds", (sid,), _timestamp(state.get("last_success")))
        up = bool(state.get("last_success")) and not state.get("last_error")
        sums.set("tokenmeter_source_up", (sid,), Decimal(int(up)))
    return Figures(sums.samples(), periods, now)


# -- Prometheus ------------------------------------------------------------------------------------

class TokenmeterCollector:
    """A prometheus-client collector; ``figures`` is called on every collection (every scrape)."""

    def __init__(self, figures: Any) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        figures: Figures = self._figures()
        for name, (doc, labels) in FAMILIES.items():
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            for s in figures.family(name):
                family.add_metric(list(s.labels), float(s.value))
            yield family


def prometheus_text(figures: Figures | Any) -> str:
    """The Prometheus text exposition (0.0.4) of ``figures`` (or of a callable returning them)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(TokenmeterCollector(figures if callable(figures) else lambda: figures))
    return generate_latest(registry).decode("utf-8")


def parse_listen(value: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to loopback."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--serve {value!r}: use [HOST:]PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    render: Any = None  # set per server: () -> str
    lock = threading.Lock()
    _head_only = False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                with self.lock:  # one refresh at a time, however many scrapers
                    body = type(self).render().encode("utf-8")
            except Exception as exc:  # a failed scrape is a 500 with one line, not a dead server
                self._send(500, f"tokenmeter: {type(exc).__name__}: {exc}\n".encode(), "text/plain; charset=utf-8")
                return
            self._send(200, body, CONTENT_TYPE)
        elif path == "/":
            self._send(200, b"tokenmeter metrics: see /metrics\n", "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: see /metrics\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802
        self._head_only = True
        self.do_GET()

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self._head_only:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: scrapes every 15 s
        pass


def make_server(host: str, port: int, render: Any) -> ThreadingHTTPServer:
    """An HTTP server answering ``/metrics`` with ``render()`` (not started)."""
    import socket

    handler = type("MetricsHandler", (_Handler,), {"render": staticmethod(render), "lock": threading.Lock()})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, port), handler)


def serve(host: str, port: int, render: Any, ready: Any = None) -> None:
    """Serve ``/metrics`` until interrupted; ``ready(server)`` is called once it listens."""
    server = make_server(host, port, render)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever()
    finally:
        server.server_close()

