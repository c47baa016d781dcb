"""docs/plugins/tutorial.md, followed word for word: its files written, its commands run, outputs compared.

Conventions of the page: a fenced block with ``title="PATH"`` is a file to create (relative to the
current folder; a later block with the same path replaces it); a ``console`` block holds commands
(``$ ...``) each followed by its expected output, where ``...`` matches anything within a line.
Other blocks are illustrations and are not run.

Offline substitutions (the test environment already has tokenmeter, pytest and vcrpy):
- the venv creation and ``pip install tokenmeter pytest vcrpy`` are skipped;
- ``tokenmeter plugins install -e .`` (pip, which needs the network for build dependencies) is
  replaced by its offline equivalent: the project's dist-info is written to a folder on
  PYTHONPATH next to the project folder itself, which is what an editable install amounts to.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from helpers_example import EXAMPLE, install_project, subprocess_env

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "plugins" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)(?: title=\"([^\"]+)\")?\n(.*?)^```$", re.M | re.S)
SKIPPED = {"python3 -m venv venv", "source venv/bin/activate", "pip install tokenmeter pytest vcrpy"}
EDITABLE_INSTALL = "tokenmeter plugins install -e ."


@dataclass
class Step:
    kind: str  # "file" or "command"
    text: str  # path or command
    body: str = ""  # file content or expected output


@dataclass
class Shell:
    """Runs each command in a fresh bash that first replays the earlier `cd` and `export` lines."""

    base: Path
    pythonpath: list[Path] = field(default_factory=list)
    state: list[str] = field(default_factory=list)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        script = " && ".join([f"cd {self.base}", *self.state]) + f" && {{ {command}\n}}"
        env = subprocess_env(self.pythonpath)
        for var in ("TOKENMETER_HOME", "TOKENMETER_DB", "TOKENMETER_CONFIG", "TOKENMETER_NOW"):
            env.pop(var, None)  # the tutorial sets up its own TOKENMETER_HOME
        # one stream, in the order written, as on a terminal
        return subprocess.run(["bash", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)

    def cwd(self) -> Path:
        return Path(self.run("pwd").stdout.strip())


def steps(text: str) -> list[Step]:
    out = []
    for lang, title, body in FENCE.findall(text):
        if title:
            out.append(Step("file", title, body))
        elif lang == "console":
            for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
                command, _, expected = chunk.partition("\n")
                out.append(Step("command", command, expected))
    return out


def matches(expected: str, actual: str) -> bool:
    expected, actual = expected.rstrip("\n"), actual.rstrip("\n")
    try:
        return json.loads(actual) == json.loads(expected)
    except ValueError:
        pass
    exp_lines, act_lines = expected.splitlines(), actual.splitlines()
    if len(exp_lines) != len(act_lines):
        return False
    for exp, act in zip(exp_lines, act_lines, strict=True):
        pattern = re.escape(exp.rstrip()).replace(r"\.\.\.", ".*")
        if not re.fullmatch(pattern, act.rstrip()):
            return False
    return True


def test_the_tutorial_works_word_for_word(tmp_path):
    shell = Shell(tmp_path)
    written: dict[str, str] = {}
    ran = []
    for step in steps(TUTORIAL.read_text()):
        if step.kind == "file":
            path = shell.cwd() / step.text
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step.body)
            written[step.text] = step.body
            continue
        if step.text in SKIPPED:
            continue
        if step.text == EDITABLE_INSTALL:
            project = shell.cwd()
            install_project(project, tmp_path / "site", editable=True)
            shell.pythonpath = [tmp_path / "site", project]
            ran.append(step.text)
            continue
        result = shell.run(step.text)
        output = result.stdout
        assert result.returncode == 0, f"$ {step.text}\n{output}"
        if step.text.startswith(("cd ", "export ")):
            shell.state.append(step.text)
        if step.body:
            assert matches(step.body, output), f"$ {step.text}\nexpected:\n{step.body}\ngot:\n{output}"
        ran.append(step.text)
    # the commands that matter were all run (a renamed step must not silently drop out)
    assert EDITABLE_INSTALL in ran and "pytest -q" in ran
    assert any(c.startswith("tokenmeter report --all") for c in ran)
    # the finished tutorial plugin is the example plugin in the repository
    for rel, body in written.items():
        if (EXAMPLE / rel).exists():
            assert body == (EXAMPLE / rel).read_text(), f"{rel} differs from examples/tokenmeter-csv-spend/{rel}"
    example_files = {str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part in ("__pycache__", "build") or part.endswith(".egg-info")
        for part in p.relative_to(EXAMPLE).parts)}
    assert example_files <= set(written), f"not in the tutorial: {sorted(example_files - set(written))}"


def test_the_matcher():
    assert matches("a ...s\n", "a 0.01s\n")
    assert not matches("a ...s\nb", "a 0.01s\n")
    assert matches('[\n  {"a": 1}\n]', '[{"a": 1}]\n')
    assert not matches("3 new", "4 new")
