"""`tokenmeter sources`: what is installed, enabled and ready."""

from __future__ import annotations

from typing import Any

import click

from .. import service
from ..render import View
from .common import common_options, format_options, get_env, show


@click.command(name="sources")
@click.option("--no-check", is_flag=True, help="Skip sources' health checks (e.g. a provider CLI's login status).")
@format_options
@common_options
def sources_cmd(fmt: str, no_check: bool) -> None:
    """Installed sources: enabled, ready or why not, last fetch, last error."""
    env = get_env()
    config = env.config
    with env.open_store() as store:
        rows = service.source_rows(store, config, check=not no_check)
    # what a source says about itself (`info()`), under the table
    info = [f"{row['source']}: {line}" for row in rows for line in _info_lines(row.get("info") or {})]
    show(View(data=rows, rows=rows, columns=["source", "kind", "provider", "status", "last_success", "last_error"],
              footer=info), fmt)


def _info_lines(info: dict[str, Any]) -> list[str]:
    """A source's ``info()`` as short lines under the table (lists joined, booleans as tested/untested)."""
    lines = []
    for key, value in info.items():
        if key == "client_versions" and isinstance(value, dict):
            value = ", ".join(f"{v} ({'tested' if ok else 'not covered by the conformance tests'})"
                              for v, ok in value.items()) or "none yet"
        elif isinstance(value, list | tuple):
            value = ", ".join(map(str, value)) or "none"
        lines.append(f"{key.replace('_', ' ')}: {value}")
    return lines
