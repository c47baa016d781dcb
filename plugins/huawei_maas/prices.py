"""Huawei Cloud MaaS prices: the international site's CN-Hong Kong list (USD), from ``prices.json``.

The page prices per 1K tokens; ``prices.json`` (written by ``tools/update_prices.py``) holds them per
1M. The China site (``huawei-maas-cn``, CNY) is its own region with no prices yet, so its records
are never priced at the USD list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from tokenmeter import PriceEntry, PriceRegion

__all__ = ["REGIONS", "entries", "register_prices"]

DATA = Path(__file__).with_name("prices.json")

REGIONS = (
    PriceRegion(id="huawei-maas", currency="USD", providers=("huawei-maas", "huawei-maas-hk"),
                description="Huawei Cloud MaaS, CN-Hong Kong (international site)"),
    PriceRegion(id="huawei-maas-cn", currency="CNY", providers=("huawei-maas-cn",),
                description="Huawei Cloud MaaS, China site (cn-southwest-2); no bundled prices"),
)


@cache
def entries() -> tuple[PriceEntry, ...]:
    """The table as ``PriceEntry`` objects (read once per process)."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return tuple(
        PriceEntry(provider=raw["region"], **{k: v for k, v in raw.items() if k not in ("region", "basis")})
        for raw in data["entries"]
    )


def register_prices(register: Callable[[Any], None]) -> None:
    """Register the regions and the table (the plugin's ``register_prices`` hook calls this)."""
    for region in REGIONS:
        register(region)
    for entry in entries():
        register(entry)
