"""Push ``tokenmeter metrics`` figures over OTLP/HTTP (``pip install 'tokenmeter[otlp]'``).

Names and attributes follow the OpenTelemetry semantic conventions for GenAI metrics, pinned to
version 1.37.0 (``SEMCONV_VERSION``): ``gen_ai.client.token.usage`` is a histogram in ``{token}``
with ``gen_ai.provider.name``, ``gen_ai.request.model`` and ``gen_ai.token.type`` (``input`` /
``output``). tokenmeter knows period totals, not single calls, so each data point covers the
period (``start`` = the period's first midnight): ``sum`` = the tokens, ``count`` = the requests,
one bucket (no bounds). The conventions have no cost metric yet: ``tokenmeter.cost`` carries the
cost with ``tokenmeter.currency`` and ``tokenmeter.cost_kind``. Every Prometheus series is also
pushed as a ``tokenmeter.*`` gauge, so nothing is lost in either form.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlsplit

from ._version import __version__
from .errors import ConfigError, ProviderUnavailable
from .metrics import FAMILIES, Figures

__all__ = ["SCHEMA_URL", "SEMCONV_VERSION", "build_metrics_data", "push"]

SEMCONV_VERSION = "1.37.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
TOKEN_USAGE = "gen_ai.client.token.usage"
PROVIDER, MODEL, TOKEN_TYPE = "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.token.type"

# Prometheus family -> (OTLP gauge name, unit, attribute name per label)
GAUGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "tokenmeter_cost": ("tokenmeter.cost", "{currency}",
                        (PROVIDER, MODEL, "tokenmeter.currency", "tokenmeter.cost_kind", "tokenmeter.period")),
    "tokenmeter_tokens": ("tokenmeter.tokens", "{token}", (PROVIDER, MODEL, TOKEN_TYPE, "tokenmeter.period")),
    "tokenmeter_requests": ("tokenmeter.requests", "{request}", (PROVIDER, MODEL, "tokenmeter.period")),
    "tokenmeter_unpriced_requests": ("tokenmeter.unpriced_requests", "{request}",
                                     (PROVIDER, MODEL, "tokenmeter.period")),
    "tokenmeter_budget_ratio": ("tokenmeter.budget.ratio", "1", ("tokenmeter.budget", "tokenmeter.unit")),
    "tokenmeter_budget_level": ("tokenmeter.budget.level", "1", ("tokenmeter.budget",)),
    "tokenmeter_quota_remaining": ("tokenmeter.quota.remaining", "1",
                                   (PROVIDER, "tokenmeter.quota.name", "tokenmeter.unit")),
    "tokenmeter_quota_limit": ("tokenmeter.quota.limit", "1", (PROVIDER, "tokenmeter.quota.name", "tokenmeter.unit")),
    "tokenmeter_source_last_success_timestamp_seconds": ("tokenmeter.source.last_success", "s",
                                                         ("tokenmeter.source",)),
    "tokenmeter_source_up": ("tokenmeter.source.up", "1", ("tokenmeter.source",)),
}
assert set(GAUGES) == set(FAMILIES)


def _attrs(names: Sequence[str], values: Sequence[str]) -> dict[str, str]:
    # an unknown model is "" in Prometheus (the same as no label); in OTLP the attribute is left out
    return {k: v for k, v in zip(names, values, strict=True) if not (k == MODEL and v == "")}


def _nanos(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def build_metrics_data(figures: Figures, *, service_name: str = "tokenmeter") -> Any:
    """The SDK's ``MetricsData`` for ``figures`` (ready for any OTLP metric exporter)."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    now = figures.now or datetime.now(UTC)
    now_ns = _nanos(now)
    starts = {name: _nanos(datetime.combine(p.start, time(0), p.tz)) for name, p in figures.periods.items()
              if p.start is not None}
    metrics = []

    requests = {s.labels: s.value for s in figures.family("tokenmeter_requests")}
    points = []
    for s in figures.family("tokenmeter_tokens"):
        provider, model, type_, period = s.labels
        count = requests.get((provider, model, period))
        if type_ not in ("input", "output") or count is None:
            continue  # the conventions' types only; a count is needed for a histogram
        points.append(HistogramDataPoint(
            attributes=_attrs((PROVIDER, MODEL, TOKEN_TYPE, "tokenmeter.period"), s.labels),
            start_time_unix_nano=starts.get(period, now_ns), time_unix_nano=now_ns, count=int(count),
            sum=int(s.value), bucket_counts=[int(count)], explicit_bounds=[],
            # the single calls' min and max are unknown: left unset (optional fields in OTLP)
            min=None, max=None))  # type: ignore[arg-type]
    if points:
        metrics.append(Metric(name=TOKEN_USAGE, description="Number of input and output tokens used.",
                              unit="{token}", data=Histogram(
                                  data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE)))

    for family, (name, unit, attr_names) in GAUGES.items():
        samples = figures.family(family)
        if not samples:
            continue
        gauge_points = [NumberDataPoint(attributes=_attrs(attr_names, s.labels), start_time_unix_nano=0,
                                        time_unix_nano=now_ns, value=float(s.value)) for s in samples]
        metrics.append(Metric(name=name, description=FAMILIES[family][0], unit=unit,
                              data=Gauge(data_points=gauge_points)))

    scope = InstrumentationScope("tokenmeter", __version__, SCHEMA_URL)
    resource = Resource.create({"service.name": service_name}, schema_url=SCHEMA_URL)
    return MetricsData(resource_metrics=[ResourceMetrics(
        resource=resource, scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url=SCHEMA_URL)],
        schema_url=SCHEMA_URL)])


def endpoint(url: str) -> str:
    """The OTLP/HTTP metrics URL: a bare collector address gets ``/v1/metrics``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--otlp {url!r}: use an http(s) URL, e.g. http://localhost:4318")
    return url if parts.path not in ("", "/") else url.rstrip("/") + "/v1/metrics"


def push(figures: Figures, url: str, *, timeout: float = 30.0) -> int:
    """Send ``figures`` to the OTLP/HTTP endpoint; returns the number of metrics sent."""
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import MetricExportResult
    except ImportError:
        raise ConfigError("--otlp needs the OpenTelemetry packages: pip install 'tokenmeter[otlp]'") from None
    data = build_metrics_data(figures)
    exporter = OTLPMetricExporter(endpoint=endpoint(url), timeout=timeout)
    try:
        result = exporter.export(data, timeout_millis=timeout * 1000)
    except Exception as exc:  # older exporters let a connection error through
        raise ProviderUnavailable(f"OTLP push to {url} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        exporter.shutdown()
    if result is not MetricExportResult.SUCCESS:
        raise ProviderUnavailable(f"OTLP push to {url} failed (the exporter's warning above says why)")
    return sum(len(sm.metrics) for rm in data.resource_metrics for sm in rm.scope_metrics)
