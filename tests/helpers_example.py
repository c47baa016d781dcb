"""Installing a plugin project without the network, and running the real `tokenmeter` in a subprocess.

Entry points are found through ``*.dist-info`` folders on ``sys.path``, so a project installed with
``pip install --target DIR`` and ``DIR`` on ``PYTHONPATH`` is seen exactly as an installed plugin.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tokenmeter-csv-spend"


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 builds wheels by itself; older ones need the ``wheel`` package."""
    try:  # not `import setuptools`: its distutils hack misbehaves once other tests imported distutils
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(x) for x in version.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def install_project(project: Path, target: Path, *, editable: bool = False) -> str:
    """Install ``project`` into ``target`` with no network; returns how ("pip" or "manual").

    With a wheel-capable setuptools this is ``pip install --no-deps --no-build-isolation --no-index
    --target``. Otherwise (a venv with an old setuptools and no ``wheel``) the dist-info is written
    the way pip would write it, from the ``[project]`` table: name, version, entry points, modules.
    ``editable=True`` writes only the dist-info, like ``pip install -e``: put ``project`` itself on
    the path too, and edits to its code take effect without reinstalling.
    """
    target.mkdir(parents=True, exist_ok=True)
    if _setuptools_builds_wheels() and not editable:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--no-index", "--target", str(target), str(project)],
            check=True, capture_output=True,
        )
        return "pip"
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    proj = meta["project"]
    name, version = proj["name"], proj["version"]
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in proj.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("tokenmeter-tests\n")
    if editable:
        return "manual"
    setup = meta.get("tool", {}).get("setuptools", {})
    for module in setup.get("py-modules", []):
        shutil.copy(project / f"{module}.py", target / f"{module}.py")
    for package in setup.get("packages", []):
        src = project / package.replace(".", "/")
        shutil.copytree(src, target / package.replace(".", "/"), dirs_exist_ok=True)
    return "manual"


def copy_project(project: Path, dest: Path) -> Path:
    """Copy a project (so building it never leaves build/ or egg-info in the repository)."""
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*_cache"))
    return dest


def subprocess_env(pythonpath: list[Path], extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """os.environ (already isolated by conftest) with PYTHONPATH and the venv's bin first on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("TOKENMETER_LOAD_PLUGINS", None)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_tokenmeter(
    args: list[str], pythonpath: list[Path], extra: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m tokenmeter ARGS`` in a fresh interpreter that sees the plugins under ``pythonpath``."""
    return subprocess.run(
        [sys.executable, "-m", "tokenmeter", *args],
        env=subprocess_env(pythonpath, extra), capture_output=True, text=True, timeout=60,
    )
