"""`tokenmeter metrics`: Prometheus exposition, --serve, --top, OTLP push, the Grafana examples (issue 17)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers_host import cli_json, cli_run, make_source, rec, register

from tokenmeter import Cursor, QuotaSnapshot
from tokenmeter.metrics import FAMILIES, parse_listen

NOW = "2026-03-20T12:00:00Z"
ENV = {"TOKENMETER_NOW": NOW}
DAY = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
EARLIER = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
WEIRD = 'we"ird\\model\nname'


def promtool() -> str:
    """promtool's path; skipped with a message where it is missing, a failure under CI=true."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found: install Debian's `prometheus` package (tools/test.sh does, as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def needs_otlp() -> None:
    """The OTLP packages (the `test` extra has them); a skip where missing, a failure under CI=true."""
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
        import opentelemetry.proto  # noqa: F401
    except ImportError as exc:
        message = f"{exc.name} is not installed: pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_missing_tools_skip_but_fail_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="prometheus"):
        promtool()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="prometheus"):
        promtool()


def exact(text: str) -> list[tuple[str, dict[str, str], Decimal]]:
    """Samples with their values as printed, as ``Decimal`` (the parser handles the label escapes)."""
    from prometheus_client.parser import text_string_to_metric_families

    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    # one line per sample, in order: the value is the line's last field
    values = [ln.rsplit(" ", 1)[1] for ln in lines]
    assert len(values) == len(samples)
    return [(s.name, dict(s.labels), Decimal(v)) for s, v in zip(samples, values, strict=True)]


def total(samples: list[tuple[str, dict[str, str], Decimal]], name: str, **labels: str) -> Decimal:
    return sum((v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items())),
               Decimal(0))


PRICES = """
[[prices."tm-coder"]]
provider = "qwen"
input = 1
output = 4
currency = "USD"

[[prices."tm-coder"]]
provider = "qwen-beijing"
input = 2
output = 8
currency = "CNY"
"""


def write_config(home: Path, text: str = "") -> None:
    """The config: ``text`` plus prices of our own (estimates must not depend on the shipped table)."""
    (home / "config.toml").write_text(text + PRICES)


def usage_sources(extra: list[Any] | None = None) -> None:
    """Two providers and several models, costs billed, logged, estimated and unpriced, two currencies.

    Call ``write_config`` first: the estimates come from its prices."""
    bills = [
        rec("b1", start=EARLIER, provider="openrouter", model="anthropic/claude-sonnet-4", requests=7,
            input_tokens=70_000, output_tokens=7_000, cache_read_tokens=20_000, cost="1.234567891"),
        rec("b2", start=DAY, provider="openrouter", model="openai/gpt-5", requests=3, input_tokens=30_000,
            output_tokens=3_000, reasoning_tokens=1_000, cost="0.5"),
        Cursor({"done": True}),
    ]
    logs = [
        # logged cost and price-table estimate for the same model: a "mixed" group, split exactly
        rec("l1", start=EARLIER, provider="qwen", model="tm-coder", requests=2, input_tokens=12_000,
            output_tokens=800, cost="0.0123", cost_kind="logged"),
        rec("l2", start=DAY, provider="qwen", model="tm-coder", requests=5, input_tokens=50_000,
            output_tokens=4_000, cache_read_tokens=10_000),
        rec("l3", start=DAY, provider="qwen", model="no-such-model-xyz", requests=4, input_tokens=4_000,
            output_tokens=400),  # unpriced: counted, never $0
        rec("l4", start=EARLIER, provider="qwen-beijing", model="tm-coder", requests=1,
            input_tokens=100_000, output_tokens=1_000),  # estimated in CNY
        # a local log of a call the bill already covers: left out, as in the report
        rec("l5", start=EARLIER, provider="openrouter", model="anthropic/claude-sonnet-4", requests=1,
            input_tokens=5, output_tokens=5),
        *(extra or []),
        Cursor({"done": True}),
    ]
    register(make_source("bills", bills, provider="openrouter", kind="ledger"),
             make_source("logs", logs, provider="qwen"))
    assert cli_run(["fetch"], env=ENV).exit_code == 0


