"""The host package names no provider: provider knowledge lives in plugins (DESIGN §1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

HOST = Path(__file__).resolve().parent.parent / "tokenmeter"

# Providers, their products and the model families they serve. Matched case-insensitively anywhere
# in a file's path or contents, so `QwenCode`, `qwen3-coder-plus` and `DASHSCOPE_` all count.
PROVIDER_WORDS = (
    "qwen", "dashscope", "alibaba", "aliyun", "bailian", "modelstudio", "model studio",
    "huawei", "modelarts", "openrouter", "deepseek", "openai", "anthropic", "claude", "gemini",
    "mistral", "moonshot", "kimi", "zhipu", "volcengine", "doubao",
)
PATTERN = re.compile("|".join(re.escape(w) for w in PROVIDER_WORDS), re.IGNORECASE)


def host_files() -> list[Path]:
    return sorted(p for p in HOST.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def provider_mentions(root: Path, files: list[Path]) -> list[str]:
    """Every mention as ``path:line: word`` (path mentions as ``path: word``)."""
    found = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        found += [f"{rel}: {m.group(0)}" for m in PATTERN.finditer(rel)]
        text = path.read_bytes().decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), start=1):
            found += [f"{rel}:{lineno}: {m.group(0)}" for m in PATTERN.finditer(line)]
    return found


def test_no_file_under_tokenmeter_names_a_provider():
    files = host_files()
    assert len(files) > 20 and any(p.suffix == ".py" for p in files)  # the walk found the package
    mentions = provider_mentions(HOST, files)
    assert mentions == [], "provider names belong in plugins/, not in tokenmeter/:\n" + "\n".join(mentions)


@pytest.mark.parametrize(("name", "text"), [
    ("ok.py", "x = 1\n"),
    ("help.py", 'HELP = "e.g. `QwenCloud auth status`"\n'),
    ("data/prices.json", '{"model": "DeepSeek-V3.1"}'),
    ("demo/qwen/chat.jsonl", "{}\n"),
])
def test_the_scan_catches_mentions_in_text_data_and_paths(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert bool(provider_mentions(tmp_path, [path])) == (name != "ok.py")
