"""Acme's list prices per 1M tokens, dated: a change takes effect on its ``effective`` day.

acme-large got cheaper on 2026-03-15 (mid-month): calls up to 14 March keep the old price.
Calls labelled ``acme-eu`` (Acme's EU data centres) are billed in EUR from their own list.
"""

from tokenmeter import PriceEntry, PriceRegion

SOURCE = "https://acme.example/pricing"

REGIONS = [
    PriceRegion(id="acme-eu", currency="EUR", providers=("acme-eu",), description="Acme, EU data centres"),
]

PRICES = [
    PriceEntry(model="acme-large", provider="acme", currency="USD", input="2.00", output="8.00",
               effective="2026-01-01", source=SOURCE),
    PriceEntry(model="acme-large", provider="acme", currency="USD", input="1.50", output="6.00",
               cache_read="0.15", effective="2026-03-15", source=SOURCE),
    PriceEntry(model="acme-small", provider="acme", currency="USD", input="0.10", output="0.40",
               tiers=[{"above": 100_000, "input": "0.20", "output": "0.80"}],
               effective="2026-01-01", source=SOURCE, aliases=("acme-small-latest",)),
    PriceEntry(model="acme-large", provider="acme-eu", currency="EUR", input="1.80", output="7.20",
               effective="2026-01-01", source=SOURCE + "/eu"),
]