def metrics(*args: str) -> str:
    result = cli_run(["metrics", *args], env=ENV)
    assert result.exit_code == 0, result.output
    return result.stdout


def report_totals(period: str) -> list[dict[str, Any]]:
    data = cli_json(["report", f"--{period}", "--json"], env=ENV)
    return data["total"] if isinstance(data["total"], list) else [data["total"]]


@pytest.mark.parametrize("period", ["month", "today"])
def test_figures_equal_the_report_exactly(tokenmeter_env, period):
    write_config(tokenmeter_env)
    usage_sources()
    samples = exact(metrics("--offline"))
    totals = report_totals(period)
    assert len(totals) == 2 if period == "month" else len(totals) == 1  # USD and CNY
    for t in totals:
        assert total(samples, "tokenmeter_cost", period=period, currency=t["currency"]) == Decimal(t["cost"])
    for column, name, labels in [("requests", "tokenmeter_requests", {}),
                                 ("unpriced_requests", "tokenmeter_unpriced_requests", {}),
                                 ("input_tokens", "tokenmeter_tokens", {"type": "input"}),
                                 ("output_tokens", "tokenmeter_tokens", {"type": "output"}),
                                 ("cache_read_tokens", "tokenmeter_tokens", {"type": "cache_read"}),
                                 ("reasoning_tokens", "tokenmeter_tokens", {"type": "reasoning"})]:
        assert total(samples, name, period=period, **labels) == sum(t[column] or 0 for t in totals), column
    kinds = {lab["cost_kind"] for n, lab, _ in samples if n == "tokenmeter_cost"}
    assert kinds <= {"billed", "logged", "estimated"}
    if period == "month":
        assert kinds == {"billed", "logged", "estimated"}
        # the mixed group is split into its logged part and its estimate, in the same currency
        coder = {lab["cost_kind"]: v for n, lab, v in samples if n == "tokenmeter_cost"
                 and lab["model"] == "tm-coder" and lab["provider"] == "qwen" and lab["period"] == "month"}
        assert coder["logged"] == Decimal("0.0123") and coder["estimated"] > 0
        assert total(samples, "tokenmeter_unpriced_requests", period="month", model="no-such-model-xyz") == 4
        assert not [1 for n, lab, _ in samples if n == "tokenmeter_cost" and lab["model"] == "no-such-model-xyz"]
        assert total(samples, "tokenmeter_cost", period="month", cost_kind="billed") == Decimal("1.734567891")
        # no "cache_write" series: no source reported it (unknown is not 0)
        assert not [1 for n, lab, _ in samples if n == "tokenmeter_tokens" and lab["type"] == "cache_write"]


def test_every_family_is_described_and_gauges_only(tokenmeter_env):
    write_config(tokenmeter_env)
    usage_sources()
    text = metrics("--offline")
    for name in FAMILIES:
        assert f"# TYPE {name} gauge\n" in text
    assert "# TYPE" in text and " counter" not in text


def test_promtool_accepts_the_output(tokenmeter_env, tmp_path):
    tool = promtool()
    write_config(tokenmeter_env, '[budgets.monthly]\nlimit = 100\ncurrency = "USD"\n')
    usage_sources([rec("w1", start=DAY, provider="qwen", model=WEIRD, requests=1)])
    quota_sources()
    cli_run(["fetch", "plan"], env=ENV)
    cli_run(["fetch", "broken"], env=ENV)
    text = metrics("--offline")
    assert "tokenmeter_quota_limit{" in text and "tokenmeter_source_up{" in text
    result = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_label_values_are_escaped(tokenmeter_env):
    write_config(tokenmeter_env)
    usage_sources([rec("w1", start=DAY, provider="qwen", model=WEIRD, requests=1, input_tokens=9,
                       output_tokens=1)])
    text = metrics("--offline")
    assert 'model="we\\"ird\\\\model\\nname"' in text
    assert not [ln for ln in text.splitlines() if ln.startswith("name") or ln.startswith("model")]
    samples = exact(text)
    assert total(samples, "tokenmeter_requests", period="today", model=WEIRD) == 1


