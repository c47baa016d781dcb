"""SeenKeys (the run's record keys in a few bytes each) answers exactly like a set."""

from __future__ import annotations

import random

import pytest
from tokenmeter_plugins.dashscope_log.seen import SeenKeys


@pytest.mark.parametrize("recent, bits", [(1 << 15, 1 << 23), (64, 1 << 8), (1, 8)])
def test_seen_keys_answers_like_a_set(monkeypatch: pytest.MonkeyPatch, recent: int, bits: int):
    monkeypatch.setattr(SeenKeys, "RECENT", recent)
    monkeypatch.setattr(SeenKeys, "BITS", bits)
    rng = random.Random(recent)
    pool = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(3000)] + [0, -1, (1 << 63) - 1, -(1 << 63)]
    stream = [rng.choice(pool) for _ in range(12_000)]
    seen, plain = SeenKeys(), set()
    got = [seen.first(h) for h in stream]
    want = []
    for h in stream:
        want.append(h not in plain)
        plain.add(h)
    assert got == want
    assert len(seen) == len(plain)
    assert sum(got) == len(plain) > 2000


def test_a_fork_copy_and_a_second_root_count_each_call_once_with_many_keys(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(SeenKeys, "RECENT", 100)  # many sorted runs
    seen = SeenKeys()
    keys = [hash(f"r:chatcmpl-{i:032x}") for i in range(5000)]
    assert all(seen.first(k) for k in keys)
    assert not any(seen.first(k) for k in keys[::7])
    assert len(seen) == 5000
