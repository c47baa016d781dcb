"""Plugin hooks. Hooks are only ever added, and arguments only added, never renamed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pluggy

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
