"""The plugin host: entry-point loading, isolation of broken plugins, env switches, hook checks."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_host import FakePlugin, cli_run, make_source, rec, register

from tokenmeter import Cursor, PluginError, hookimpl
from tokenmeter import plugin_manager as pmod
from tokenmeter.plugin_manager import get_plugins, get_sources, load_plugins, pm


def fake_dist(root: Path, dist: str, ep_name: str, module: str, code: str) -> None:
    """An installed-looking distribution in ``root`` with one ``tokenmeter`` entry point."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[tokenmeter]\n{ep_name} = {module}\n")
    (root / f"{module}.py").write_text(code)


BROKEN = "raise RuntimeError('fake_broken_mod cannot be imported')\n"
TYPO = (
    "from tokenmeter import hookimpl\n\n"
    "@hookimpl\n"
    "def register_source(register):  # misspelt: the hook is register_sources\n"
    "    pass\n"
)


@pytest.fixture
def broken(tmp_path, monkeypatch):
    fake_dist(tmp_path, "fake-broken", "broken", "fake_broken_mod", BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_broken_mod", raising=False)
    pmod.reset()
    return tmp_path


def by_name(plugins):
    return {p["name"]: p for p in plugins}


# -- end to end -----------------------------------------------------------------------------------


def test_fake_source_flows_end_to_end_to_a_report():
    items = [
        rec("r1", provider="fakeprov", model="fake-model", requests=3, input_tokens=300, output_tokens=30, cost="0.30",
            currency="USD", cost_kind="logged"),
        rec("r2", provider="fakeprov", model="fake-model", requests=1, input_tokens=100, output_tokens=10, cost="0.10",
            currency="USD", cost_kind="logged"),
        Cursor({"done": True}),
    ]
    register(make_source("fake", items, provider="fakeprov"), name="tokenmeter-fake")
    result = cli_run(["fetch", "fake", "-f", "table"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("fake: 2 new, 0 updated in ")
    data = json.loads(cli_run(["report", "--all", "--json", "--by", "provider,model"]).stdout)
    assert data["group_by"] == ["provider", "model"]
    assert len(data["rows"]) == 1
    row = data["rows"][0]
    assert (row["provider"], row["model"], row["requests"], row["input_tokens"]) == (
        "fakeprov", "fake-model", 4, 400)
    assert (row["cost"], row["currency"], row["cost_kind"]) == ("0.4", "USD", "logged")
    assert data["total"]["cost"] == "0.4"
    # the plugin shows in `tokenmeter plugins` with its source
    plugins = by_name(json.loads(cli_run(["plugins"]).stdout))
    assert plugins["tokenmeter-fake"]["sources"] == ["fake"]
    assert plugins["tokenmeter-fake"]["hooks"] == ["register_sources"]
    # fetching again replaces instead of duplicating
    again = cli_run(["fetch", "fake", "-f", "table"])
    assert again.stdout.startswith("fake: 0 new, 0 updated")
    data = json.loads(cli_run(["report", "--all", "--json"]).stdout)
    assert data["total"]["requests"] == 4 and Decimal(data["total"]["cost"]) == Decimal("0.4")


def test_installed_builtin_plugins_load_through_entry_points():
    plugins = by_name(get_plugins())
    assert {"openrouter", "huawei-maas", "qwencloud"} <= set(plugins)
    assert plugins["openrouter"]["distribution"] == "tokenmeter"
    assert "openrouter" in get_sources()


# -- broken plugins --------------------------------------------------------------------------------


def test_broken_plugin_does_not_break_cli(broken):
    result = cli_run(["plugins"], env={"TOKENMETER_LOAD_PLUGINS": None})
    assert result.exit_code == 0, result.output
    plugins = by_name(json.loads(result.stdout))
    entry = plugins["fake-broken"]
    assert entry["version"] == "1.0" and entry["sources"] == [] and entry["hooks"] == []
    assert entry["errors"] == ["RuntimeError: fake_broken_mod cannot be imported"]
    assert "plugin fake-broken skipped: RuntimeError" in result.stderr
    # the other plugins still load, and ordinary commands still work
    assert "openrouter" in plugins and "errors" not in plugins["openrouter"]
    pmod.reset()
    report = cli_run(["report", "--all", "--json", "--offline"], env={"TOKENMETER_LOAD_PLUGINS": None})
    assert report.exit_code == 0 and json.loads(report.stdout)["rows"] == []
    assert cli_run(["--help"], env={"TOKENMETER_LOAD_PLUGINS": None}).exit_code == 0


def test_broken_plugin_fatal_with_raise_errors(broken, monkeypatch):
    monkeypatch.setenv("TOKENMETER_RAISE_ERRORS", "1")
    with pytest.raises(PluginError, match="plugin fake-broken: RuntimeError: fake_broken_mod cannot be imported"):
        load_plugins()
    pmod.reset()
    with pytest.raises(PluginError, match="fake-broken"):  # fatal: the traceback is the point
        cli_run(["plugins"], env={"TOKENMETER_LOAD_PLUGINS": None, "TOKENMETER_RAISE_ERRORS": "1"})


def test_load_plugins_allow_list(broken, monkeypatch):
    monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", "openrouter")
    assert list(by_name(get_plugins())) == ["openrouter"]
    pmod.reset()
    monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", "")  # set but empty: none
    assert get_plugins() == [] and get_sources() == {}
    pmod.reset()
    # a distribution name or an entry-point name both match
    for name in ("fake-broken", "broken", "FAKE-BROKEN"):
        monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", f" {name} , openrouter")
        assert sorted(by_name(get_plugins())) == ["fake-broken", "openrouter"]
        pmod.reset()


def test_disable_plugins(broken, monkeypatch):
    monkeypatch.setenv("TOKENMETER_DISABLE_PLUGINS", "fake-broken,openrouter")
    plugins = by_name(get_plugins())
    assert "fake-broken" not in plugins and "openrouter" not in plugins
    assert "qwencloud" in plugins and "openrouter" not in get_sources()
    pmod.reset()
    monkeypatch.setenv("TOKENMETER_DISABLE_PLUGINS", "broken")  # entry-point name
    assert "fake-broken" not in by_name(get_plugins())


def test_load_plugins_is_idempotent(broken, capsys):
    load_plugins()
    first = list(pm.get_plugins())
    load_plugins()
    get_sources()
    get_plugins()
    assert list(pm.get_plugins()) == first
    assert len(pmod._state.errors) == 1
    assert capsys.readouterr().err.count("fake-broken skipped") == 1


def test_loading_is_not_an_import_side_effect():
    code = (
        "import tokenmeter, tokenmeter.cli, tokenmeter.api\n"
        "from tokenmeter import plugin_manager as p\n"
        "print(p._state.loaded, len(p.pm.get_plugins()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False 0"


# -- hook checks -----------------------------------------------------------------------------------


def test_misspelt_hook_name_is_reported(tmp_path, monkeypatch):
    fake_dist(tmp_path, "fake-typo", "typo", "fake_typo_mod", TYPO)
    monkeypatch.syspath_prepend(str(tmp_path))
    pmod.reset()
    result = cli_run(["plugins"], env={"TOKENMETER_LOAD_PLUGINS": "fake-typo"})
    assert result.exit_code == 0
    plugins = by_name(json.loads(result.stdout))
    (error,) = plugins["fake-typo"]["errors"]
    assert "unknown hook" in error and "register_source" in error
    assert "fake-typo" in result.stderr
    # it is unregistered, not half-loaded
    assert all(pm.get_name(p) != "typo" for p in pm.get_plugins())


def test_misspelt_hook_on_registered_object():
    class Typo:
        @hookimpl
        def register_source(self, register):
            pass

    pm.register(Typo(), name="typo-plugin")
    plugins = by_name(get_plugins())
    assert "register_source" in plugins["typo-plugin"]["errors"][0]
    assert pm.get_plugin("typo-plugin") is None


def test_misspelt_hook_fatal_with_raise_errors(monkeypatch):
    class Typo:
        @hookimpl
        def register_comands(self, cli):
            pass

    pm.register(Typo(), name="typo-plugin")
    monkeypatch.setenv("TOKENMETER_RAISE_ERRORS", "1")
    with pytest.raises(PluginError, match="register_comands"):
        load_plugins()


def test_duplicate_source_id_names_both_plugins(monkeypatch):
    monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", "")
    register(make_source("dup", provider="one"), name="plugin-one")
    register(make_source("dup", provider="two"), name="plugin-two")
    sources = get_sources()
    assert list(sources) == ["dup"]
    errors = [e.error for e in pmod._state.errors]
    assert len(errors) == 1
    assert "'dup'" in errors[0] and "plugin-one" in errors[0] and "plugin-two" in errors[0]
    plugins = by_name(get_plugins())
    owner = sources["dup"]._tokenmeter_plugin
    other = ({"plugin-one", "plugin-two"} - {owner}).pop()
    assert plugins[owner]["sources"] == ["dup"] and plugins[other]["sources"] == []
    assert "already registered by " + owner in plugins[other]["errors"][0]


def test_duplicate_source_id_fatal_with_raise_errors(monkeypatch):
    monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", "")
    register(make_source("dup"), name="plugin-one")
    register(make_source("dup"), name="plugin-two")
    monkeypatch.setenv("TOKENMETER_RAISE_ERRORS", "1")
    with pytest.raises(PluginError, match="plugin-one|plugin-two"):
        get_sources()


def test_invalid_registrations_are_reported(monkeypatch):
    monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", "")

    class NotASource:
        id = "x"

    good = make_source("good")
    bad_kind = make_source("bad-kind", kind="api")
    pm.register(FakePlugin([NotASource, bad_kind, good]), name="messy")
    assert list(get_sources()) == ["good"]
    errors = by_name(get_plugins())["messy"]["errors"]
    assert any("not a tokenmeter.Source subclass" in e for e in errors)
    assert any("kind 'api'" in e for e in errors)


def test_register_sources_raising_is_isolated(monkeypatch):
    monkeypatch.setenv("TOKENMETER_LOAD_PLUGINS", "")

    class Exploding:
        @hookimpl
        def register_sources(self, register):
            raise ValueError("oops")

    pm.register(Exploding(), name="exploding")
    register(make_source("fine"), name="fine-plugin")
    assert list(get_sources()) == ["fine"]
    assert by_name(get_plugins())["exploding"]["errors"] == ["register_sources failed: ValueError: oops"]


# -- register_commands -----------------------------------------------------------------------------


class HelloCommands:
    @hookimpl
    def register_commands(self, cli):
        import click

        @cli.command(name="hello-fake")
        def hello():
            """Say hello (a test-only plugin command)."""
            click.echo("hello from a plugin")


def test_plugin_command_is_added():
    cli_run(["--help"])  # the root group has already listed its commands once in this process
    pm.register(HelloCommands(), name="hello-plugin")
    result = cli_run(["hello-fake"])
    assert result.exit_code == 0 and result.stdout == "hello from a plugin\n"
    assert "hello-fake" in cli_run(["--help"]).stdout


def test_register_commands_failure_is_isolated():
    class Exploding:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError("no commands today")

    pm.register(Exploding(), name="exploding-commands")
    result = cli_run(["--help"])
    assert result.exit_code == 0 and "Usage:" in result.stdout
    plugins = by_name(json.loads(cli_run(["plugins"]).stdout))
    assert plugins["exploding-commands"]["errors"] == [
        "register_commands failed: RuntimeError: no commands today"]
