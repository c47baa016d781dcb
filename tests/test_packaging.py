"""Packaging: every package folder is in pyproject.toml, entry points resolve, `python -m tokenmeter` runs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders(base: Path, prefix: str) -> set[str]:
    found = set()
    for init in base.rglob("__init__.py"):
        rel = init.parent.relative_to(base)
        if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
            continue
        found.add(".".join([prefix, *rel.parts]))
    return found


def test_every_package_folder_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    expected = _package_folders(ROOT / "tokenmeter", "tokenmeter") | _package_folders(
        ROOT / "plugins", "tokenmeter_plugins")
    missing = sorted(expected - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]

    def folder(pkg: str) -> Path:
        top, _, rest = pkg.partition(".")
        return ROOT / dirs.get(top, top) / rest.replace(".", "/")

    stale = sorted(p for p in listed if not folder(p).is_dir())
    assert not stale, f"listed in pyproject.toml but no such folder: {stale}"
    assert "plugins" not in listed  # never a top-level package named plain `plugins`
    assert PYPROJECT["tool"]["setuptools"]["package-dir"]["tokenmeter_plugins"] == "plugins"


def test_entry_points_point_at_plugin_packages():
    eps = PYPROJECT["project"]["entry-points"]["tokenmeter"]
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    for name, target in eps.items():
        module = target.split(":")[0]
        assert module in listed, f"entry point {name} -> {module} is not a listed package"
    installed = {ep.name: ep.value for ep in metadata.entry_points(group="tokenmeter")}
    assert installed == eps, "reinstall (pip install -e '.[test]') after changing entry points"
    assert PYPROJECT["project"]["scripts"]["tokenmeter"] == "tokenmeter.cli:cli"


def test_python_m_tokenmeter_help():
    out = subprocess.run([sys.executable, "-m", "tokenmeter", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: tokenmeter")
    assert "report" in out.stdout and "fetch" in out.stdout


def test_console_exit_codes_in_a_real_process(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TOKENMETER_HOME": str(tmp_path),
           "TOKENMETER_LOAD_PLUGINS": ""}
    bad = subprocess.run([sys.executable, "-m", "tokenmeter", "--no-such-option"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 64 and "No such option" in bad.stderr
    empty = subprocess.run([sys.executable, "-m", "tokenmeter", "report", "--all", "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert empty.returncode == 0 and '"rows": []' in empty.stdout


def test_plugin_data_files_are_package_data():
    """Price tables and demo data ship in the wheel: each file matches a package-data glob."""
    from fnmatch import fnmatch

    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    files = [*(ROOT / "plugins").rglob("prices.json"), *(ROOT / "plugins" / "dashscope_log" / "demo_data").rglob("*")]
    files = [f for f in files if f.is_file()]
    assert len(files) >= 12
    for f in files:
        package = f.parent
        while not (package / "__init__.py").exists():
            package = package.parent
        name = ".".join(["tokenmeter_plugins", *package.relative_to(ROOT / "plugins").parts])
        rel = f.relative_to(package).as_posix()
        globs = [*data.get(name, []), *data.get("*", [])]
        # a glob's "*" never crosses a folder in setuptools: compare folder depth too
        assert any(fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), f"{rel} of {name}"


def test_the_version_is_written_once():
    """pyproject.toml reads the version from tokenmeter/_version.py, the module everything imports it from."""
    import tokenmeter
    from tokenmeter._version import __version__

    assert "version" in PYPROJECT["project"]["dynamic"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tokenmeter._version.__version__"}
    assert tokenmeter.__version__ == __version__ == metadata.version("tokenmeter")


def test_loading_every_plugin_leaves_the_http_layer_unloaded() -> None:
    """Reports and warm runs load every installed source but make no request: httpx (~50 ms of
    imports) loads only when a fetch needs it."""
    code = ("import sys\nfrom tokenmeter.plugin_manager import get_sources\nfrom tokenmeter.fetch import make_pricer\n"
            "import tokenmeter.cli\nassert len(get_sources()) >= 5\nmake_pricer(None)\n"
            "print(sorted(m for m in ('httpx', 'httpcore', 'tokenmeter.http') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
