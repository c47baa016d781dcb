"""The Python API for scripts: tokenmeter.open(...).usage(...), export_csv / export_json."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from helpers_host import rec

import tokenmeter
from tokenmeter.store import Store

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "api.db"
    with Store.open(path) as s:
        session = s.session("ledger-src", "ledger")
        for r in [
            rec("a", start=datetime(2026, 3, 10, tzinfo=UTC), provider="qwen", model="qwen-plus", requests=3,
                cost="0.123456789", currency="CNY"),
            rec("b", start=datetime(2026, 3, 11, tzinfo=UTC), provider="qwen", model="qwen-max", requests=2,
                cost="1.1", currency="CNY"),
            rec("c", start=datetime(2026, 3, 12, tzinfo=UTC), provider="openrouter", model="x/y", requests=1,
                cost="0.5", currency="USD"),
            rec("d", start=datetime(2026, 2, 12, tzinfo=UTC), provider="qwen", model="qwen-max", requests=100,
                cost="9", currency="CNY"),
        ]:
            session.add(r)
        session.finish(None)
    return path


def test_usage_by_model_returns_decimals(db):
    with tokenmeter.open(db=db) as tm:
        rows = tm.usage(period="week", by=["model"], provider="qwen", now=NOW, tz="UTC")
    assert [(r["model"], r["requests"], r["cost"], r["currency"]) for r in rows] == [
        ("qwen-max", 2, Decimal("1.1"), "CNY"), ("qwen-plus", 3, Decimal("0.123456789"), "CNY")]
    assert all(isinstance(r["cost"], Decimal) for r in rows)


def test_usage_without_by_is_total_per_currency(db):
    tm = tokenmeter.open(db=str(db))
    try:
        month = tm.usage("month", now=NOW, tz="UTC")
        assert [(r["currency"], r["cost"], r["requests"]) for r in month] == [
            ("CNY", Decimal("1.223456789"), 5), ("USD", Decimal("0.5"), 1)]
        assert tm.get_cost("month", now=NOW, tz="UTC") == {"CNY": Decimal("1.223456789"), "USD": Decimal("0.5")}
        assert tm.get_cost("all", now=NOW)["CNY"] == Decimal("10.223456789")
        ranged = tm.usage(None, date_from="2026-02-01", date_to="2026-02-28", by="provider,model", tz="UTC")
        assert [(r["provider"], r["model"], r["requests"]) for r in ranged] == [("qwen", "qwen-max", 100)]
        assert tm.usage("today", now=NOW, tz="UTC") == []
    finally:
        tm.close()


def test_export_json(db, tmp_path):
    out = tmp_path / "report.json"
    with tokenmeter.open(db=db) as tm:
        text = tm.export_json("month", output_path=out, by=["provider"], now=NOW, tz="UTC")
    data = json.loads(text)
    assert json.loads(out.read_text()) == data
    assert set(data) == {"schema_version", "period", "group_by", "rows", "total"}
    assert data["period"] == {"from": "2026-03-01", "to": "2026-03-31", "tz": "UTC"}
    assert {(r["provider"], r["cost"]) for r in data["rows"]} == {("openrouter", "0.5"), ("qwen", "1.223456789")}


def test_export_csv(db, tmp_path):
    out = tmp_path / "report.csv"
    with tokenmeter.open(db=db) as tm:
        text = tm.export_csv("month", output_path=out, by="model", now=NOW, tz="UTC")
    assert out.read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["model"], r["requests"], r["cost"], r["currency"]) for r in rows] == [
        ("qwen-max", "2", "1.1", "CNY"), ("qwen-plus", "3", "0.123456789", "CNY"), ("x/y", "1", "0.5", "USD")]
    assert text.splitlines()[0].startswith("model,requests,input_tokens")


def test_open_uses_default_database(tokenmeter_env):
    with tokenmeter.open() as tm:
        assert tm.db_path == str(tokenmeter_env / "tokenmeter.db")
        assert tm.usage("all") == [] and tm.quotas() == []


def test_public_api_names():
    for name in tokenmeter.__all__:
        assert hasattr(tokenmeter, name), name
    assert {"Source", "UsageRecord", "QuotaSnapshot", "Cursor", "hookimpl", "open"} <= set(tokenmeter.__all__)
