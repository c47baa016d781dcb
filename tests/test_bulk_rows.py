"""The bulk path (``RecordBatch``): the same validation, prices, rows and hashes as ``UsageRecord``."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers_logs import gen_logs
from tokenmeter_plugins.dashscope_log import QwenCodeSource, tail
from tokenmeter_plugins.dashscope_log.qwen_code import QwenParser

from tokenmeter import InvalidRecord, PriceEntry, RecordBatch, Tier, UsageRecord, Window
from tokenmeter.fetch import BatchPreparer, Pricer, make_pricer, run_one
from tokenmeter.pricing import PriceBook
from tokenmeter.store import Store, to_nanos
from tokenmeter.store.session import BULK_WAL_PAGES, WriteSession
from tokenmeter.testing import fake_context

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _random_row(rng: random.Random, i: int) -> tuple:
    inp = rng.choice([None, 0, rng.randrange(1, 300_000)])
    cr = None if inp is None or rng.random() < 0.3 else rng.randrange(0, inp + 1)
    cw = None if inp is None or cr is None or rng.random() < 0.7 else rng.randrange(0, inp - cr + 1)
    out = rng.choice([None, 0, rng.randrange(1, 40_000)])
    rs = None if out is None or rng.random() < 0.4 else rng.randrange(0, out + 1)
    start = T0 + timedelta(seconds=rng.randrange(0, 200 * 86400), microseconds=rng.choice([0, 7, 999_999]))
    if rng.random() < 0.1:
        start = start.astimezone(timezone(timedelta(hours=8)))  # not UTC: stored in UTC all the same
    return (
        f"k{i}' \"x", start, rng.choice([None, "m-a", "M-A", "m-b", "alias-b", "m-tiered", "unknown"]),
        rng.choice([None, "/p/one", "/p/two"]), rng.choice([None, "s1"]), rng.choice([None, "main", "sub"]),
        rng.choice([None, 1, 3]), inp, out, cr, cw, rs, rng.choice([None, rng.randrange(0, 10**6)]),
        rng.choice([None, {"note": "n"}, {"b": 1, "a": [1, 2]}]),
    )


def _book() -> PriceBook:
    return PriceBook([
        PriceEntry(model="m-a", provider="acme", currency="USD", input=Decimal("0.4"), output=Decimal("1.2"),
                   cache_read=Decimal("0.08"), effective=date(2025, 1, 1)),
        PriceEntry(model="m-a", provider="acme", currency="USD", input=Decimal("0.5"), output=Decimal("1.5"),
                   reasoning=Decimal("4"), effective=date(2025, 5, 1)),
        PriceEntry(model="m-b", provider=None, currency="USD", input=Decimal("0.000123456789012"),
                   output=Decimal("3"), aliases=("alias-b",)),  # finer than 10⁻¹²: the Decimal path
        PriceEntry(model="m-tiered", provider="acme", currency="USD", input=Decimal("1"), output=Decimal("2"),
                   cache_write=Decimal("1.25"),
                   tiers=(Tier(above=32_000, input=Decimal("2"), output=Decimal("4"), reasoning=Decimal("9")),
                          Tier(above=128_000, input=Decimal("3"), output=Decimal("6")))),
    ])


def test_estimate_nanos_equals_estimate_on_random_records():
    rng = random.Random(7)
    book = _book()
    for i in range(20_000):
        row = _random_row(rng, i)
        provider = rng.choice(["acme", "acme-eu", "other", None])
        _, start, model, _, _, _, req, inp, out, cr, cw, rs, _, _ = row
        day = start.astimezone(UTC).date()
        est = book.estimate(model, provider, day, inp, out, cr, cw, rs, req)
        got = book.estimate_nanos(model, provider, day, inp, out, cr, cw, rs, req)
        want = None if est is None else (to_nanos(est.cost), est.currency, est.basis)
        assert got == want, row


def test_estimate_nanos_rounds_half_even_like_the_store():
    book = PriceBook([PriceEntry(model="m", provider="acme", currency="USD", input=Decimal("0.0005"),
                                 output=Decimal("0.0015"))])
    for n in range(0, 40):  # 0.5 nano per input token: every rounding case
        est = book.estimate("m", "acme", T0, n, n)
        assert book.estimate_nanos("m", "acme", T0.date(), n, n, None, None, None) == (
            to_nanos(est.cost), est.currency, est.basis)


def _stored(store: Store) -> list[tuple]:
    return store.conn.execute("SELECT * FROM usage ORDER BY id").fetchall()


def test_add_rows_stores_what_add_stores(tmp_path):
    rng = random.Random(11)
    batch = RecordBatch("acme", "machine-1", [_random_row(rng, i) for i in range(3000)])
    pricer = Pricer(_book())
    with Store.open(tmp_path / "one.db") as one, Store.open(tmp_path / "two.db") as two:
        s1 = one.session("src", "log")
        for r in batch.records():
            s1.add(r, pricer(r) if r.model else None)
        s1.finish(None)
        s2 = two.session("src", "log")
        s2.add_rows(batch, pricer.rows(batch))
        s2._fetched_at = s1._fetched_at  # the only column that differs: when each was fetched
        s2.finish(None)
        a = _stored(one)
        b = two.conn.execute("SELECT * FROM usage ORDER BY id").fetchall()
        fetched = [c[1] for c in one.conn.execute("PRAGMA table_info(usage)")].index("fetched_at")
        assert [r[:fetched] + r[fetched + 1:] for r in a] == [r[:fetched] + r[fetched + 1:] for r in b]
        assert len(a) == 3000 and (s1.counts.new, s2.counts.new) == (3000, 3000)
        # again: nothing changed, so nothing is rewritten (same content hash both ways)
        s3 = two.session("src", "log")
        s3.add_rows(batch, pricer.rows(batch))
        s3.finish(None)
        assert (s3.counts.new, s3.counts.updated, s3.counts.unchanged) == (0, 0, 3000)


def test_add_and_add_rows_of_one_key_in_one_batch_last_one_wins(tmp_path):
    row = ("k", T0, "m-a", None, None, None, 1, 10, 5, None, None, None, 15, None)
    with Store.open(tmp_path / "t.db") as store:
        s = store.session("src", "log")
        s.add_rows(RecordBatch("acme", None, [row]), [None])
        s.add(UsageRecord(key="k", start=T0, provider="acme", input_tokens=99))
        s.finish(None)
        assert store.conn.execute("SELECT input_tokens FROM usage").fetchall() == [(99,)]
        s = store.session("src", "log")
        s.add(UsageRecord(key="k", start=T0, provider="acme", input_tokens=98))
        s.add_rows(RecordBatch("acme", None, [row]), [None])
        s.finish(None)
        assert store.conn.execute("SELECT input_tokens FROM usage").fetchall() == [(10,)]


@pytest.mark.parametrize("change", [
    {0: ""}, {0: 5}, {1: datetime(2025, 1, 1)}, {1: "2025-01-01"}, {2: ""}, {3: 3}, {5: ""},
    {6: -1}, {7: True}, {8: 1.5}, {9: 20, 7: 10}, {10: 6, 9: 5, 7: 10}, {11: 9, 8: 5}, {13: [1]},
])
def test_batch_rows_are_validated_like_records(change):
    row = list(("k", T0, "m", "p", "s", "a", 1, 10, 5, 2, 1, 3, 15, None))
    for i, v in change.items():
        row[i] = v
    with pytest.raises(InvalidRecord) as batch_err:
        RecordBatch("acme", "acct", [tuple(row)])
    with pytest.raises(InvalidRecord) as record_err:
        RecordBatch.record(RecordBatch("acme", "acct", []), tuple(row))
    assert str(batch_err.value) == str(record_err.value)


def test_batch_shape_provider_and_account_are_checked():
    with pytest.raises(InvalidRecord):
        RecordBatch("acme", None, [("k", T0)])
    with pytest.raises(InvalidRecord):
        RecordBatch("", None, [])
    with pytest.raises(InvalidRecord):
        RecordBatch("acme", "", [])
    class Label(str):
        pass
    ok = RecordBatch("acme", None, [(Label("k"), T0, None, None, None, None, None, 1, None, None, None, None,
                                     None, None)])  # what UsageRecord accepts, a batch accepts
    assert [r.key for r in ok.records()] == ["k"]


# -- the built-in log source through the host -------------------------------------------------------

STOLEN: list[int] = []


def _slow_read_batch(*args: Any) -> Any:
    """Workers that lag behind, so the main process parses batches itself (forked: module-level)."""
    if os.getpid() != _PARENT[0]:
        time.sleep(0.2)
    else:
        STOLEN.append(1)
    return _READ_BATCH(*args)


_PARENT = [os.getpid()]
_READ_BATCH = tail._read_batch


def _fetch_table(db: Path, tree: Path, **kw: Any) -> tuple[list[tuple], tuple[int, ...]]:
    with Store.open(db) as store:
        res = run_one(store, QwenCodeSource, {"roots": [str(tree)]}, ctx=fake_context("qwen-code"),
                      pricer=make_pricer(None), **kw)
        assert res.status == "ok", res.message
        cols = [c[1] for c in store.conn.execute("PRAGMA table_info(usage)")]
        keep = [i for i, c in enumerate(cols) if c != "fetched_at"]
        table = [tuple(r[i] for i in keep) for r in store.conn.execute("SELECT * FROM usage ORDER BY id")]
        return table, (res.new, res.updated, res.unchanged, res.skipped_lines, res.unrecognised)


def test_qwen_code_bulk_path_stores_what_its_records_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    expected = gen_logs().gen_qwen_code(tmp_path / "qwen", 3000, seed=5, days=3, fork_rate=0.3,
                                        old_version_rate=0.2, quirks=True)
    bulk, counts = _fetch_table(tmp_path / "bulk.db", tmp_path / "qwen")
    assert counts[0] == expected["totals"]["requests"]
    # the same source's records (its fetch(): one UsageRecord per call) stored one by one
    pricer = make_pricer(None)
    with Store.open(tmp_path / "records.db") as store:
        session = store.session("qwen-code", "log")
        src = QwenCodeSource(QwenCodeSource.Settings(roots=[str(tmp_path / "qwen")]), fake_context("qwen-code"))
        for item in src.fetch(Window(None, datetime.now(UTC)), {}):
            if isinstance(item, UsageRecord):
                session.add(item, pricer(item) if item.model else None)
        session.finish(None)
        cols = [c[1] for c in store.conn.execute("PRAGMA table_info(usage)")]
        keep = [i for i, c in enumerate(cols) if c != "fetched_at"]
        assert [tuple(r[i] for i in keep) for r in store.conn.execute("SELECT * FROM usage ORDER BY id")] == bulk
        assert (session.counts.new, session.counts.updated, session.counts.unchanged) == counts[:3]
        assert (src.ctx.skipped, src.ctx.unrecognised_count) == counts[3:]
    # worker processes that lag behind: the main process parses some batches; the same rows and counts
    monkeypatch.setattr(tail, "PARALLEL_MIN", 0)
    monkeypatch.setattr(tail, "PARALLEL_BATCH", 64 << 10)
    monkeypatch.setattr(tail, "WORKERS", 1)
    monkeypatch.setattr(tail, "_read_batch", _slow_read_batch)
    STOLEN.clear()
    assert _fetch_table(tmp_path / "parallel.db", tmp_path / "qwen") == (bulk, counts)
    assert STOLEN


def _bad_pack(rows: list[Any], plan: Any) -> RecordBatch:
    return RecordBatch("qwen", None, [("", T0, *[None] * 12)] if rows else [])


def test_a_batch_that_breaks_the_contract_in_a_worker_fails_the_run(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    gen_logs().gen_qwen_code(tmp_path / "qwen", 300, seed=2, days=1)
    monkeypatch.setattr(tail, "PARALLEL_MIN", 0)
    monkeypatch.setattr(tail, "PARALLEL_BATCH", 16 << 10)
    monkeypatch.setattr(tail, "WORKERS", 1)
    monkeypatch.setattr(QwenParser, "pack_rows", staticmethod(_bad_pack))
    with Store.open(tmp_path / "t.db") as store:
        res = run_one(store, QwenCodeSource, {"roots": [str(tmp_path / "qwen")]}, ctx=fake_context("qwen-code"))
    assert res.status == "error"
    assert res.message == "invalid record field 'key' (from qwen-code): expected a non-empty str"


def _has_time_index(store: Store) -> bool:
    return store.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'idx_usage_start'").fetchone() is not None


def _rows(n: int, prefix: str = "k") -> RecordBatch:
    return RecordBatch("acme", None, [(f"{prefix}{i}", T0 + timedelta(minutes=i % 5000), "m-a", None, None, None,
                                       1, 10, 2, None, None, None, 12, None) for i in range(n)])


def test_a_bulk_load_into_an_empty_table_rebuilds_the_time_index_at_the_end(tmp_path: Path):
    with Store.open(tmp_path / "t.db") as store:
        session = store.session("src", "log")
        session.add_rows(_rows(12_000))
        session.checkpoint({"at": 1})
        assert not _has_time_index(store)  # committed rows, index still to come
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (BULK_WAL_PAGES,)
        session.finish({"at": 2})
        assert _has_time_index(store)
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)  # as it was
        plan = " ".join(str(r) for r in store.conn.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM usage WHERE start_ts >= 0 AND start_ts < 10"))
        assert "idx_usage_start" in plan
        # a load into a table that holds rows keeps the index all along
        session = store.session("src", "log")
        session.add_rows(_rows(6_000, "more"))
        session.checkpoint(None)
        assert _has_time_index(store)
        session.finish(None)
        assert store.conn.execute("SELECT COUNT(*) FROM usage").fetchone() == (18_000,)


def test_a_load_killed_before_the_index_came_back_is_repaired_by_the_next_write(tmp_path: Path):
    store = Store.open(tmp_path / "t.db")
    session = store.session("src", "log")
    session.add_rows(_rows(6_000))
    session.checkpoint({"at": 1})
    store.conn.close()  # killed: no finish, no abort
    with Store.open(tmp_path / "t.db") as store:
        assert not _has_time_index(store)
        assert store.get_cursor("src") == {"at": 1}
        session = store.session("src", "log")
        session.add_rows(_rows(3, "late"))
        session.finish(None)
        assert _has_time_index(store)
        assert store.conn.execute("SELECT COUNT(*) FROM usage").fetchone() == (6_003,)
        # and an aborted load puts it back at once
        fresh = Store.open(tmp_path / "u.db")
        s = fresh.session("src", "log")
        s.add_rows(_rows(6_000))
        s.abort()
        assert _has_time_index(fresh) and fresh.conn.execute("SELECT COUNT(*) FROM usage").fetchone() == (0,)
        fresh.close()


def test_worker_processes_hand_over_batches_priced_and_encoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gen_logs().gen_qwen_code(tmp_path / "qwen", 1500, seed=3, days=2)
    serial, counts = _fetch_table(tmp_path / "serial.db", tmp_path / "qwen")
    stored: list[bool] = []
    here: list[int] = []  # batches prepared in this process (a worker's calls land in its own copy)
    add_rows, prepare = WriteSession.add_rows, BatchPreparer.__call__

    def spy_add(self: WriteSession, batch: RecordBatch, estimates: Any = None) -> None:
        stored.append(batch.prepared is not None and batch.prepared[0] == self.encoding)
        add_rows(self, batch, estimates)

    def spy_prepare(self: BatchPreparer, batch: RecordBatch) -> RecordBatch:
        here.append(os.getpid())
        return prepare(self, batch)

    monkeypatch.setattr(WriteSession, "add_rows", spy_add)
    monkeypatch.setattr(BatchPreparer, "__call__", spy_prepare)
    monkeypatch.setattr(tail, "PARALLEL_MIN", 0)
    monkeypatch.setattr(tail, "PARALLEL_BATCH", 64 << 10)
    monkeypatch.setattr(tail, "WORKERS", 2)
    assert _fetch_table(tmp_path / "parallel.db", tmp_path / "qwen") == (serial, counts)
    assert stored and all(stored)
    assert len(here) < len(stored) / 2  # most came from the workers ready to store


def test_a_batch_prepared_for_another_source_is_prepared_again(tmp_path: Path):
    rows = _rows(10)
    other = rows.with_prepared((("another", "log"), ((None,) * 20,) * 10))
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "b.db") as b:
        for store, batch in ((a, rows), (b, other)):
            s = store.session("src", "log")
            s.add_rows(batch)
            s.finish(None)
        q = "SELECT id, key, start, content_hash FROM usage ORDER BY id"
        assert a.conn.execute(q).fetchall() == b.conn.execute(q).fetchall()
        assert len(a.conn.execute(q).fetchall()) == 10


def test_a_bulk_load_counts_a_key_that_comes_again_once(tmp_path: Path):
    first, again = _rows(6_000), _rows(10)
    changed = RecordBatch("acme", None, [(*r[:7], 99, *r[8:]) for r in _rows(3).rows])
    with Store.open(tmp_path / "t.db") as store:
        s = store.session("src", "log")
        s.add_rows(first)  # 5000 flushed: a bulk load into an empty table
        s.flush()
        s.add_rows(again)  # the same keys, the same content: unchanged
        s.flush()
        s.add_rows(changed)  # the same keys, new content: the last one wins
        s.finish(None)
        assert (s.counts.new, s.counts.updated, s.counts.unchanged) == (6_000, 3, 10)
        assert store.conn.execute("SELECT COUNT(*), SUM(input_tokens) FROM usage").fetchone() == (
            6_000, 10 * 6_000 + 89 * 3)


class _NiceParser:
    """Rows that say which process parsed them, at which priority (module level: pickled to workers)."""

    skips: list[Any] = []

    def __init__(self, path: str, start: int, state: Any, opts: Any) -> None:
        pass

    def block(self, buf: bytes, end: int, base: int) -> list[tuple[int, int]]:
        return [(os.getpid(), os.nice(0))]

    def tail(self, data: bytes, base: int) -> list[Any]:
        return []

    def state(self) -> None:
        return None


def test_worker_processes_run_below_the_writer(tmp_path: Path):
    plans = []
    for i in range(6):
        p = tmp_path / f"{i}.log"
        p.write_bytes(b"x\n" * 10)
        plans.append(tail.TailPlan(str(p), 0, None, 20, "new"))
    rows = [r for _, events in tail._events_parallel(_NiceParser, None, plans, 2)
            for ev in events if ev[0] == "rows" for r in ev[1]]
    here = os.nice(0)
    by_workers = {nice for pid, nice in rows if pid != os.getpid()}
    assert by_workers == {min(here + tail.WORKER_NICE, 19)}


_GROUPED = ("SELECT bucket, source, kind, account, provider, model, project, agent, machine, has_cost, currency, "
            "cost_kind, est_currency, SUM(records), SUM(calls), SUM(requests), SUM(input_tokens), SUM(output_tokens), "
            "SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(total_tokens), "
            "SUM(cost_nanos), SUM(est_cost_nanos) FROM usage_rollup GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 "
            "ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13")


@pytest.mark.parametrize("into_empty", [True, False])
def test_rollup_sums_made_with_the_batches_equal_the_rollup_rebuilt_from_the_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, into_empty: bool):
    rng = random.Random(5)
    pricer = Pricer(_book())
    used: list[int] = []
    roll_sums = Store._roll_sums

    def spy(self: Store, *args: Any) -> list[int]:
        used.append(1)
        return roll_sums(self, *args)

    monkeypatch.setattr(Store, "_roll_sums", spy)
    with Store.open(tmp_path / "t.db") as store:
        if not into_empty:
            s = store.session("src", "log", "laptop")
            s.add_rows(_rows(10, "old"))
            s.finish(None)
        s = store.session("src", "log", "laptop")
        prepare = BatchPreparer(s.encoding, pricer)
        n = 0
        for part in range(6):
            account = "machine-1" if part % 2 else None
            batch = RecordBatch("acme" if part < 4 else "other", account,
                                [_random_row(rng, n + i) for i in range(1500)])
            n += 1500
            s.add_rows(prepare(batch))
            if part == 2:
                s.checkpoint({"part": part})
        s.finish({"done": True})
        assert s.counts.new == 9000 and used
        store.refresh_rollup()  # as a report does: buckets marked dirty before are rebuilt
        got = store.conn.execute(_GROUPED).fetchall()
        store.mark_all_dirty()
        store.refresh_rollup()
        assert store.conn.execute(_GROUPED).fetchall() == got
        assert len(got) > 100


def test_rows_that_were_not_all_new_are_rolled_up_from_the_table(tmp_path: Path):
    pricer = Pricer(_book())
    with Store.open(tmp_path / "t.db") as store:
        s = store.session("src", "log")
        prepare = BatchPreparer(s.encoding, pricer)
        s.add_rows(prepare(_rows(3000)))
        s.flush()
        s.add_rows(prepare(_rows(3000)))  # the same ids again: unchanged, nothing to add
        s.finish(None)
        assert (s.counts.new, s.counts.unchanged) == (3000, 3000)
        got = store.conn.execute(_GROUPED).fetchall()
        assert sum(r[13] for r in got) == 3000
        store.mark_all_dirty()
        store.refresh_rollup()
        assert store.conn.execute(_GROUPED).fetchall() == got
