"""`tokenmeter plugins install/uninstall`: pip in tokenmeter's own interpreter, flags passed through."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from helpers_host import cli_run

from tokenmeter.cli import plugin_install


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(args: list[str], *a: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(list(args))
        return subprocess.CompletedProcess(args, 3 if "fail-me" in args else 0)

    monkeypatch.setattr(plugin_install.subprocess, "run", fake_run)
    return calls


def test_bare_plugins_still_prints_the_json_list():
    result = cli_run(["plugins"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []  # the helper loads no installed plugins


def test_install_runs_pip_in_this_interpreter(pip_calls):
    result = cli_run(["plugins", "install", "tokenmeter-foo", "tokenmeter-bar==1.2"])
    assert result.exit_code == 0, result.output
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "tokenmeter-foo", "tokenmeter-bar==1.2"]]


def test_install_passes_editable_and_upgrade_through(pip_calls):
    result = cli_run(["plugins", "install", "-U", "--pre", "-e", "./one", "--editable", "../two", "x"])
    assert result.exit_code == 0, result.output
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "--upgrade", "--pre",
                          "--editable", "./one", "--editable", "../two", "x"]]


def test_uninstall_never_asks(pip_calls):
    result = cli_run(["plugins", "uninstall", "tokenmeter-foo"])
    assert result.exit_code == 0, result.output
    assert pip_calls == [[sys.executable, "-m", "pip", "uninstall", "-y", "tokenmeter-foo"]]


def test_pip_failure_is_the_exit_code(pip_calls):
    assert cli_run(["plugins", "install", "fail-me"]).exit_code == 3


def test_usage_errors(pip_calls):
    result = cli_run(["plugins", "install"])
    assert result.exit_code == 64
    assert "name at least one package, or a folder with -e PATH" in result.output
    result = cli_run(["plugins", "uninstall", "tokenmeter"])
    assert "tokenmeter cannot uninstall itself" in result.output
    assert pip_calls == []


def test_missing_pip_explains_the_uv_way(pip_calls, monkeypatch):
    monkeypatch.setattr(plugin_install.importlib.util, "find_spec", lambda name: None)
    result = cli_run(["plugins", "install", "tokenmeter-foo"])
    assert result.exit_code == 1
    assert "uv tool install tokenmeter --with tokenmeter-foo" in result.output
    assert pip_calls == []
