from decimal import Decimal
from pathlib import Path

from tokenmeter.testing import check_records, collect

from tokenmeter_acme_log.log import AcmeLogSource

CALLS = Path(__file__).parent / "calls.jsonl"


def test_one_record_per_call():
    out = collect(AcmeLogSource, {"path": str(CALLS)})
    check_records(out.records)
    assert [(r.provider, r.model) for r in out.records] == [
        ("acme", "acme-large"), ("acme", "acme-large"), ("acme", "acme-small-latest"),
        ("acme-eu", "acme-large"), ("acme", "acme-unknown"),
    ]
    assert all(r.cost is None for r in out.records)  # the log has no cost: tokenmeter estimates it


def test_calls_are_estimated_with_our_prices(source_runner):
    """Needs the plugin installed (its prices are registered through its entry point)."""
    run = source_runner(AcmeLogSource, {"path": str(CALLS)})
    assert (run.status, run.new) == ("ok", 5)
    estimates = sorted((r["start"][:10], r["model"], r["provider"], r["estimated_cost"], r["est_currency"])
                       for r in run.rows)
    assert estimates == [
        ("2026-03-14", "acme-large", "acme", Decimal("10"), "USD"),  # old price: 2 + 8
        ("2026-03-15", "acme-large", "acme", Decimal("6.96"), "USD"),  # new: 0.6M x 1.5 + 0.4M x 0.15 + 6
        ("2026-03-15", "acme-large", "acme-eu", Decimal("1.62"), "EUR"),  # the EU list
        ("2026-03-15", "acme-small-latest", "acme", Decimal("0.038"), "USD"),  # alias, >100k tier
        ("2026-03-15", "acme-unknown", "acme", None, None),  # no price: unpriced, never 0
    ]
