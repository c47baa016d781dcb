"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from ..config import Config, db_path, fixed_now, load_config, parse_timezone
from ..output import FORMATS, dumps, render_csv, render_table, safe_text
from ..store import Store

__all__ = ["Env", "common_options", "emit", "format_options", "get_env"]


@dataclass
class Env:
    """What a command needs: config, database path, debug flag and 'now' (fixed in tests)."""

    config_file: str | None = None
    db: str | None = None
    debug: bool = False
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file)
            for w in self._config.warnings:
                click.echo(f"tokenmeter: warning: {safe_text(w)}", err=True)
        return self._config

    @property
    def db_path(self) -> str:
        return str(db_path(self.db, self.config))

    def open_store(self) -> Store:
        return Store.open(self.db_path)

    def now(self) -> datetime:
        return fixed_now() or datetime.now(UTC)

    def timezone(self, name: str | None) -> Any:
        return parse_timezone(name) if name else self.config.timezone


def get_env() -> Env:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Env):
        root.obj = Env()
    return root.obj


def _store_common(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            env = ctx.find_root().obj
            if not isinstance(env, Env):
                env = ctx.find_root().obj = Env()
            setattr(env, name, value)
        return value

    return callback


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--db, --config, --debug: accepted on the root and on every command."""
    for opt in reversed([
        click.option("--db", "db_opt", metavar="PATH", expose_value=False, callback=_store_common("db"),
                     help="Database file (default: user data dir; env TOKENMETER_DB)."),
        click.option("--config", "config_opt", metavar="PATH", expose_value=False,
                     callback=_store_common("config_file"),
                     help="Config file (default: user config dir; env TOKENMETER_CONFIG)."),
        click.option("--debug", "debug_opt", is_flag=True, default=False, expose_value=False,
                     callback=_store_common("debug"), help="Show tracebacks on errors."),
    ]):
        f = opt(f)
    return f


def format_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """-f/--format table|json|csv|tsv, --json, --csv."""
    opts = [
        click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default=None,
                     help="Output format (default: table on a terminal, json when piped)."),
        click.option("--json", "as_json", is_flag=True, help="Same as --format json."),
        click.option("--csv", "as_csv", is_flag=True, help="Same as --format csv."),
    ]
    for opt in reversed(opts):
        f = opt(f)

    @functools.wraps(f)
    def wrapper(*args: Any, fmt: str | None, as_json: bool, as_csv: bool, **kwargs: Any) -> Any:
        if as_json:
            fmt = "json"
        elif as_csv:
            fmt = "csv"
        elif fmt is None:
            fmt = "table" if sys.stdout.isatty() else "json"
        return f(*args, fmt=fmt, **kwargs)

    return wrapper


def emit(
    data: Any,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    footer: Sequence[str] = (),
) -> None:
    """Print ``data`` as JSON, or ``rows`` as a table / CSV / TSV."""
    if fmt == "json":
        click.echo(dumps(data))
    elif fmt == "csv":
        click.echo(render_csv(rows, columns), nl=False)
    elif fmt == "tsv":
        click.echo(render_csv(rows, columns, delimiter="\t"), nl=False)
    else:
        if rows:
            click.echo(render_table(rows, columns))
        else:
            click.echo("No data.")
        for line in footer:
            click.echo(safe_text(line))
