"""`tokenmeter watch`: a report redrawn on an interval from the appended log bytes; Ctrl-C ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from tokenmeter.cli import cli

HEADER = "timestamp\tmodel\tprovider\tinput_tokens\toutput_tokens\tcost_usd\n"
NOW = "2026-03-10T12:00:00Z"


def _config(home: Path) -> Path:
    log = home / "qwen-usage.tsv"
    log.write_text(HEADER + "2026-03-10T09:00:00Z\tqwen-flash\tqwen\t1000\t100\t0.5\n")
    (home / "config.toml").write_text(
        f'[tokenmeter]\ntimezone = "UTC"\n[sources.dashscope-log]\npaths = ["{log}"]\n'
        '[sources.qwen-code]\nenabled = false\n')
    return log


def test_bounded_run_prints_successive_tables_when_piped(tokenmeter_env):
    _config(tokenmeter_env)
    env = {"TOKENMETER_NOW": NOW, "TOKENMETER_LOAD_PLUGINS": "dashscope-log,alibaba-prices", "COLUMNS": "80"}
    result = CliRunner().invoke(cli, ["watch", "--count", "2", "--interval", "0.5"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0
    frames = result.stdout.split("\n\n")
    assert len(frames) == 2 and frames[0] + "\n" == frames[1]
    assert frames[0].startswith("Usage 2026-03-10 to 2026-03-10 (UTC)\nModel")  # a table, not JSON
    assert "qwen-flash" in frames[0] and all(len(line) <= 80 for line in result.stdout.splitlines())
    json_run = CliRunner().invoke(cli, ["watch", "--count", "1", "--json"], env=env)
    assert json_run.stdout.startswith("{")  # a format asked for is kept


def test_appended_lines_show_and_ctrl_c_ends_cleanly(tokenmeter_env):
    log = _config(tokenmeter_env)
    env = {**os.environ, "TOKENMETER_NOW": NOW, "TOKENMETER_LOAD_PLUGINS": "dashscope-log,alibaba-prices",
           "COLUMNS": "80", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tokenmeter", "watch", "--interval", "0.5", "--by", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + 30
        while "1,100" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline().decode()
        assert "1,100" in seen  # 1,000 in + 100 out
        with log.open("a") as f:  # the next refresh reads only this line
            f.write("2026-03-10T10:00:00Z\tqwen-flash\tqwen\t2000\t200\t0.25\n")
        while "3,300" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline().decode()
        assert "3,300" in seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err == b""  # no traceback, no "Interrupted."
