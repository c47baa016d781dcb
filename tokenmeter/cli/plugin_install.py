"""`tokenmeter plugins`, `tokenmeter plugins install` and `tokenmeter plugins uninstall`.

Install and uninstall run pip in the interpreter tokenmeter runs in (``sys.executable -m pip``),
so a plugin lands next to tokenmeter even when tokenmeter lives in its own pipx or uv-tool
environment, where a plain ``pip install`` would put it somewhere tokenmeter never looks.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import click

from ..render import View
from .common import common_options, show

__all__ = ["pip_command", "plugins_group"]

NO_PIP = (
    "pip is not available in tokenmeter's environment ({python}). "
    "If you installed tokenmeter with uv, run `uv tool install tokenmeter --with {example}` instead; "
    "otherwise run `{python} -m ensurepip` and try again."
)


def pip_command(*args: str) -> list[str]:
    """The pip command line for this interpreter: ``[sys.executable, "-m", "pip", *args]``."""
    return [sys.executable, "-m", "pip", *args]


def _run_pip(args: list[str], example: str) -> None:
    if importlib.util.find_spec("pip") is None:
        raise click.ClickException(NO_PIP.format(python=sys.executable, example=example or "NAME"))
    returncode = subprocess.run(pip_command(*args)).returncode
    if returncode:
        raise click.exceptions.Exit(returncode)


@click.group(name="plugins", invoke_without_command=True)
@common_options
@click.pass_context
def plugins_group(ctx: click.Context) -> None:
    """Installed plugins as JSON: name, version, hooks, sources, prices, load errors.

    \b
    tokenmeter plugins                            list installed plugins
    tokenmeter plugins install tokenmeter-foo     install a plugin from PyPI
    tokenmeter plugins install -e ./my-plugin     install a plugin you are writing
    tokenmeter plugins uninstall tokenmeter-foo   remove it again
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..plugin_manager import get_plugins

    show(View(data=get_plugins(), ascii_json=True), "json")


@plugins_group.command(name="install")
@click.argument("packages", nargs=-1)
@click.option("-e", "--editable", "editable", multiple=True, metavar="PATH",
              help="Install a project in editable mode from this folder (repeatable).")
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to the newest version.")
@click.option("--force-reinstall", is_flag=True, help="Reinstall even if the packages are up to date.")
@click.option("--no-cache-dir", is_flag=True, help="Do not use pip's cache.")
@click.option("--pre", is_flag=True, help="Include pre-release and development versions.")
@common_options
def plugins_install(
    packages: tuple[str, ...],
    editable: tuple[str, ...],
    upgrade: bool,
    force_reinstall: bool,
    no_cache_dir: bool,
    pre: bool,
) -> None:
    """Install plugins with pip into tokenmeter's own environment.

    PACKAGES are anything pip accepts: names from PyPI, paths, URLs, `name==1.2`.

    \b
    tokenmeter plugins install tokenmeter-foo
    tokenmeter plugins install -U tokenmeter-foo
    tokenmeter plugins install -e .
    """
    if not packages and not editable:
        raise click.UsageError("name at least one package, or a folder with -e PATH")
    args = ["install"]
    for flag, on in (("--upgrade", upgrade), ("--force-reinstall", force_reinstall),
                     ("--no-cache-dir", no_cache_dir), ("--pre", pre)):
        if on:
            args.append(flag)
    for path in editable:
        args += ["--editable", path]
    args += list(packages)
    _run_pip(args, (packages or editable)[0])


@plugins_group.command(name="uninstall")
@click.argument("packages", nargs=-1, required=True)
@common_options
def plugins_uninstall(packages: tuple[str, ...]) -> None:
    """Uninstall plugins with pip from tokenmeter's environment (no confirmation prompt).

    \b
    tokenmeter plugins uninstall tokenmeter-foo
    """
    if any(p.lower() == "tokenmeter" for p in packages):
        raise click.UsageError("tokenmeter cannot uninstall itself; use the tool you installed it with")
    _run_pip(["uninstall", "-y", *packages], packages[0])
