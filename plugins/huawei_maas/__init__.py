"""Built-in plugin: Huawei Cloud MaaS usage statistics (source ``huawei-maas``) and its list prices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokenmeter import hookimpl

from . import prices
from .source import HuaweiMaasSource

__all__ = ["HuaweiMaasSource", "register_prices", "register_sources"]


@hookimpl
def register_sources(register: Callable[[type[Any]], None]) -> None:
    register(HuaweiMaasSource)


@hookimpl
def register_prices(register: Callable[[Any], None]) -> None:
    prices.register_prices(register)
