"""Plugin hooks. Hooks are only ever added, and arguments only added, never renamed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
import pluggy

if TYPE_CHECKING:
    from .pricing.entries import PriceEntry, PriceRegion

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("tokenmeter")
hookimpl = pluggy.HookimplMarker("tokenmeter")


@hookspec
def register_sources(register: Callable[[type[Any]], None]) -> None:
    """Register source classes.

    :param register: call ``register(SourceClass)`` once per ``tokenmeter.Source`` subclass.
        A source id registered by two plugins is rejected, naming both.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands to the root ``tokenmeter`` group.

    :param cli: the root click group; use ``@cli.command()`` to add commands.
    """


@hookspec
def register_prices(register: Callable[[PriceEntry | PriceRegion], None]) -> None:
    """Register dated model prices (per 1M tokens) and, optionally, the price regions they form.

    :param register: call ``register(tokenmeter.PriceEntry(...))`` once per model, provider label and
        date a price takes effect; ``register(tokenmeter.PriceRegion(...))`` groups several labels
        under one currency and price list. Config ``[prices]`` overrides beat registered prices.
    """
