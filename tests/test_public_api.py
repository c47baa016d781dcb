"""`tokenmeter.__all__` is the public API, and plugins (built-in and example) use nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tokenmeter

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILES = sorted((ROOT / "plugins").rglob("*.py"))
EXAMPLE_FILES = sorted((ROOT / "examples").rglob("*.py"))


def exported_names() -> set[str]:
    """Names tokenmeter/__init__.py defines, imports from its own modules or serves lazily (typing aside)."""
    tree = ast.parse(Path(tokenmeter.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:  # top level only: `if TYPE_CHECKING:` imports are not exports
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    names.update(getattr(tokenmeter, "_LAZY", ()))  # names served lazily by the module's __getattr__
    return {n for n in names if not n.startswith("_") or n == "__version__"} - {"__all__"}


def test_all_is_sorted_and_matches_the_exports():
    assert tokenmeter.__all__ == sorted(tokenmeter.__all__)
    assert tokenmeter.__all__ == sorted(exported_names())


def test_every_public_name_resolves_to_tokenmeter_code():
    for name in tokenmeter.__all__:
        value = getattr(tokenmeter, name)
        module = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        assert name == "__version__" or module.startswith(("tokenmeter", "pluggy")), (name, module)


def private_imports(path: Path, also: frozenset[str] = frozenset()) -> list[str]:
    """Imports of tokenmeter names outside ``tokenmeter.__all__`` (and ``also``) in one file, as 'line: text'."""
    public = set(tokenmeter.__all__) | also
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tokenmeter" and len(parts) > 1 and parts[1] not in public:
                    bad.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "tokenmeter":
                continue
            if len(parts) > 1 and parts[1] not in public:
                bad.append(f"{node.lineno}: from {node.module} import ...")
            elif len(parts) == 1:
                bad += [f"{node.lineno}: from tokenmeter import {a.name}" for a in node.names if a.name not in public]
    return bad


@pytest.mark.parametrize("path", PLUGIN_FILES + EXAMPLE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path):
    # a plugin's tests may also use the test kit (opted in with `pytest_plugins` in conftest.py)
    also = frozenset({"testing"}) if "tests" in path.relative_to(ROOT).parts else frozenset()
    assert private_imports(path, also) == []


def test_the_import_check_catches_private_imports(tmp_path):
    sample = tmp_path / "plugin.py"
    sample.write_text(
        "import tokenmeter\n"
        "import tokenmeter.store\n"
        "from tokenmeter import Source, hookimpl\n"
        "from tokenmeter import plugin_manager\n"
        "from tokenmeter.config import build_settings\n"
        "from tokenmeter.errors import NeedsCredentials\n"
        "def f():\n"
        "    from tokenmeter.http import make_client\n"
    )
    assert private_imports(sample) == [
        "2: import tokenmeter.store",
        "4: from tokenmeter import plugin_manager",
        "5: from tokenmeter.config import ...",
        "8: from tokenmeter.http import ...",
    ]
    # in a plugin's tests the test kit is allowed too, and nothing else
    assert private_imports(sample, frozenset({"testing"})) == private_imports(sample)
    sample.write_text("from tokenmeter.testing import collect\nimport tokenmeter.testing\n"
                      "from tokenmeter import testing\n")
    assert private_imports(sample, frozenset({"testing"})) == []
    assert len(private_imports(sample)) == 3