def test_top_n_models_per_provider_rest_as_other(tokenmeter_env):
    extra = [rec(f"m{i}", start=DAY, provider="acme", model=f"model-{i}", requests=i, input_tokens=1000 * i,
                 output_tokens=0) for i in range(1, 7)]
    write_config(tokenmeter_env)
    usage_sources(extra)
    samples = exact(metrics("--offline", "--top", "2"))
    acme = {lab["model"]: v for n, lab, v in samples
            if n == "tokenmeter_requests" and lab["provider"] == "acme" and lab["period"] == "month"}
    assert acme == {"model-6": 6, "model-5": 5, "other": 1 + 2 + 3 + 4}
    for provider in ("qwen", "openrouter", "qwen-beijing", "acme"):
        models = {lab["model"] for n, lab, _ in samples if lab.get("provider") == provider and "model" in lab}
        assert len(models) <= 3, (provider, models)
    # the totals do not change
    assert total(samples, "tokenmeter_requests", period="month") == sum(t["requests"] for t in report_totals("month"))
    everything = exact(metrics("--offline", "--top", "0"))
    assert {lab["model"] for n, lab, _ in everything if lab.get("provider") == "acme"} == {
        f"model-{i}" for i in range(1, 7)}


def quota_sources() -> None:
    """Quota snapshots (a coding plan at 90 %, credits) and a source whose fetch fails."""
    plan = QuotaSnapshot(provider="qwen", name="coding-plan/per_5h", unit="requests",
                         observed_at=datetime(2026, 3, 20, 10, tzinfo=UTC), used=Decimal(900), total=Decimal(1000),
                         remaining=Decimal(100), resets_at=datetime(2026, 3, 20, 15, tzinfo=UTC))
    credits = QuotaSnapshot(provider="openrouter", name="credits", unit="USD",
                            observed_at=datetime(2026, 3, 20, 10, tzinfo=UTC), used=Decimal("2.5"),
                            total=Decimal(10))

    def broken(self: Any, window: Any, cursor: Any) -> Iterator[Any]:
        raise RuntimeError("provider down")
        yield

    register(make_source("plan", [plan, credits, Cursor({})], kind="ledger"),
             make_source("broken", broken, kind="ledger"), name="quota-plugin")


