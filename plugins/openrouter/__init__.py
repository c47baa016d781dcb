"""Built-in plugin ``openrouter``: daily per-model billed usage, key spend and credits from OpenRouter.

With a management key it reads ``/activity`` (the last 30 completed UTC days, per model and
endpoint), ``/credits`` and ``/keys``; with only an ordinary key it reads ``/key`` (the key's
limit and today's spend). See :mod:`tokenmeter_plugins.openrouter.source`.
"""

from __future__ import annotations

from typing import Any

from tokenmeter import PriceRegion, hookimpl

from .source import OpenRouterSource

__all__ = ["OpenRouterSource", "register_prices", "register_sources"]

# OpenRouter reports billed USD, so it brings no prices; the region keeps its records in USD and
# out of any other price list (a CNY override never applies to them).
REGION = PriceRegion(id="openrouter", currency="USD", providers=("openrouter",),
                     description="OpenRouter (its API reports billed cost); no bundled prices")


@hookimpl
def register_sources(register: Any) -> None:
    register(OpenRouterSource)


@hookimpl
def register_prices(register: Any) -> None:
    register(REGION)
