"""The JSON contract (issue 18 item 6): schemas/ describes the report and budget JSON and the config
file; real output validates against them, and the config schema is what the code generates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers_host import cli_json, cli_run, make_source, rec, register
from jsonschema import Draft202012Validator

from tokenmeter import QuotaSnapshot
from tokenmeter.budgets import SCHEMA_VERSION as BUDGET_VERSION
from tokenmeter.config import parse_config
from tokenmeter.reports import DIMENSIONS, METRICS
from tokenmeter.reports import SCHEMA_VERSION as REPORT_VERSION

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
NOW = {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def valid(name: str, document: Any) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(document)]
    assert not errors, errors


def toml_as_json(value: Any) -> Any:
    """TOML dates as the strings editors (taplo) validate them as."""
    if isinstance(value, dict):
        return {k: toml_as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [toml_as_json(v) for v in value]
    return value.isoformat() if isinstance(value, date | datetime) else value


# -- report -------------------------------------------------------------------------------------------


@pytest.fixture
def data():
    day = datetime(2026, 3, 15, 9, tzinfo=UTC)
    register(
        make_source("fake-log", [
            rec("a", start=day, session="s1", model="qwen-plus", cost="0.5", cost_kind="logged"),
            rec("b", start=day, session="s1", model="qwen-max", cost="7", currency="CNY", cost_kind="logged"),
            rec("c", start=datetime(2026, 3, 14, 9, tzinfo=UTC), model="no-price-x", input_tokens=None,
                output_tokens=None, total_tokens=5),
            rec("d", start=day, provider="acme", model="m", cost="0.1", cost_kind="logged"),
        ], kind="log"),
        make_source("fake-bill", [
            rec("bill", start=datetime(2026, 3, 15, tzinfo=UTC), end=datetime(2026, 3, 16, tzinfo=UTC),
                provider="acme", model="m", cost="0.2"),
            QuotaSnapshot(provider="acme", name="credits", unit="USD", used=8, total=10,
                          observed_at=datetime(2026, 3, 15, 8, tzinfo=UTC)),
        ], kind="ledger", provider="acme"),
    )
    assert cli_run(["fetch", "--json"], NOW).exit_code == 0


@pytest.mark.parametrize("args", [
    ["--today", "--by", "model,provider"],  # two currencies: total is a list; a bill's note
    ["--month", "--by", "day,week,month,quarter,source,account,project,agent,session"],
    ["--month", "--by", "none"],
    ["--month", "--cost", "estimated"],  # nothing priced: null costs and currencies
    ["--period", "2025-01"],  # no usage: the total of nothing
    ["session", "-b"],
])
def test_report_json_validates(data, args):
    out = cli_json([*args, "--json", "--tz", "UTC"], NOW)
    assert out["schema_version"] == REPORT_VERSION == 1
    valid("report", out)


def test_report_schema_names_every_dimension_and_figure():
    schema = json.loads((SCHEMAS / "report.schema.json").read_text())
    assert schema["properties"]["schema_version"]["const"] == REPORT_VERSION
    assert schema["properties"]["group_by"]["items"]["enum"] == list(DIMENSIONS)
    row = schema["properties"]["rows"]["items"]["properties"]
    assert set(row) == {*DIMENSIONS, *METRICS, "cost", "currency", "cost_kind", "unpriced_requests"}


def test_api_export_json_validates(data, tokenmeter_env):
    import tokenmeter

    with tokenmeter.open() as tm:
        valid("report", json.loads(tm.export_json("month", by="session,model", now=datetime(2026, 3, 15, tzinfo=UTC))))


# -- budget -------------------------------------------------------------------------------------------


def test_budget_json_validates(data, tokenmeter_env):
    (tokenmeter_env / "config.toml").write_text(
        '[budgets.money]\nlimit = 0.4\ncurrency = "USD"\nwarn = 0.5\ncritical = 0.9\n'
        '[budgets.credit]\nlimit = 1000\nunit = "tokens"\nfrom = 2026-03-01\nto = 2026-03-31\nprovider = "qwen"\n'
        '[[alerts]]\ntype = "command"\ncommand = ["true"]\n'
    )
    result = cli_run(["budget", "--json"], NOW)
    out = json.loads(result.stdout)
    assert result.exit_code == 2 and out["schema_version"] == BUDGET_VERSION == 1
    assert {b["kind"] for b in out["budgets"]} == {"budget", "quota"}
    valid("budget", out)
    dry = json.loads(cli_run(["budget", "--json", "--dry-run"], NOW).stdout)
    assert dry["alerts"]
    valid("budget", dry)
    schema = json.loads((SCHEMAS / "budget.schema.json").read_text())
    assert schema["properties"]["schema_version"]["const"] == BUDGET_VERSION


# -- config -------------------------------------------------------------------------------------------


def test_config_schema_is_what_the_code_generates():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_schemas.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def _example(uncomment: bool) -> dict[str, Any]:
    text = (ROOT / "config.example.toml").read_text()
    if uncomment:  # the commented examples too (budgets, alerts, prices, optional keys)
        text = "\n".join(re.sub(r"^#\s?", "", line) if re.match(r"^#\s*(\[|[a-z_]+\s*=)", line) else line
                         for line in text.splitlines())
    return tomllib.loads(text)


def test_config_example_validates_and_every_key_is_in_the_schema():
    schema = json.loads((SCHEMAS / "config.schema.json").read_text())
    valid("config", toml_as_json(_example(False)))
    full = _example(True)
    valid("config", toml_as_json(full))
    del full["prices"]["qwen-max"]["region"]  # the example lists both; the parser takes one
    parse_config(full)  # and the parser, the authority, agrees
    props = schema["properties"]
    for section, value in full.items():
        if section == "sources":
            for sid, table in value.items():
                assert set(table) <= set(props["sources"]["properties"][sid]["properties"]), sid
        elif section == "tokenmeter":
            assert set(value) == set(props["tokenmeter"]["properties"])
        elif section == "budgets":
            known = props["budgets"]["additionalProperties"]["properties"]
            assert set().union(*map(set, value.values())) <= set(known)
        elif section == "alerts":
            assert set().union(*map(set, value)) <= set(props["alerts"]["items"]["properties"])


@pytest.mark.parametrize("config", [
    {"tokenmeter": {"timezon": "UTC"}},
    {"sources": {"openrouter": {"base_ur": "https://x"}}},
    {"sources": {"qwencloud": {"timeout": "soon"}}},
    {"budgets": {"b": {"limit": 1, "unit": "tokens", "period": "fortnight"}}},
    {"alerts": [{"type": "webhook", "url": "https://x", "colour": "red"}]},
    {"prices": {"m": {"input": 1, "output": 2, "tiers": [{"above": 10, "inptu": 1}]}}},
    {"colours": {}},
])
def test_config_schema_rejects_what_the_parser_rejects(config):
    from tokenmeter.config import build_settings
    from tokenmeter.errors import ConfigError
    from tokenmeter.plugin_manager import get_sources

    assert list(validator("config").iter_errors(config))
    with pytest.raises(ConfigError):
        cfg = parse_config(config)
        for sid, table in cfg.sources.items():
            build_settings(get_sources()[sid].Settings, table, f"sources.{sid}")
