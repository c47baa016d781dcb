"""Sample logs for ``tokenmeter demo`` (synthetic, in the real formats), shipped in ``demo_data/``.

``expected.json`` holds the totals the sample reads to (tests/test_qwen_code.py checks them);
``benchmarks/gen_logs.py demo`` regenerates the folder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["copy_demo_data"]


def copy_demo_data(name: str, workdir: Path) -> Path:
    """Copy ``demo_data/<name>`` (a file or a folder) to ``workdir/<name>`` and return that path."""
    import shutil  # here: every run imports this plugin, only the demo copies files
    from importlib import resources

    target = Path(workdir) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    # as_file: the package may be installed zipped; resources gives a real path either way
    with resources.as_file(resources.files(__package__) / "demo_data" / name) as src:
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, target)
    return target
