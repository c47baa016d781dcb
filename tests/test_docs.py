"""The docs cover what exists: every hook, record field, CLI command; every command and option has help."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokenmeter import QuotaSnapshot, UsageRecord
from tokenmeter.plugin_manager import get_sources, pm

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"




def gen_cli_docs(flag: str) -> str:
    """Run tools/gen_cli_docs.py in a fresh interpreter: commands other tests added never leak in."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_cli_docs.py"), flag],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def headings(path: Path) -> set[str]:
    return {line[3:].strip() for line in path.read_text().splitlines() if line.startswith("## ")}


def section(path: Path, title: str) -> str:
    """The text of the `## title` section of a Markdown file."""
    text = path.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else None]


@pytest.fixture(scope="module")
def commands() -> list[dict]:
    """Every command (built-in plugins' included): its full name and the parts without help text."""
    return json.loads(gen_cli_docs("--json"))


def test_every_hook_is_documented():
    """datasette style: a `## name(arg, ...)` heading per hook, with its exact arguments."""
    documented = headings(DOCS / "plugins" / "hooks.md")
    for name, caller in vars(pm.hook).items():
        signature = f"{name}({', '.join(caller.spec.argnames)})"
        assert signature in documented, f"docs/plugins/hooks.md has no '## {signature}' section"


def test_register_prices_example_prices_as_documented():
    """The hooks.md example, registered as a plugin, gives the costs the text after it states."""
    import types
    from datetime import date
    from decimal import Decimal

    from tokenmeter import plugin_manager
    from tokenmeter.pricing import PriceBook

    text = section(DOCS / "plugins" / "hooks.md", "register_prices(register)")
    [code] = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    module = types.ModuleType("docs_register_prices_example")
    exec(compile(code, "docs/plugins/hooks.md", "exec"), module.__dict__)
    plugin_manager.load_plugins()
    pm.register(module, name="docs-example")
    try:
        book = PriceBook.load()
    finally:
        pm.unregister(module)

    def cost(provider: str, day: int) -> tuple[Decimal, str]:
        e = book.estimate(model="acme-large", provider=provider, day=date(2026, 3, day),
                          input_tokens=1_000_000, output_tokens=1_000_000)
        return e.cost, e.currency

    assert cost("acme", 14) == (Decimal("10.00"), "USD")
    assert cost("acme", 15) == (Decimal("7.50"), "USD")
    assert cost("acme-eu", 15) == (Decimal("9.00"), "EUR")
    assert "1M input and 1M output tokens" in text and "10.00 USD on 14 March and 7.50 USD on 15 March" in text
    assert {r["plugin"] for r in book.rows("acme-large", history=True)} == {"docs-example"}


@pytest.mark.parametrize("cls", [UsageRecord, QuotaSnapshot])
def test_every_record_field_is_documented(cls):
    text = section(DOCS / "plugins" / "records.md", cls.__name__)
    for f in dataclasses.fields(cls):
        assert f"| `{f.name}` |" in text, f"docs/plugins/records.md, {cls.__name__}: no table row for {f.name}"


def test_every_command_is_in_the_cli_reference(commands):
    documented = headings(DOCS / "cli.md")
    names = [c["name"] for c in commands]
    assert {"tokenmeter", "tokenmeter report", "tokenmeter plugins install"} <= set(names)
    for name in names:
        assert name in documented, f"docs/cli.md has no '## {name}': run python tools/gen_cli_docs.py"


def test_cli_reference_is_current():
    assert (DOCS / "cli.md").read_text() == gen_cli_docs("--stdout"), (
        "docs/cli.md is out of date: run python tools/gen_cli_docs.py")


def test_every_command_and_option_has_help(commands):
    missing = [f"{c['name']} {part}" for c in commands for part in c["missing_help"]]
    assert missing == [], f"no help text: {missing}"
    assert len(commands) > 10  # the walk found the whole tree


def test_every_source_setting_has_help():
    missing = [f"[sources.{sid}] {f.name}" for sid, cls in get_sources().items()
               for f in dataclasses.fields(cls.Settings) if not f.metadata.get("help")]
    assert missing == []


def test_links_between_docs_resolve():
    broken = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_help_check_catches_gaps():
    import importlib.util

    import click

    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "tools" / "gen_cli_docs.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    @click.command()
    @click.option("--good", help="Documented.")
    @click.option("--bad")
    @click.option("--secret", hidden=True)
    def undocumented(good: str, bad: str, secret: str) -> None:
        pass

    assert tool.missing_help(undocumented) == ["(command)", "--bad"]


def test_checks_catch_gaps(tmp_path):
    """The checks above fail on a missing heading or row (guards against a vacuous regex)."""
    page = tmp_path / "hooks.md"
    page.write_text("# Hooks\n\n## register_sources(register)\n\ntext\n")
    assert "register_commands(cli)" not in headings(page)
    assert "| `key` |" not in section(DOCS / "plugins" / "records.md", "QuotaSnapshot")