def test_budget_quota_and_source_series(tokenmeter_env):
    write_config(tokenmeter_env, '[budgets.monthly]\nlimit = 10\ncurrency = "USD"\n'
                                 '[budgets.tokens]\nlimit = 400000\nunit = "tokens"\nwarn = 0.5\ncritical = 0.9\n')
    usage_sources()
    quota_sources()
    before = time.time()
    assert cli_run(["fetch", "plan"], env=ENV).exit_code == 0
    after = time.time()
    assert cli_run(["fetch", "broken"], env=ENV).exit_code != 0
    samples = exact(metrics("--offline"))
    got = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples}
    budgets = {b["name"]: b for b in json.loads(cli_run(["budget", "--json"], env=ENV).stdout)["budgets"]}
    used_usd = Decimal(budgets["monthly"]["used"])
    assert got[("tokenmeter_budget_ratio", (("budget", "monthly"), ("unit", "USD")))] == used_usd / 10
    tokens_used = Decimal(budgets["tokens"]["used"])
    assert got[("tokenmeter_budget_ratio", (("budget", "tokens"), ("unit", "tokens")))] == tokens_used / 400000
    assert got[("tokenmeter_budget_level", (("budget", "tokens"),))] == 1  # 0.5 <= ratio < 0.9
    assert got[("tokenmeter_budget_level", (("budget", "monthly"),))] == 0
    assert got[("tokenmeter_budget_level", (("budget", "qwen:coding-plan/per_5h"),))] == 2
    assert got[("tokenmeter_budget_ratio", (("budget", "qwen:coding-plan/per_5h"), ("unit", "requests")))] == Decimal(
        "0.9")
    q = (("name", "coding-plan/per_5h"), ("provider", "qwen"), ("unit", "requests"))
    assert (got[("tokenmeter_quota_remaining", q)], got[("tokenmeter_quota_limit", q)]) == (100, 1000)
    c = (("name", "credits"), ("provider", "openrouter"), ("unit", "USD"))
    assert (got[("tokenmeter_quota_remaining", c)], got[("tokenmeter_quota_limit", c)]) == (Decimal("7.5"), 10)
    assert got[("tokenmeter_source_up", (("source", "plan"),))] == 1
    assert got[("tokenmeter_source_up", (("source", "broken"),))] == 0
    assert got[("tokenmeter_source_up", (("source", "bills"),))] == 1
    stamp = got[("tokenmeter_source_last_success_timestamp_seconds", (("source", "plan"),))]
    assert before - 1 <= stamp <= after + 1
    # a source that never succeeded has no timestamp (unknown, not 1970)
    assert ("tokenmeter_source_last_success_timestamp_seconds", (("source", "broken"),)) not in got


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_metrics_over_loopback_and_refreshes_logs(tokenmeter_env, tmp_path):
    """The real command in a subprocess on a free loopback port, scraped twice (bounded in time)."""
    log = tmp_path / "usage.tsv"
    header = "timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd\n"
    log.write_text(header + "2026-03-20T08:00:00Z\tqwen-plus\tqwen\t1000\t100\t0.001\n")
    (tokenmeter_env / "config.toml").write_text(f'[sources.dashscope-log]\npaths = ["{log}"]\n')
    port = _free_port()
    env = {**os.environ, "TOKENMETER_NOW": NOW, "TOKENMETER_LOAD_PLUGINS": "dashscope-log"}
    proc = subprocess.Popen([sys.executable, "-m", "tokenmeter", "metrics", "--serve", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (loopback)
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    body = r.read().decode()
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.2)
        assert body is not None, "no answer on /metrics within 30 s"
        samples = exact(body)
        assert total(samples, "tokenmeter_requests", period="today", provider="qwen") == 1
        assert total(samples, "tokenmeter_cost", period="today", cost_kind="logged") == Decimal("0.001")
        # a line appended to the log shows in the next scrape: log sources are read before each one
        with log.open("a") as f:
            f.write("2026-03-20T09:00:00Z\tqwen-plus\tqwen\t2000\t200\t0.002\n")
        with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310
            samples = exact(r.read().decode())
        assert total(samples, "tokenmeter_requests", period="today", provider="qwen") == 2
        assert total(samples, "tokenmeter_tokens", period="month", type="input") == 3000
        head = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(head, timeout=30) as r:  # noqa: S310
            assert r.status == 200 and r.read() == b""
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=10)  # noqa: S310
        assert missing.value.code == 404
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert f"serving http://127.0.0.1:{port}/metrics" in err


def test_parse_listen_defaults_to_loopback():
    assert parse_listen("9464") == ("127.0.0.1", 9464)
    assert parse_listen(":9464") == ("127.0.0.1", 9464)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    for bad in ("host:", "host:http", "1:99999"):
        with pytest.raises(ValueError, match="--serve"):
            parse_listen(bad)


