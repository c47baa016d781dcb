"""The tokenmeter command line: a thin click layer over pure functions.

The root group loads plugins lazily (when commands are listed or looked up), so importing this
module has no side effects and plugin commands appear through ``register_commands``.
"""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import sys
import traceback
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from .. import __version__
from ..errors import TokenmeterError
from ..render import error_view, render
from .common import Env, common_options
from .report import report_options, run_report

USAGE_ERROR = 64
INTERRUPTED = 130


# The built-in commands by name: (module under tokenmeter.cli, attribute). Each module is imported
# when its command is first looked up or listed: the bare report (the common run) then never pays
# for the imports of budgets, the dashboard, merging, plugin installs and the rest.
BUILTIN_COMMANDS = {
    "report": ("report", "report_cmd"), "fetch": ("fetch", "fetch_cmd"), "sources": ("sources", "sources_cmd"),
    "plugins": ("plugin_install", "plugins_group"), "quota": ("quota", "quota_cmd"),
    "prices": ("prices", "prices_cmd"), "reprice": ("prices", "reprice_cmd"), "demo": ("demo", "demo_cmd"),
    "db": ("db", "db_group"), "budget": ("budget", "budget_cmd"), "forecast": ("forecast", "forecast_cmd"),
    "dashboard": ("dashboard", "dashboard_cmd"), "reconcile": ("reconcile", "reconcile_cmd"),
    "metrics": ("metrics", "metrics_cmd"), "daily": ("report", "alias_cmds"), "weekly": ("report", "alias_cmds"),
    "monthly": ("report", "alias_cmds"), "session": ("report", "alias_cmds"),
    "statusline": ("statusline", "statusline_cmd"), "watch": ("watch", "watch_cmd"),
}


class RootGroup(click.Group):
    """Loads built-in and plugin commands on first use and maps errors to tokenmeter's exit codes."""

    def _load_plugin_commands(self) -> None:
        # once per plugin (and again after plugin_manager.reset()); a failing plugin is reported
        from ..plugin_manager import load_commands

        load_commands(self)

    def _builtin(self, name: str) -> click.Command | None:
        """The built-in command ``name``, imported now; a command already added under that name (a
        plugin's, which replaces the built-in as it always did) is kept."""
        if name in self.commands or name not in BUILTIN_COMMANDS:
            return self.commands.get(name)
        module, attr = BUILTIN_COMMANDS[name]
        found = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        for command in found if isinstance(found, list) else [found]:
            if command.name == name:
                self.add_command(command)
        return self.commands.get(name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        for name in BUILTIN_COMMANDS:
            self._builtin(name)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = self._builtin(cmd_name)
        if cmd is None:
            self._load_plugin_commands()
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        argv = kwargs.get("args", args[0] if args else None)
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in argv
        as_json = json_asked(argv)
        raise_errors = os.environ.get("TOKENMETER_RAISE_ERRORS") not in (None, "", "0")
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if as_json:
                fail("usage_error", exc.format_message(), USAGE_ERROR, as_json=True)
            exc.show()
            sys.exit(USAGE_ERROR)
        except click.ClickException as exc:
            if as_json:
                fail("error", exc.format_message(), exc.exit_code, as_json=True)
            exc.show()
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            fail("interrupted", "Interrupted.", INTERRUPTED, as_json=as_json, prefix="")
        except TokenmeterError as exc:
            if raise_errors:
                raise
            if debug:
                traceback.print_exc()
            fail(exc.code, str(exc), exc.exit_code, as_json=as_json)
        except BrokenPipeError:
            sys.exit(0)
        except sqlite3.Error as exc:  # a write the database cannot take: busy, disk full, read-only
            if raise_errors or debug:
                raise
            from ..store import write_error

            mapped = write_error(exc)
            fail("database_error", str(mapped or f"database error: {exc}"), 4, as_json=as_json)
        except OSError as exc:  # an unwritable --output, a full disk: one line, not a traceback
            if raise_errors or debug:
                raise
            fail("os_error", str(exc), 4, as_json=as_json)
        sys.exit(rv if isinstance(rv, int) else 0)


def json_asked(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (--json, -j, --format json, -f json), so that an error
    is a JSON document too. Read from the raw arguments: a usage error stops click before its
    options are parsed."""
    args = argv[:argv.index("--")] if "--" in argv else argv
    for i, arg in enumerate(args):
        if arg in ("--json", "-j", "--format=json", "-fjson", "-f=json"):
            return True
        if arg in ("--format", "-f") and args[i + 1:i + 2] == ["json"]:
            return True
        if re.fullmatch(r"-[bjq]+", arg) and "j" in arg:  # flags given together: -jq
            return True
    return False


def fail(code: str, message: str, exit_code: int, *, as_json: bool, prefix: str = "Error: ") -> NoReturn:
    """End with an error on stderr, where the provider CLI we copy writes its error documents (stdout
    stays empty, so a pipe never takes an error for a report): the JSON document when JSON was asked
    for, else the one line (``render.error_view``)."""
    click.echo(render(error_view(code, message, exit_code, prefix=prefix), "json" if as_json else "table"),
               err=True, nl=False)
    sys.exit(exit_code)


@click.group(
    cls=RootGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="tokenmeter")
@report_options
@click.option("--dashboard", is_flag=True, help="Write the HTML dashboard for the period instead.")
@common_options
@click.pass_context
def cli(ctx: click.Context, dashboard: bool, **kwargs: Any) -> None:
    """LLM usage and cost from every provider, log and plugin, in one database.

    Without a command, prints a usage report (the same options as `tokenmeter report`).

    \b
    Quick start:
      tokenmeter demo                      try it on bundled sample data
      tokenmeter fetch                     pull from every configured source
      tokenmeter --month --by day,model    this month's usage and cost
      tokenmeter budget                    budget levels (exit 0 ok, 1 warning, 2 critical)
    """
    if not isinstance(ctx.obj, Env):
        ctx.obj = Env()
    if ctx.invoked_subcommand is not None:
        # `tokenmeter --provider acme report` would otherwise report every provider
        stray = _given(ctx, [p.name for p in ctx.command.params
                             if p.name and p.name not in ("db_opt", "config_opt", "debug_opt", "version")])
        if stray:
            raise click.UsageError(f"{stray[0]} goes after the command: "
                                   f"`tokenmeter {ctx.invoked_subcommand} {stray[0]} ...`")
        return
    if dashboard:
        stray = _given(ctx, ["date_from", "date_to", "days", "provider", "source", "model", "project",
                             "agent", "group_by", "breakdown", "order", "cost_mode"])
        if stray:
            raise click.UsageError(f"--dashboard takes a period and --tz, not {stray[0]}")
        from .dashboard import run_dashboard

        run_dashboard(period_name=kwargs.get("period_name") or kwargs.get("preset"), output=None,
                      open_browser=False, quiet=kwargs.get("quiet", False), tz=kwargs.get("tz"))
        return
    run_report(**kwargs)


def _given(ctx: click.Context, names: list[str]) -> list[str]:
    """The options among ``names`` that were typed on the command line, as typed (``--month``)."""
    out = []
    for param in ctx.command.params:
        if param.name in names and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            if param.opts[0] not in out:
                out.append(param.opts[0])
    return out
