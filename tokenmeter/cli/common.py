"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ..output import FORMATS, safe_text
from ..render import View, render
from ..service import Environment

__all__ = ["Env", "common_options", "format_options", "get_env", "say", "show"]


def say(message: str) -> None:
    """A note for the user on stderr (stdout stays the document)."""
    click.echo(message, err=True)


def _warn(message: str) -> None:
    say(f"tokenmeter: warning: {safe_text(message)}")


@dataclass
class Env(Environment):
    """The command line's ``Environment``: config warnings on stderr, and the --debug flag."""

    warn: Callable[[str], None] = _warn
    debug: bool = False


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
    """-f/--format table|text|json|csv|tsv, -j/--json, --csv (``text``, what some provider CLIs call
    their human format, is the table)."""
    opts = [
        click.option("-f", "--format", "fmt", type=click.Choice([*FORMATS, "text"]), default=None,
                     help="Output format (default: table on a terminal, json when piped; text = table)."),
        click.option("-j", "--json", "as_json", is_flag=True, help="Same as --format json."),
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
        elif fmt == "text":
            fmt = "table"
        return f(*args, fmt=fmt, **kwargs)

    return wrapper


def show(view: View, fmt: str) -> None:
    """Print ``view`` in ``fmt`` (see ``tokenmeter.render``)."""
    click.echo(render(view, fmt), nl=False)