def test_serve_usage_errors(tokenmeter_env):
    assert cli_run(["metrics", "--serve", "x:y"], env=ENV).exit_code == 64
    assert cli_run(["metrics", "--serve", "1", "--otlp", "http://127.0.0.1:1"], env=ENV).exit_code == 64


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otlp_push_decoded_by_a_loopback_receiver(tokenmeter_env):
    needs_otlp()
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    write_config(tokenmeter_env)
    usage_sources()
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = cli_run(["metrics", "--offline", "--otlp", f"http://127.0.0.1:{port}"],
                         env={**ENV, "TOKENMETER_REQUEST_DEADLINE": "10"})
        assert result.exit_code == 0, result.output
    finally:
        server.shutdown()
        server.server_close()
    (path, headers, body), = _Receiver.received
    assert path == "/v1/metrics" and headers["content-type"] == "application/x-protobuf"
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    (rm,) = request.resource_metrics
    assert {a.key: a.value.string_value for a in rm.resource.attributes}["service.name"] == "tokenmeter"
    (sm,) = rm.scope_metrics
    assert sm.scope.name == "tokenmeter" and rm.schema_url == "https://opentelemetry.io/schemas/1.37.0"
    by_name = {m.name: m for m in sm.metrics}

    def attrs(point: Any) -> dict[str, str]:
        return {a.key: a.value.string_value for a in point.attributes}

    usage = by_name["gen_ai.client.token.usage"]
    assert usage.unit == "{token}" and usage.WhichOneof("data") == "histogram"
    points = {(a["gen_ai.provider.name"], a.get("gen_ai.request.model"), a["gen_ai.token.type"],
               a["tokenmeter.period"]): p for p in usage.histogram.data_points for a in [attrs(p)]}
    assert {k[2] for k in points} == {"input", "output"}
    claude = points[("openrouter", "anthropic/claude-sonnet-4", "input", "month")]
    assert (claude.sum, claude.count, list(claude.bucket_counts), list(claude.explicit_bounds)) == (70_000, 7, [7], [])
    assert not claude.HasField("min") and not claude.HasField("max")  # unknown for a period total
    gpt = points[("openrouter", "openai/gpt-5", "output", "today")]
    assert (gpt.sum, gpt.count) == (3_000, 3)
    month_start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) * 10**9
    assert claude.start_time_unix_nano == month_start
    assert claude.time_unix_nano == int(datetime(2026, 3, 20, 12, tzinfo=UTC).timestamp()) * 10**9
    input_total = sum(p.sum for k, p in points.items() if k[2] == "input" and k[3] == "month")
    assert input_total == sum(t["input_tokens"] for t in report_totals("month"))

    cost = by_name["tokenmeter.cost"]
    assert cost.WhichOneof("data") == "gauge"
    costs: dict[tuple[str, str], Decimal] = {}
    for p in cost.gauge.data_points:
        a = attrs(p)
        assert set(a) >= {"gen_ai.provider.name", "tokenmeter.currency", "tokenmeter.cost_kind", "tokenmeter.period"}
        if a["tokenmeter.period"] == "month":
            key = (a["tokenmeter.currency"], a["tokenmeter.cost_kind"])
            costs[key] = costs.get(key, Decimal(0)) + Decimal(repr(p.as_double))
    for t in report_totals("month"):
        assert sum(v for (cur, _), v in costs.items() if cur == t["currency"]) == Decimal(t["cost"])
    assert costs[("USD", "billed")] == Decimal("1.734567891")
    assert {"tokenmeter.tokens", "tokenmeter.requests", "tokenmeter.unpriced_requests",
            "tokenmeter.source.up"} <= set(by_name)


def test_otlp_push_failure_is_one_line(tokenmeter_env):
    needs_otlp()
    port = _free_port()  # nothing listens there
    result = cli_run(["metrics", "--offline", "--otlp", f"http://127.0.0.1:{port}/v1/metrics"],
                     env={**ENV, "TOKENMETER_REQUEST_DEADLINE": "3"})
    assert result.exit_code == 3
    assert "OTLP push to" in result.stderr
    assert cli_run(["metrics", "--otlp", "ftp://x"], env=ENV).exit_code == 4


def test_grafana_examples(tmp_path):
    dashboard = json.loads((ROOT / "examples" / "grafana" / "tokenmeter-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    used = {m for e in exprs for m in re.findall(r"\btokenmeter_[a-z_]+", e)}
    assert used and used <= set(FAMILIES), used - set(FAMILIES)
    rules = ROOT / "examples" / "grafana" / "tokenmeter-alerts.yml"
    assert "tokenmeter_budget_level >= 1" in rules.read_text()
    tool = promtool()
    for args in (["check", "rules", rules.name], ["test", "rules", "tokenmeter-alerts.test.yml"]):
        result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, cwd=rules.parent)
        assert result.returncode == 0, result.stdout + result.stderr
