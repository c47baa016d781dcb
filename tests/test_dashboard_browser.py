"""Open the dashboard in headless Chromium: no network request, charts drawn, figures right.

Driven with Chromium's own command-line modes, no extra Python packages:

- ``--dump-dom`` (after ``--virtual-time-budget`` lets the scripts run) gives the rendered DOM: the
  SVG charts with their ``data-value`` attributes, and what the page recorded about itself
  (``data-resource-loads`` from the Resource Timing API, ``data-csp-violations`` for anything
  its Content-Security-Policy refused, ``data-js-error``).
- ``--log-net-log`` writes every request the browser starts; requests made for the page (their
  network isolation key is the file:// page) must be none. The browser's own background traffic
  (updates, sign-in) is told apart by that key and ignored; ``--host-resolver-rules`` keeps all of
  it off the network anyway.
- Two negative controls prove both detectors see a request when there is one.
- ``--screenshot`` saves artifacts/dashboard.png (plus -dark and -phone) at the repo root.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_dashboard import EVIL, sample_data

from tokenmeter.dashboard import render_dashboard

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium chromium-driver)"
)
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--no-first-run", "--no-default-browser-check", "--no-pings", "--mute-audio", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000",
]


class Dom(HTMLParser):
    """Every start tag with its attributes, and the text inside each element with an id or data-figure."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._stack: list[list[str]] = []
        self.texts: dict[str, str] = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        key = a.get("data-figure")
        self._stack.append([key] if key else [])

    def handle_endtag(self, tag):
        if self._stack:
            done = self._stack.pop()
            if done and done[0]:
                self.texts[done[0]] = "".join(done[1:])

    def handle_data(self, data):
        for frame in self._stack:
            if frame:
                frame.append(data)

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if (tag is None or t == tag)
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    @property
    def root(self) -> dict[str, str]:
        return next(a for t, a in self.tags if t == "html")


