"""The example third-party plugin (examples/tokenmeter-csv-spend), installed and run like a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_example import EXAMPLE, copy_project, install_project, run_tokenmeter, subprocess_env

SPEND = EXAMPLE / "tests" / "spend.csv"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed into its own folder (put it on PYTHONPATH to 'have it installed')."""
    base = tmp_path_factory.mktemp("example")
    target = base / "site"
    install_project(copy_project(EXAMPLE, base / "src"), target)
    return target


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example renamed tokenmeter-csv-spend-broken whose module raises on import."""
    base = tmp_path_factory.mktemp("broken")
    src = copy_project(EXAMPLE, base / "src")
    pyproject = src / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        .replace('name = "tokenmeter-csv-spend"', 'name = "tokenmeter-csv-spend-broken"')
        .replace('csv-spend = "tokenmeter_csv_spend"', 'csv-spend-broken = "tokenmeter_csv_spend_broken"')
        .replace('packages = ["tokenmeter_csv_spend"]', 'packages = ["tokenmeter_csv_spend_broken"]')
        .replace('version = "0.1.0"', 'version = "0.0.1"')
    )
    package = (src / "tokenmeter_csv_spend").rename(src / "tokenmeter_csv_spend_broken")
    init = package / "__init__.py"
    init.write_text("raise ImportError('this copy is broken on purpose')\n" + init.read_text())
    install_project(src, base / "site")
    return base / "site"


def plugins(pythonpath: list[Path], **extra: str) -> dict[str, dict]:
    result = run_tokenmeter(["plugins"], pythonpath, extra)
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}


def test_listed_with_its_version(installed):
    entry = plugins([installed])["tokenmeter-csv-spend"]
    assert entry == {
        "name": "tokenmeter-csv-spend",
        "version": "0.1.0",
        "hooks": ["register_sources"],
        "distribution": "tokenmeter-csv-spend",
        "entry_point": "csv-spend",
        "sources": ["acme-credits", "csv-spend"],
    }


@pytest.mark.parametrize("name", ["tokenmeter-csv-spend", "csv-spend"])
def test_disable_plugins_hides_it(installed, name):
    found = plugins([installed], TOKENMETER_DISABLE_PLUGINS=name)
    assert "tokenmeter-csv-spend" not in found
    assert "openrouter" in found  # only that one is hidden


def test_records_reach_a_report(installed, tokenmeter_env):
    config = tokenmeter_env / "config.toml"
    config.write_text(f'[sources.csv-spend]\npath = "{SPEND}"\n')
    fetch = run_tokenmeter(["fetch", "csv-spend", "-f", "table"], [installed])
    assert fetch.returncode == 0, fetch.stderr
    assert fetch.stdout.startswith("csv-spend: 3 new, 0 updated in ")
    result = run_tokenmeter(["report", "--all", "--json", "--tz", "UTC", "--by", "day,model"], [installed])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = [(r["day"], r["model"], r["requests"], r["cost"], r["currency"], r["cost_kind"]) for r in report["rows"]]
    assert rows == [
        ("2026-03-01", "acme-large", 120, "3.84", "USD", "billed"),
        ("2026-03-01", "acme-small", 900, "0.73", "USD", "billed"),
        ("2026-03-02", "acme-large", 80, "2.62", "USD", "billed"),
    ]
    assert report["total"]["cost"] == "7.19" and report["total"]["input_tokens"] == 2_040_000


def test_broken_copy_is_reported_and_the_cli_keeps_working(installed, broken):
    result = run_tokenmeter(["plugins"], [installed, broken])
    assert result.returncode == 0, result.stderr
    found = {p["name"]: p for p in json.loads(result.stdout)}
    assert found["tokenmeter-csv-spend-broken"] == {
        "name": "tokenmeter-csv-spend-broken", "version": "0.0.1", "hooks": [], "sources": [],
        "errors": ["ImportError: this copy is broken on purpose"],
    }
    assert "plugin tokenmeter-csv-spend-broken skipped: ImportError" in result.stderr
    # the good copy and the built-ins are still there, and other commands still run
    assert found["tokenmeter-csv-spend"]["sources"] == ["acme-credits", "csv-spend"]
    assert {"openrouter", "huawei-maas", "qwencloud", "dashscope-log"} <= set(found)
    report = run_tokenmeter(["report", "--all", "--json", "--offline"], [installed, broken])
    assert report.returncode == 0 and json.loads(report.stdout)["rows"] == []


def test_example_plugins_own_tests_pass(installed):
    """The example's tests, run the way its author would (its conftest.py opts in to tokenmeter.testing)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=subprocess_env([installed]), capture_output=True, text=True, timeout=120, cwd=EXAMPLE,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout
