"""Built-in plugin ``alibaba-prices``: Alibaba Cloud Model Studio (DashScope) list prices.

A prices-only plugin, so that every source of Alibaba-served usage - the ``dashscope-log`` and
``qwen-code`` logs, the ``qwencloud`` ledgers, third-party sources - is priced from one table
without any plugin importing another. Two price regions, never mixed:

- ``intl`` (USD, the international / Singapore list): labels ``qwen``, ``dashscope``,
  ``qwencloud``, ``alibaba`` and everything under them (``qwen-singapore``, ``dashscope-intl``, ...);
- ``cn`` (CNY, the China mainland / Beijing list): ``qwen-beijing``, ``qwen-cn``, ``qwen-china``,
  ``dashscope-cn``, ``bailian``.

``prices.json`` is written by ``tools/update_prices.py``; the international part is derived from
model-prices and models.dev, both MIT licensed: their notices travel with the data (``notices``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from tokenmeter import PriceEntry, PriceRegion, hookimpl

__all__ = ["REGIONS", "register_prices"]

DATA = Path(__file__).with_name("prices.json")

REGIONS = (
    PriceRegion(id="intl", currency="USD",
                providers=("qwen", "qwen-intl", "qwen-singapore", "qwen-vl-singapore", "qwen-virginia",
                           "dashscope", "dashscope-intl", "qwencloud", "alibaba"),
                description="Alibaba Cloud Model Studio, international (Singapore) list prices"),
    PriceRegion(id="cn", currency="CNY",
                providers=("qwen-beijing", "qwen-cn", "qwen-china", "dashscope-cn", "bailian"),
                description="Alibaba Cloud Model Studio (Bailian), China mainland (Beijing)"),
)
_LABEL = {r.id: r.providers[0] for r in REGIONS}  # an entry joins its region through the region's first label
_NOT_FIELDS = ("region", "basis")  # provenance kept in the file, not part of a PriceEntry


@cache
def entries() -> tuple[PriceEntry, ...]:
    """The table as ``PriceEntry`` objects (read once per process)."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return tuple(
        PriceEntry(provider=_LABEL[raw["region"]], **{k: v for k, v in raw.items() if k not in _NOT_FIELDS})
        for raw in data["entries"]
    )


@hookimpl
def register_prices(register: Callable[[Any], None]) -> None:
    for region in REGIONS:
        register(region)
    for entry in entries():
        register(entry)
