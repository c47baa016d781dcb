"""Built-in plugin: Huawei Cloud MaaS usage statistics (source ``huawei-maas``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokenmeter import hookimpl

from .source import HuaweiMaasSource

__all__ = ["HuaweiMaasSource", "register_sources"]


@hookimpl
def register_sources(register: Callable[[type[Any]], None]) -> None:
    register(HuaweiMaasSource)
