"""Every Python module under tokenmeter/ and plugins/ stays under LIMIT lines.

A module that grows past it holds more than one noun: split it by noun and re-export the public
names from where they were (see issue 14, part 5). There is no per-file allow-list; data files
(prices.json, demo logs) are not .py and are not counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 500
# Folders left out for now, each with its reason; remove the entry once the folder passes.
NOT_YET: dict[str, str] = {}
MODULES = sorted(
    path for folder in ("tokenmeter", "plugins") for path in (ROOT / folder).rglob("*.py")
    if not any(path.relative_to(ROOT).as_posix().startswith(f"{prefix}/") for prefix in NOT_YET)
)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_is_small(path):
    assert line_count(path) <= LIMIT, f"{path.relative_to(ROOT)} has {line_count(path)} lines (limit {LIMIT})"


def test_every_package_is_measured():
    measured = {p.relative_to(ROOT).parts[:2] for p in MODULES}
    assert ("tokenmeter", "store") in measured and ("plugins", "huawei_maas") in measured
    assert ROOT / "tokenmeter" / "__init__.py" in MODULES
