"""A third-party plugin prices its own models: examples/tokenmeter-acme-log (issue 14).

Its prices change mid-month (acme-large from 2026-03-15); the log's records are estimated with the
price in force on each call's day, exactly, in the currency of the label's region.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from helpers_example import ROOT, copy_project, install_project, subprocess_env

from tokenmeter import PriceEntry, PriceRegion, hookimpl, plugin_manager
from tokenmeter.cli import cli
from tokenmeter.plugin_manager import get_plugins, get_prices, pm
from tokenmeter.pricing import PriceBook

EXAMPLE = ROOT / "examples" / "tokenmeter-acme-log"
CALLS = EXAMPLE / "tests" / "calls.jsonl"


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example plugin registered next to the installed ones, as its entry point would."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    module = importlib.import_module("tokenmeter_acme_log")
    plugin_manager.load_plugins()
    pm.register(module, name="acme-log")
    yield module
    pm.unregister(module)


def test_log_records_are_estimated_with_the_plugins_dated_prices(acme, source_runner):
    run = source_runner(acme.AcmeLogSource, {"path": str(CALLS)})
    assert (run.status, run.new) == ("ok", 5)
    got = sorted((r["start"][:16], r["model"], r["provider"], r["estimated_cost"], r["est_currency"])
                 for r in run.rows)
    assert got == [
        ("2026-03-14T23:30", "acme-large", "acme", Decimal("10"), "USD"),  # 1M x 2 + 1M x 8: old price
        ("2026-03-15T00:10", "acme-large", "acme", Decimal("6.96"), "USD"),  # 0.6M x 1.5 + 0.4M x 0.15 + 1M x 6
        ("2026-03-15T09:00", "acme-small-latest", "acme", Decimal("0.038"), "USD"),  # tier >100k: 0.15M x 0.2 + ...
        ("2026-03-15T10:00", "acme-large", "acme-eu", Decimal("1.62"), "EUR"),  # EU list: 0.5M x 1.8 + 0.1M x 7.2
        ("2026-03-15T11:00", "acme-unknown", "acme", None, None),  # unpriced, never 0
    ]
    bases = {r["start"][:10]: r["price_basis"] for r in run.rows
             if (r["provider"], r["model"]) == ("acme", "acme-large")}
    assert bases["2026-03-14"].startswith("acme-log ")  # the plugin that registered the price
    assert bases["2026-03-14"].endswith(": acme-large acme from 2026-01-01")
    assert bases["2026-03-15"].endswith(": acme-large acme from 2026-03-15")


def test_prices_command_names_the_plugin(acme, tokenmeter_env):
    result = CliRunner().invoke(cli, ["prices", "acme-large", "--on", "2026-03-20", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["region"], r["valid_from"]): r for r in json.loads(result.stdout)["prices"]}
    assert {k: (r["input"], r["output"], r["currency"], r["plugin"], r["origin"]) for k, r in rows.items()} == {
        ("acme", "2026-03-15"): ("1.5", "6", "USD", "acme-log", "plugin"),
        ("acme-eu", "2026-01-01"): ("1.8", "7.2", "EUR", "acme-log", "plugin"),
    }
    table = CliRunner().invoke(cli, ["prices", "acme-large", "-f", "table"])
    assert "acme-log" in table.output and "Plugin" in table.output


def test_a_config_override_still_beats_the_plugins_price(acme):
    book = PriceBook.load(overrides={"acme-large": {"from": "2026-03-20", "input": 1, "output": 1}})

    def cost(day: str) -> Decimal:
        return book.estimate(model="acme-large", provider="acme", day=date.fromisoformat(day),
                             input_tokens=1_000_000, output_tokens=1_000_000).cost

    assert (cost("2026-03-14"), cost("2026-03-19"), cost("2026-03-20")) == (Decimal(10), Decimal("7.5"), Decimal(2))


def test_plugins_lists_the_hook(acme):
    entry = next(p for p in get_plugins() if p["name"] == "acme-log")
    assert entry["hooks"] == ["register_prices", "register_sources"]
    assert entry["sources"] == ["acme-log"]
    assert entry["prices"] == {"entries": 4, "regions": ["acme-eu"]}
    builtin = {p["name"]: p.get("prices") for p in get_plugins()}
    assert builtin["alibaba-prices"]["regions"] == ["intl", "cn"] and builtin["alibaba-prices"]["entries"] > 100
    assert builtin["openrouter"] == {"entries": 0, "regions": ["openrouter"]}
    assert builtin["qwencloud"] is None  # no register_prices hook: no prices key


def test_bad_price_registrations_are_reported_and_the_rest_kept(acme, capsys):
    class Bad:
        @hookimpl
        def register_prices(self, register):
            register("not a price")
            register(PriceRegion(id="mine", currency="USD", providers=("acme-eu",)))  # acme-log's label
            register(PriceEntry(model="acme-large", provider="acme-eu", currency="USD", input="1",
                                output="1"))  # region acme-eu is EUR
            register(PriceEntry(model="acme-large", provider="acme", currency="USD", input="9",
                                output="9", effective="2026-03-15"))  # acme-log registered this one
            register(PriceEntry(model="bad-own", provider="bad-label", currency="USD", input="1",
                                output="2"))

    bad = Bad()
    # pluggy calls the last registered first, and the first registration wins: acme-log goes last
    pm.unregister(acme)
    pm.register(bad, name="bad-prices")
    pm.register(acme, name="acme-log")
    try:
        entries, regions = get_prices()
    finally:
        pm.unregister(bad)
    assert [(e.model, e.plugin) for e in entries if e.plugin == "bad-prices"] == [("bad-own", "bad-prices")]
    assert "mine" not in {r.id for r in regions}
    err = capsys.readouterr().err
    assert "plugin bad-prices skipped: register() was given 'not a price'" in err
    assert "price region 'mine' overlaps region 'acme-eu' of acme-log" in err
    assert "price of acme-large for acme-eu is in USD, but region acme-eu (acme-log) is priced in EUR" in err
    assert "price of acme-large for acme from 2026-03-15 is already registered by acme-log" in err


def test_the_examples_own_tests_pass_when_installed(tmp_path):
    """The way its author runs them: installed, so its prices come in through its entry point."""
    site = tmp_path / "site"
    install_project(copy_project(EXAMPLE, tmp_path / "src"), site)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=subprocess_env([site]), capture_output=True, text=True, timeout=120, cwd=EXAMPLE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_example_registers_dated_prices_with_a_mid_month_change():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from tokenmeter_acme_log.prices import PRICES
    finally:
        sys.path.remove(str(EXAMPLE))
    large = sorted(p.effective for p in PRICES if p.model == "acme-large" and p.provider == "acme")
    assert [d.isoformat() for d in large] == ["2026-01-01", "2026-03-15"]
    assert Path(EXAMPLE / "pyproject.toml").read_text().count('acme-log = "tokenmeter_acme_log"') == 1