def chromium(home: Path, url: str, *extra: str, netlog: Path | None = None) -> str:
    home.mkdir(parents=True, exist_ok=True)
    profile = home / f"profile-{len(list(home.iterdir()))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra]
    if netlog:
        cmd.append(f"--log-net-log={netlog}")
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(home)})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def page_requests(netlog: Path) -> list[str]:
    """URLs the browser requested on behalf of the file:// page (not its own background traffic)."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start or "url" not in params:
            continue
        if params["url"].startswith(("file:", "data:", "blob:")):
            continue
        for_page = "file://" in params.get("network_isolation_key", "")
        if for_page or params.get("initiator") not in (None, "not an origin"):
            urls.append(params["url"])
    return urls


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    work = tmp_path_factory.mktemp("dashboard")
    page = work / "dashboard.html"
    page.write_text(render_dashboard(sample_data()), encoding="utf-8")
    netlog = work / "netlog.json"
    dom = chromium(work / "home", page.as_uri(), "--window-size=1280,900", "--dump-dom", netlog=netlog)
    return {"work": work, "page": page, "dom": Dom(dom), "netlog": netlog}


def test_no_network_request(rendered):
    assert page_requests(rendered["netlog"]) == []
    root = rendered["dom"].root
    assert root.get("data-resource-loads") == "0"
    assert "data-csp-violations" not in root and "data-resource-urls" not in root
    assert "data-js-error" not in root, root.get("data-js-error")


def test_detectors_see_requests_when_there_are_some(rendered):
    work = rendered["work"]
    # 1. without a CSP, the net log catches an image, a stylesheet and a fetch() to outside hosts
    probe = work / "probe.html"
    probe.write_text('<!DOCTYPE html><img src="http://probe.tokenmeter.invalid/x.png">'
                     '<link rel="stylesheet" href="https://cdn.tokenmeter.invalid/a.css">'
                     "<script>fetch('https://api.tokenmeter.invalid/x').catch(function () {});</script>")
    netlog = work / "probe-netlog.json"
    chromium(work / "home", probe.as_uri(), "--dump-dom", netlog=netlog)
    assert sorted(page_requests(netlog)) == ["http://probe.tokenmeter.invalid/x.png",
                                            "https://api.tokenmeter.invalid/x",
                                            "https://cdn.tokenmeter.invalid/a.css"]
    # 2. in the dashboard, the CSP refuses such a load before any request, and the page records it
    html = rendered["page"].read_text(encoding="utf-8")
    tampered = work / "tampered.html"
    tampered.write_text(html.replace("<main>", '<main><img src="http://probe.tokenmeter.invalid/y.png">', 1),
                        encoding="utf-8")
    netlog = work / "tampered-netlog.json"
    root = Dom(chromium(work / "home", tampered.as_uri(), "--dump-dom", netlog=netlog)).root
    assert root.get("data-csp-violations") == "1"
    assert root.get("data-csp-blocked") == "http://probe.tokenmeter.invalid/y.png"
    assert page_requests(netlog) == []


def test_charts_rendered_with_the_data(rendered):
    dom, data = rendered["dom"], sample_data()
    assert dom.root.get("data-rendered") == "5"
    charts = {a["data-chart"] for a in dom.find("svg") if "data-chart" in a}
    assert charts == {"daily-cost", "daily-tokens", "share-model", "share-provider", "cost-model"}
    bars = [a for a in dom.find("rect") if "data-series" in a]
    # cost per day: the stacked segments (one per cost kind) add up to the day's cost, exactly
    expected_cost: dict[str, Decimal] = {}
    expected_tokens: dict[str, int] = {}
    for r in data["daily"]:
        expected_cost[r["day"]] = expected_cost.get(r["day"], Decimal(0)) + Decimal(r["cost"])
        expected_tokens[r["day"]] = expected_tokens.get(r["day"], 0) + r["total_tokens"]
    shown_cost: dict[str, Decimal] = {}
    shown_tokens: dict[str, int] = {}
    for a in bars:
        if a["data-series"].startswith("cost "):
            shown_cost[a["data-date"]] = shown_cost.get(a["data-date"], Decimal(0)) + Decimal(a["data-value"])
        else:
            shown_tokens[a["data-date"]] = shown_tokens.get(a["data-date"], 0) + int(a["data-value"])
        assert float(a["height"]) >= 0 and float(a["width"]) > 0
    assert shown_cost == expected_cost and len(shown_cost) == 15
    assert shown_tokens == expected_tokens
    assert {a["data-series"] for a in bars} == {"cost billed", "cost logged", "cost estimated", "input", "output"}
    tallest = max(bars, key=lambda a: float(a["height"]) if a["data-series"] == "input" else 0)
    assert tallest["data-date"] == "2026-03-10"  # the busiest day has the tallest bar
    # doughnut by model: one slice per model with its token count; the hostile name stays text
    slices = {a["data-label"]: int(a["data-value"]) for a in dom.find("path", **{"class": "slice"})}
    by_model = {m["model"]: m["total_tokens"] for m in data["by_model"]}
    assert {k: v for k, v in slices.items() if k in by_model} == by_model
    assert slices[EVIL] == 82_000 and not dom.find("img")
    providers = {p["provider"]: p["total_tokens"] for p in data["by_provider"]}
    assert all(slices[p] == n for p, n in providers.items())
    # cost by model: bars carry the exact cost
    cost_bars = {a["data-label"]: a["data-value"] for a in dom.find("rect") if "data-label" in a}
    assert cost_bars == {m["model"]: m["cost"] for m in data["by_model"]}


def test_figures_match_the_report(rendered):
    dom, data = rendered["dom"], sample_data()
    total = sum(Decimal(r["cost"]) for r in data["daily"])
    assert total == Decimal(data["summary"]["cost"]) == Decimal("5.53992")
    # label, value and detail of each summary figure, as the browser shows them
    assert dom.texts["cost"] == "Cost5.54 USDmixed 3 requests unpriced"
    assert dom.texts["tokens"] == "Tokens1.64M1,640,000 tokens \u00b7 in 1.31M \u00b7 out 328k"
    assert dom.texts["requests"] == "Requests8711,883 tokens per request"
    assert dom.texts["daily-average"] == "Daily average0.3693 USDover 15 days with usage"
    assert dom.texts["projected"] == "Projected month-end12.37 USD3.66M tokens"
    budgets = {a["data-budget"]: a["data-level"] for a in dom.find("div") if "data-level" in a}
    assert budgets == {"test": "critical", "monthly-spend": "ok", "welcome-credit": "warning",
                       "qwen:coding-plan/per_5h": "critical"}
    meters = [a["aria-valuenow"] for a in dom.find("div", role="progressbar")]
    assert meters == ["82.0", "27.7", "59.0", "85.0"]


# run inside the page after the dashboard's own script: hover a day, switch a doughnut to cost,
# sort the table by cost (descending), and write what happened into an attribute
INTERACT_JS = """(function () {
  var r = document.documentElement, out = {};
  var hit = document.querySelector('svg[data-chart="daily-cost"] rect[fill="transparent"]');
  hit.dispatchEvent(new PointerEvent('pointermove', {clientX: 120, clientY: 300, bubbles: true}));
  var tip = document.getElementById('tip');
  out.tip = tip.hidden ? '' : tip.textContent;
  document.querySelector('.seg[data-for="share-model"] button[data-metric="cost"]').click();
  var donut = document.querySelector('svg[data-chart="share-model"]');
  out.metric = donut.getAttribute('data-metric');
  out.slices = donut.querySelectorAll('path.slice').length;
  var th = document.querySelector('#detail-table th[data-col="cost"]');
  th.click();
  th.click();
  out.first = document.querySelector('#detail-table tbody tr td.model').textContent;
  r.setAttribute('data-test', JSON.stringify(out));
})();"""


def test_charts_are_interactive(rendered):
    work, html = rendered["work"], rendered["page"].read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(INTERACT_JS.encode()).digest()).decode()
    page = work / "interactive.html"
    page.write_text(html.replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
                    .replace("</body>", f"<script>{INTERACT_JS}</script></body>", 1), encoding="utf-8")
    root = Dom(chromium(work / "home", page.as_uri(), "--window-size=1280,900", "--dump-dom")).root
    assert "data-js-error" not in root, root.get("data-js-error")
    out = json.loads(root["data-test"])
    assert out["tip"].startswith("2026-03-01Cost0.3378 USD (mixed)")
    assert "billed0.20 USD" in out["tip"] and "Total tokens100,000" in out["tip"] and "Requests54" in out["tip"]
    assert out["metric"] == "cost" and out["slices"] == 5
    assert out["first"] == "qwen3-coder-plus"


def test_screenshots(rendered):
    work, page = rendered["work"], rendered["page"]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(page, ARTIFACTS / "dashboard.html")
    height = int(rendered["dom"].root["data-page-height"])
    shots = {"dashboard.png": ("1280", str(height), ())}
    # a phone-width layout (headless Chromium's smallest window is 500 CSS px wide)
    phone = Dom(chromium(work / "home", page.as_uri(), "--window-size=500,900", "--dump-dom"))
    assert "data-js-error" not in phone.root and phone.root["data-rendered"] == "5"
    widths = [float(a["width"]) for a in phone.find("svg") if a.get("data-chart", "").startswith("daily")]
    assert widths and max(widths) <= 500
    shots["dashboard-phone.png"] = ("500", phone.root["data-page-height"], ())
    shots["dashboard-dark.png"] = ("1280", str(height), ("--blink-settings=preferredColorScheme=0",))
    for name, (w, h, extra) in shots.items():
        out = ARTIFACTS / name
        out.unlink(missing_ok=True)
        chromium(work / "home", page.as_uri(), f"--window-size={w},{h}", *extra, f"--screenshot={out}")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 50_000, name
