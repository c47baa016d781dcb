"""The tokenmeter command line: a thin click layer over pure functions.

The root group loads plugins lazily (when commands are listed or looked up), so importing this
module has no side effects and plugin commands appear through ``register_commands``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from typing import Any

import click
from click.core import ParameterSource

from .. import __version__
from ..errors import TokenmeterError
from ..output import safe_text
from .common import Env, common_options
from .report import report_options, run_report

USAGE_ERROR = 64
INTERRUPTED = 130


class RootGroup(click.Group):
    """Loads plugin commands on first use and maps errors to tokenmeter's exit codes."""

    def _load_plugin_commands(self) -> None:
        # once per plugin (and again after plugin_manager.reset()); a failing plugin is reported
        from ..plugin_manager import load_commands

        load_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            self._load_plugin_commands()
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        argv = kwargs.get("args", args[0] if args else None)
        debug = "--debug" in (sys.argv[1:] if argv is None else argv)
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            exc.show()
            sys.exit(USAGE_ERROR)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Interrupted.", err=True)
            sys.exit(INTERRUPTED)
        except TokenmeterError as exc:
            if os.environ.get("TOKENMETER_RAISE_ERRORS") not in (None, "", "0"):
                raise
            if debug:
                traceback.print_exc()
            click.echo(f"Error: {safe_text(str(exc))}", err=True)  # messages may quote names from outside
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            sys.exit(0)
        except sqlite3.Error as exc:  # a write the database cannot take: busy, disk full, read-only
            if os.environ.get("TOKENMETER_RAISE_ERRORS") not in (None, "", "0") or debug:
                raise
            from ..store import write_error

            mapped = write_error(exc)
            click.echo(f"Error: {safe_text(mapped or f'database error: {exc}')}", err=True)
            sys.exit(4)
        except OSError as exc:  # an unwritable --output, a full disk: one line, not a traceback
            if os.environ.get("TOKENMETER_RAISE_ERRORS") not in (None, "", "0") or debug:
                raise
            click.echo(f"Error: {safe_text(str(exc))}", err=True)
            sys.exit(4)
        sys.exit(rv if isinstance(rv, int) else 0)


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
                             "agent", "group_by", "cost_mode"])
        if stray:
            raise click.UsageError(f"--dashboard takes a period and --tz, not {stray[0]}")
        from .insights import run_dashboard

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


def _register_builtin_commands() -> None:
    from .db import db_group
    from .fetch import fetch_cmd
    from .insights import budget_cmd, dashboard_cmd, forecast_cmd, reconcile_cmd
    from .metrics import metrics_cmd
    from .misc import demo_cmd, prices_cmd, quota_cmd, reprice_cmd, sources_cmd
    from .plugin_install import plugins_group
    from .report import report_cmd

    for command in (report_cmd, fetch_cmd, sources_cmd, plugins_group, quota_cmd, prices_cmd,
                    reprice_cmd, demo_cmd, db_group, budget_cmd, forecast_cmd, dashboard_cmd, reconcile_cmd,
                    metrics_cmd):
        cli.add_command(command)


_register_builtin_commands()
