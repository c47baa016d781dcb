"""The store boundary: all SQL under tokenmeter/store/, an explicit interface a second backend can
implement, pure reads, and records priced before they reach the store."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from pathlib import Path

from helpers_host import make_source, rec

from tokenmeter.config import Config
from tokenmeter.fetch import reprice, run_fetch
from tokenmeter.periods import Period
from tokenmeter.reports import usage_report
from tokenmeter.store import Store, StoredUsage, UsageStore, UsageWriter, WriteSession

PACKAGE = Path(__file__).resolve().parent.parent / "tokenmeter"
STORE = PACKAGE / "store"
SQL = re.compile(r"\b(SELECT\b.*\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+"
                 r"(TABLE|INDEX|TRIGGER)|PRAGMA\s+\w+)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Estimate:
    cost: Decimal
    currency: str
    basis: str


def _outside_store() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if STORE not in p.parents]


def test_no_sql_outside_the_store():
    found = []
    for path in _outside_store():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("conn", "execute", "executemany", "executescript"):
                found.append(f"{where}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{where}:{node.lineno}: {node.value[:40]!r}")
    assert found == []


def test_the_store_never_calls_into_pricing_or_the_fetch_runner():
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert not re.match(r"(pricing|fetch)\b", node.module or ""), f"{path.name} imports {node.module}"
                assert not (node.level == 2 and {a.name for a in node.names} & {"pricing", "fetch"})


def test_store_implements_every_interface_method_with_the_same_parameters():
    members = [n for n, v in vars(UsageStore).items()
               if callable(v) and (not n.startswith("_") or n in ("__enter__", "__exit__"))]
    assert {"usage_totals", "reconcile_totals", "session", "set_estimates", "alerts_sent"} <= set(members)
    for name in members:
        ours = inspect.signature(getattr(Store, name))
        interface = inspect.signature(getattr(UsageStore, name))
        assert list(ours.parameters) == list(interface.parameters), name
    for name in ("add", "checkpoint", "finish", "abort"):
        assert (list(inspect.signature(getattr(WriteSession, name)).parameters)
                == list(inspect.signature(getattr(UsageWriter, name)).parameters)), name


def test_reports_read_the_rollup_as_it_is(tmp_path):
    with Store.open(tmp_path / "pure.db") as store:
        session = store.session("src", "log")
        session.add(rec("a", requests=3))
        session.finish(None)
        everything = Period(None, None, UTC)
        assert usage_report(store, everything).total == []  # not refreshed yet: nothing written by a read
        assert store.refresh_rollup() == 1
        assert usage_report(store, everything).total[0]["requests"] == 3
        assert store.refresh_rollup() == 0


def test_a_fetch_prices_records_and_leaves_the_rollup_fresh(tmp_path, monkeypatch):
    import tokenmeter.fetch as fetch_mod

    seen = []

    def pricer(r):
        seen.append(type(r).__name__)
        return Estimate(Decimal("0.25"), "USD", "test")

    monkeypatch.setattr(fetch_mod, "make_pricer", lambda config: pricer)
    src = make_source("fake-log", [rec("a", requests=2), rec("b", model=None, requests=1)])
    with Store.open(tmp_path / "f.db") as store:
        (result,) = run_fetch(store, Config(), ["fake-log"], {"fake-log": src})
        assert result.status == "ok" and result.new == 2
        assert seen == ["UsageRecord"]  # a record without a model is not priced
        rows = {r["key"]: r for r in store.usage_rows()}
        assert rows["a"]["estimated_cost"] == Decimal("0.25") and rows["b"]["estimated_cost"] is None
        assert store.refresh_rollup() == 0  # the fetch already brought it up to date


def test_reprice_takes_stored_rows_and_gives_estimates_back(tmp_path):
    with Store.open(tmp_path / "r.db") as store:
        session = store.session("src", "log")
        session.add(rec("a", input_tokens=1000), Estimate(Decimal("1"), "USD", "old"))
        session.add(rec("b", model=None))
        session.finish(None)
        got = []

        def pricer(row):
            got.append(row)
            return Estimate(Decimal(row.input_tokens) / 1000 * 2, "USD", "new")

        assert reprice(store, pricer) == (1, 1)
        assert [type(r) for r in got] == [StoredUsage] and got[0].est_cost_nanos == 10**9
        (a, _) = store.usage_rows()
        assert (a["estimated_cost"], a["price_basis"]) == (Decimal("2"), "new")
        assert reprice(store, pricer) == (0, 1)  # same prices: nothing changes
        assert reprice(store, None) == (1, 1)  # no price table: the estimate goes
        assert store.usage_rows()[0]["estimated_cost"] is None
