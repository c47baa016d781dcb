"""The team hub's Grafana dashboard (examples/grafana/tokenmeter-hub-dashboard.json): every panel and
variable query, with its template variables and macros expanded the way Grafana expands them, runs on a
real hub and shows the numbers that were written there; and the JSON imports cleanly (one data source
input, costs never summed across currencies, no secrets)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest

from tokenmeter.records import UsageRecord
from tokenmeter.store import open_store

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana" / "tokenmeter-hub-dashboard.json"
DS = {"type": "grafana-postgresql-datasource", "uid": "${DS_TOKENMETER_HUB}"}

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
# a range as Grafana sends it ("now-2d" has milliseconds): the day before T0 to two days after
FROM = datetime(2026, 3, 9, 0, 0, 0, 250000, tzinfo=UTC)
TO = datetime(2026, 3, 12, 23, 59, 59, 999000, tzinfo=UTC)


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


# -- Grafana's expansion ------------------------------------------------------------------------------
# 1. the browser replaces template variables (a multi-value or include-All variable becomes quoted
#    literals joined by commas: the PostgreSQL data source's interpolateVariable) and $__interval;
# 2. the server replaces the macros (pkg/tsdb/grafana-postgresql-datasource/macros.go), with its
#    pattern: a macro's arguments end at the first ')'.
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate(sql: str, variables: Mapping[str, list[str]], interval: str) -> str:
    """What Grafana's template service sends: ``$var`` / ``${var}`` of a multi variable as
    ``'a','b'``; ``$__interval`` as e.g. ``1h``; anything else (macros) left for the server."""
    def one(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        if name == "__interval":
            return interval
        if name in variables:
            return ",".join(quote_literal(v) for v in variables[name])
        return m[0]
    return _VARIABLE.sub(one, sql)


def rfc3339(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of the UTC time: the fraction without trailing zeros."""
    t = t.astimezone(UTC)
    fraction = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def seconds(interval: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", interval.strip().strip("'"))
    assert m, f"not an interval Grafana parses: {interval!r}"
    n = int(m[1]) * _UNITS[m[2]]
    assert n == int(n) and n > 0, interval
    return int(n)


def expand_macros(sql: str, start: datetime, end: datetime) -> str:
    def one(m: re.Match[str]) -> str:
        name, args = m[1], [a.strip() for a in m[2].split(",")]
        if name == "__timeGroup" and sql[m.end():m.end() + 1] == ",":
            name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility: a ',' right after adds the alias
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'"
        if name == "__timeFrom":
            return f"'{rfc3339(start)}'"
        if name == "__timeTo":
            return f"'{rfc3339(end)}'"
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name in ("__timeGroup", "__timeGroupAlias"):
            assert len(args) == 2, f"${name}: no fill mode here ({m[0]})"
            n = seconds(args[1])
            group = f"floor(extract(epoch from {args[0]})/{n})*{n}"
            return group + ' AS "time"' if name == "__timeGroupAlias" else group
        raise AssertionError(f"${name} is not a macro of Grafana's PostgreSQL data source")
    return _MACRO.sub(one, sql)


def grafana_sql(sql: str, variables: Mapping[str, list[str]], *, interval: str = "1h",
                start: datetime = FROM, end: datetime = TO) -> str:
    out = expand_macros(interpolate(sql, variables, interval), start, end)
    assert "$" not in out, f"left unexpanded: {out}"
    return out


def test_the_expander_writes_what_grafana_writes():
    sql = ("SELECT $__timeGroupAlias(time, $__interval), $__timeGroup(time, '1d') AS d, x FROM t "
           "WHERE $__timeFilter(time) AND m IN ($machine) AND k = ${kind} AND t < $__timeTo()")
    assert grafana_sql(sql, {"machine": ["alice", "bob's mac"], "kind": ["log"]}, interval="15m") == (
        'SELECT floor(extract(epoch from time)/900)*900 AS "time", floor(extract(epoch from time)/86400)*86400 AS d, '
        "x FROM t WHERE time BETWEEN '2026-03-09T00:00:00.25Z' AND '2026-03-12T23:59:59.999Z' "
        "AND m IN ('alice','bob''s mac') AND k = 'log' AND t < '2026-03-12T23:59:59.999Z'")
    assert expand_macros("SELECT $__timeGroup(time, 1h), 1", FROM, TO).endswith('*3600 AS "time", 1')
    with pytest.raises(AssertionError, match="not a macro"):
        expand_macros("$__timeFiltr(time)", FROM, TO)


# -- the dashboard's parts ----------------------------------------------------------------------------
class Target(NamedTuple):
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def sql(self) -> str:
        return self.target["rawSql"]


def targets(dash: Mapping[str, Any]) -> list[Target]:
    return [Target(p, t) for p in dash["panels"] for t in p.get("targets", [])]


def panel(dash: Mapping[str, Any], title: str) -> Target:
    (found,) = [t for t in targets(dash) if t.panel["title"] == title]
    return found


def variables(dash: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dash["templating"]["list"]}


def all_sql(dash: Mapping[str, Any]) -> list[str]:
    return [t.sql for t in targets(dash)] + [v["query"] for v in variables(dash).values() if v["type"] == "query"]


def _group_by(sql: str) -> str:
    m = re.search(r"\bGROUP\s+BY\b(.*?)(?:\bHAVING\b|\bORDER\s+BY\b|\bLIMIT\b|\)|$)", sql, re.I | re.S)
    return m[1] if m else ""


def mixes_currencies(sql: str) -> bool:
    """True when ``sql`` adds up ``cost`` without grouping by currency (a filter such as
    ``currency IN ($currency)`` may still let several through) or pinning one currency."""
    if not re.search(r"\b(SUM|AVG)\s*\(\s*(\w+\.)?cost\b", sql, re.I):
        return False
    if re.search(r"\bcurrency\s*=\s*'[A-Z]{3}'", sql):
        return False
    return not re.search(r"\bcurrency\b", _group_by(sql), re.I)


def adds_token_parts(sql: str) -> bool:
    """Cache and reasoning tokens are parts of input and output: adding them counts them twice."""
    parts = r"\b(cache_read|cache_write|reasoning)_tokens\b"
    return bool(re.search(parts + r"[^,\n]*\+|\+[^,\n]*" + parts, sql))


def test_the_dashboard_imports_with_one_postgresql_input():
    dash = load()
    assert dash["schemaVersion"] >= 39 and dash["id"] is None and dash["uid"]
    (ds_input,) = dash["__inputs"]
    assert ds_input["name"] == "DS_TOKENMETER_HUB" and ds_input["type"] == "datasource"
    assert ds_input["pluginId"] == "grafana-postgresql-datasource"
    assert {"type": "datasource", "id": "grafana-postgresql-datasource"}.items() <= dash["__requires"][1].items()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 7
    for p in dash["panels"]:
        assert p["datasource"] == DS, p["title"]
        assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS and t["refId"], p["title"]
            assert t["rawQuery"] is True and t["editorMode"] == "code" and t["rawSql"].strip(), p["title"]
            assert t["format"] in ("table", "time_series"), p["title"]
            assert "$__timeFilter(time)" in t["rawSql"], p["title"]  # every panel follows the time picker
            assert re.search(r"\bFROM\s+usage_(15m|daily)\b", t["rawSql"]), p["title"]
    kinds = {p["type"] for p in dash["panels"]}
    assert {"stat", "timeseries", "table"} <= kinds
    names = variables(dash)
    assert {"machine", "provider", "currency"} <= set(names)
    for name in ("machine", "provider", "currency"):
        v = names[name]
        assert v["type"] == "query" and v["datasource"] == DS and v["multi"] and v["includeAll"], name
        assert v["definition"] == v["query"] and "usage_daily" in v["query"], name
    for t in targets(dash):  # a variable that a panel names exists, and each filter is one IN list
        for used in re.findall(r"IN \(\$(\w+)\)", t.sql):
            assert used in names, (t.panel["title"], used)
    # the repeated cost panel: one per currency
    cost = panel(dash, "Cost per day by machine ($currency)").panel
    assert cost["repeat"] == "currency" and cost["type"] == "timeseries"
    assert cost["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"


def test_no_sql_mixes_currencies_or_counts_token_parts_twice():
    dash = load()
    sums_cost = [s for s in all_sql(dash) if re.search(r"SUM\(cost\)", s)]
    assert len(sums_cost) >= 3
    for sql in all_sql(dash):
        assert not mixes_currencies(sql), sql
        assert not adds_token_parts(sql), sql
    # the checks themselves catch what they are for
    assert mixes_currencies("SELECT machine, SUM(cost) FROM usage_15m WHERE currency IN ($currency) GROUP BY 1")
    assert mixes_currencies("SELECT SUM(cost) AS cost FROM usage_daily")
    assert not mixes_currencies("SELECT SUM(cost) FROM usage_daily WHERE currency = 'USD'")
    assert not mixes_currencies("SELECT currency, SUM(cost) FROM usage_daily GROUP BY currency ORDER BY 1")
    assert adds_token_parts("SELECT SUM(input_tokens + cache_read_tokens) FROM usage_15m")
    assert not adds_token_parts("SELECT SUM(input_tokens + output_tokens), SUM(cache_read_tokens) FROM usage_15m")


_SECRET_KEYS = {"password", "securejsondata", "securejsonfields", "basicauthpassword", "basicauthuser", "user",
                "url", "database", "apikey", "token", "jsondata"}


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from _keys(v)


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield v
            else:
                yield from _datasource_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _datasource_refs(v)


def test_the_json_holds_no_secret_and_no_instance_of_ours():
    text = DASHBOARD.read_text(encoding="utf-8")
    dash = json.loads(text)
    assert not {k.lower() for k in _keys(dash)} & _SECRET_KEYS
    assert not re.search(r"postgres(ql)?://|password|passwd|sslkey|PGPASSWORD|@[\w.-]+:\d+", text, re.I)
    # every data source is the import's input, never the uid of somebody's Grafana
    refs = list(_datasource_refs(dash))
    assert refs and all(r == DS for r in refs), refs


# -- a hub with known contents -----------------------------------------------------------------------
class Est(NamedTuple):
    cost: Decimal
    currency: str
    basis: str


@dataclass(frozen=True)
class Written:
    machine: str | None
    source: str
    kind: str
    key: str
    hours: float
    provider: str
    model: str | None
    requests: int | None
    input: int
    output: int
    cost: str | None = None
    currency: str | None = None
    cost_kind: str | None = None
    estimate: str | None = None  # a USD price-table estimate
    cache_read: int | None = None

    @property
    def start(self) -> datetime:
        return T0 + timedelta(hours=self.hours)

    @property
    def in_range(self) -> bool:
        return FROM <= self.start <= TO

    @property
    def shown_cost(self) -> tuple[Decimal | None, str | None, str | None]:
        """(cost, currency, cost kind) as the views show it: the source's, else the estimate."""
        if self.cost is not None:
            return Decimal(self.cost), self.currency, self.cost_kind
        if self.estimate is not None:
            return Decimal(self.estimate), "USD", "estimated"
        return None, None, None

    @property
    def calls(self) -> int:
        return 1 if self.requests is None else self.requests


BOB = "bob's mac"  # a quote in a value: Grafana's quoting must carry it
WRITTEN = [
    Written("alice", "claude-log", "log", "a1", 0, "anthropic", "sonnet", 3, 1000, 200, "0.75", "USD", "logged",
            cache_read=600),
    Written("alice", "claude-log", "log", "a2", 26, "anthropic", "sonnet", 1, 500, 100, "0.25", "USD", "logged"),
    Written("alice", "qwen-log", "log", "a3", 1, "qwen", "qwen-plus", 2, 800, 50, "1.20", "CNY", "logged"),
    Written("alice", "qwen-log", "log", "a4", 2.5, "qwen", "mystery", 4, 300, 30),  # unpriced: 4 calls
    Written("alice", "claude-log", "log", "late", 24 * 30, "anthropic", "sonnet", 9, 9000, 900, "9", "USD", "logged"),
    Written(BOB, "claude-log", "log", "b1", 3, "anthropic", "haiku", 5, 2000, 400, estimate="0.10"),
    Written(BOB, "qwen-bill", "ledger", "b2", 30, "qwen", "qwen-max", 7, 7000, 700, "3.50", "CNY", "billed"),
    Written(BOB, "qwen-bill", "ledger", "b3", 31, "qwen", None, None, 100, 10, "0.05", "CNY", "billed"),
    Written(BOB, "qwen-log", "log", "b4", 49, "qwen", "mystery", None, 100, 10),  # unpriced: 1 call
    Written(None, "old-log", "log", "n1", -5, "anthropic", "sonnet", 1, 10, 1, "0.01", "USD", "logged"),
]
SHOWN = [w for w in WRITTEN if w.in_range]


def _write(url: str) -> None:
    groups: dict[tuple[str | None, str, str], list[Written]] = defaultdict(list)
    for w in WRITTEN:
        groups[(w.machine, w.source, w.kind)].append(w)
    with open_store(url) as store:
        for (machine, source, kind), rows in groups.items():
            session = store.session(source, kind, machine)
            for w in rows:
                session.add(UsageRecord(
                    key=w.key, start=w.start, provider=w.provider, model=w.model, account="team",
                    requests=w.requests, input_tokens=w.input, output_tokens=w.output, cache_read_tokens=w.cache_read,
                    cost=None if w.cost is None else Decimal(w.cost), currency=w.currency, cost_kind=w.cost_kind,
                ), Est(Decimal(w.estimate), "USD", "test prices") if w.estimate else None)
            session.finish(None)
        assert store.refresh_rollup() > 0


@pytest.fixture
def hub(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a hub holding WRITTEN, as Grafana's data source would open it."""
    _write(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


class Result(NamedTuple):
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


def run(conn: psycopg.Connection[Any], sql: str) -> Result:
    cur = conn.execute(sql)
    return Result([d.name for d in cur.description or []], [tuple(r) for r in cur.fetchall()])


def options(conn: psycopg.Connection[Any], dash: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each variable's values, from its own query (what "All" stands for: Grafana sends every value)."""
    out = {}
    for name, v in variables(dash).items():
        if v["type"] == "query":
            result = run(conn, grafana_sql(v["query"], {}))
            assert len(result.columns) == 1, name
            out[name] = [r[0] for r in result.rows]
        else:
            assert v["type"] == "custom", name
            out[name] = [x.strip() for x in v["query"].split(",")]
    return out


def check_shape(t: Target, result: Result) -> None:
    """What Grafana needs to draw the result: a time series has a "time" column, ascending; with a
    metric column, exactly three columns (then each metric value names a series)."""
    if t.target["format"] != "time_series":
        return
    assert result.columns[0] == "time", t.panel["title"]
    times = [r[0] for r in result.rows]
    assert times == sorted(times), t.panel["title"]
    if "metric" in result.columns:
        assert len(result.columns) == 3 and result.columns[1] == "metric", t.panel["title"]


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _machine(w: Written) -> str:
    return w.machine or "(none)"


def test_every_query_runs_with_every_selection(hub):
    dash = load()
    everything = options(hub, dash)
    # (ORDER BY follows the server's collation: compare the sets)
    assert {k: sorted(v) for k, v in everything.items()} == {
        "machine": ["(none)", "alice", BOB],
        "provider": ["anthropic", "qwen"],
        "currency": ["CNY", "USD"],
        "kind": ["ledger", "log"],
    }
    selections = [everything, {**everything, "machine": [BOB]}, {**everything, "kind": ["ledger"]},
                  {**everything, "currency": ["USD"], "provider": ["anthropic"]}]
    ran = 0
    for t in targets(dash):
        for chosen in selections:
            for interval in ("15m", "1h", "1d", "7d"):
                check_shape(t, run(hub, grafana_sql(t.sql, chosen, interval=interval)))
                ran += 1
    assert ran == len(targets(dash)) * 16


def test_cost_per_day_by_machine_is_what_was_written(hub):
    dash = load()
    everything = options(hub, dash)
    t = panel(dash, "Cost per day by machine ($currency)")
    expected: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for w in SHOWN:
        cost, currency, _ = w.shown_cost
        if cost is not None:
            day = int(w.start.timestamp()) // 86400 * 86400
            expected[(day, f"{_machine(w)} ({currency})")] += cost
    got: dict[tuple[int, str], Decimal] = {}
    for currency in everything["currency"]:  # the panel repeats per currency: $currency is one value
        result = run(hub, grafana_sql(t.sql, {**everything, "currency": [currency]}))
        check_shape(t, result)
        assert result.rows and all(r[1].endswith(f" ({currency})") for r in result.rows)
        for time, metric, cost in result.rows:
            assert time % 86400 == 0  # UTC days, as epoch seconds
            got[(int(time), metric)] = cost
    assert got == expected
    # per machine and currency over the range
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for (_, metric), cost in got.items():
        totals[metric] += cost
    assert totals == {"alice (USD)": Decimal("1.00"), "alice (CNY)": Decimal("1.20"),
                      f"{BOB} (USD)": Decimal("0.10"), f"{BOB} (CNY)": Decimal("3.55"),
                      "(none) (USD)": Decimal("0.01")}
    # one machine selected: only its series
    result = run(hub, grafana_sql(t.sql, {**everything, "machine": ["alice"]}))
    assert {r[1] for r in result.rows} == {"alice (USD)", "alice (CNY)"}


def _row_key(r: Mapping[str, Any]) -> tuple[str, ...]:
    return r["machine"], r["provider"], r["model"], r["currency"] or "", r["cost_kind"]


def test_the_machine_model_table_matches_the_written_rows(hub):
    dash = load()
    everything = options(hub, dash)
    t = panel(dash, "Machine × model")
    groups: dict[tuple[Any, ...], list[Written]] = defaultdict(list)
    for w in SHOWN:
        _, currency, cost_kind = w.shown_cost
        groups[(_machine(w), w.provider, w.model or "(none)", currency, cost_kind or "unpriced")].append(w)
    expected = []
    for (machine, provider, model, currency, cost_kind), rows in groups.items():
        costs = [w.shown_cost[0] for w in rows if w.shown_cost[0] is not None]
        expected.append({
            "machine": machine, "provider": provider, "model": model,
            "requests": _sum([w.requests for w in rows]), "input": sum(w.input for w in rows),
            "output": sum(w.output for w in rows), "cost": sum(costs) if costs else None,
            "currency": currency, "cost_kind": cost_kind,
        })
    result = run(hub, grafana_sql(t.sql, everything))
    assert result.columns == ["machine", "provider", "model", "requests", "input", "output", "cost", "currency",
                              "cost_kind"]
    assert sorted(result.dicts(), key=_row_key) == sorted(expected, key=_row_key)
    # spot checks against the list above, not the computation
    rows = {(r["machine"], r["model"], r["cost_kind"]): r for r in result.dicts()}
    assert rows[("alice", "sonnet", "logged")]["cost"] == Decimal("1.00")
    assert rows[("alice", "sonnet", "logged")]["input"] == 1500  # the 600 cache reads are inside, not added
    assert rows[(BOB, "haiku", "estimated")]["currency"] == "USD"
    assert rows[("alice", "mystery", "unpriced")]["cost"] is None
    assert rows[(BOB, "(none)", "billed")]["requests"] is None  # not reported stays unknown, not 0
    # a currency filter keeps the unpriced rows (they have no currency) and drops the other currency
    usd = run(hub, grafana_sql(t.sql, {**everything, "currency": ["USD"]})).dicts()
    assert {r["currency"] for r in usd} == {"USD", None}
    assert sum(1 for r in usd if r["cost_kind"] == "unpriced") == 2


def test_stats_tokens_and_requests(hub):
    dash = load()
    everything = options(hub, dash)

    cost = run(hub, grafana_sql(panel(dash, "Cost").sql, everything))
    assert cost.columns == ["currency", "cost"]
    assert dict(cost.rows) == {"CNY": Decimal("4.75"), "USD": Decimal("1.11")}

    (unpriced,) = run(hub, grafana_sql(panel(dash, "Unpriced calls").sql, everything)).rows
    assert unpriced == (5,) == (sum(w.calls for w in SHOWN if w.shown_cost[0] is None),)
    (alice_only,) = run(hub, grafana_sql(panel(dash, "Unpriced calls").sql, {**everything, "machine": ["alice"]})).rows
    assert alice_only == (4,)

    (requests,) = run(hub, grafana_sql(panel(dash, "Requests").sql, everything)).rows
    assert requests == (sum(w.requests or 0 for w in SHOWN),) == (23,)

    t = panel(dash, "Tokens per day by model")
    result = run(hub, grafana_sql(t.sql, everything))
    check_shape(t, result)
    tokens: dict[str, int] = defaultdict(int)
    for _, model, n in result.rows:
        tokens[model] += n
    expected: dict[str, int] = defaultdict(int)
    for w in SHOWN:
        expected[w.model or "(none)"] += w.input + w.output
    assert tokens == expected and tokens["sonnet"] == 1000 + 200 + 500 + 100 + 10 + 1

    t = panel(dash, "Requests by provider")
    for interval, step in (("15m", 900), ("1h", 3600), ("1d", 86400)):
        result = run(hub, grafana_sql(t.sql, everything, interval=interval))
        check_shape(t, result)
        assert all(r[0] % step == 0 for r in result.rows)
        by_provider: dict[str, int] = defaultdict(int)
        for _, provider, n in result.rows:
            by_provider[provider] += n
        assert by_provider == {"anthropic": 3 + 1 + 5 + 1, "qwen": 2 + 4 + 7}, interval


def test_kind_splits_the_bill_from_the_logs(hub):
    dash = load()
    everything = options(hub, dash)
    cost = panel(dash, "Cost").sql
    assert dict(run(hub, grafana_sql(cost, {**everything, "kind": ["ledger"]})).rows) == {"CNY": Decimal("3.55")}
    assert dict(run(hub, grafana_sql(cost, {**everything, "kind": ["log"]})).rows) == {
        "CNY": Decimal("1.20"), "USD": Decimal("1.11")}
    # the range is the time picker's: moving it a month on shows only the late row
    later = run(hub, grafana_sql(cost, everything, start=T0 + timedelta(days=29), end=T0 + timedelta(days=31)))
    assert dict(later.rows) == {"USD": Decimal("9")}
