"""Issue 13 items 7, 8 and 10: one line instead of a traceback, private files, full disks,
read-only databases, usage errors and a busy database met by a report."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers_host import cli_run, make_source, rec, register

from tokenmeter import Cursor, ProviderAuthError
from tokenmeter.store import Store, WriteSession

NOW = {"TOKENMETER_NOW": "2026-03-15T12:00:00Z"}
DAY = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)


def one_line_error(result) -> str:
    """The error's one line: "Error: ..." or, with --json, the one-line JSON error document."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    if lines[0].startswith("{"):
        error = json.loads(lines[0])["error"]
        assert error["exit_code"] == result.exit_code
        return f"Error: {error['message']}"
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- item 7 and 10: usage errors are one line and exit 64 ---------------------------------------------


@pytest.mark.parametrize("args", [
    ["--from", "9999-12-31", "--to", "9999-12-31"],
    ["--days", "100000000"],
    ["--days", "0"],
    ["--days", "-3"],
    ["--from", "2026-03-05", "--to", "2026-03-01"],
    ["report", "--from", "9999-12-31", "--tz", "Pacific/Kiritimati"],
    ["fetch", "--from", "9999-12-31"],
    ["--days", "1000000000000"],
])
def test_impossible_periods_are_usage_errors(args):
    result = cli_run([*args, "--json"], NOW)
    assert result.exit_code == 64, result.output
    one_line_error(result)


def test_the_python_api_still_raises_config_errors():
    from tokenmeter import ConfigError
    from tokenmeter.periods import resolve_period

    with pytest.raises(ConfigError, match="--days must be at least 1"):
        resolve_period(datetime(2026, 3, 15, tzinfo=UTC), UTC, days=0)


# -- item 8: private files ------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_new_database_folder_and_files_are_private(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / "fresh" / "data" / "tokenmeter.db"
        with Store.open(path) as store:
            session = store.session("s", "log")
            session.add(rec("a"))
            session.finish({"n": 1})
            # the WAL files exist while the connection is open
            wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
            assert wal.exists() and shm.exists()
            assert mode(wal) == 0o600 and mode(shm) == 0o600
        assert mode(path.parent) == 0o700
        assert mode(path) == 0o600
    finally:
        os.umask(old)


def test_existing_files_and_folders_are_left_alone(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    path = folder / "team.db"
    Store.open(path).close()
    os.chmod(path, 0o640)
    Store.open(path).close()
    assert mode(folder) == 0o755 and mode(path) == 0o640


def test_default_data_folder_is_private(tmp_path, monkeypatch):
    home = tmp_path / "new-home"
    monkeypatch.setenv("TOKENMETER_HOME", str(home))
    monkeypatch.delenv("TOKENMETER_DB")
    register(make_source("local", [rec("a"), Cursor({"n": 1})]))
    assert cli_run(["fetch", "local"], NOW).exit_code == 0
    assert mode(home) == 0o700 and mode(home / "tokenmeter.db") == 0o600


# -- item 7: a full disk ------------------------------------------------------------------------


def many(n: int, tag: str):
    for i in range(n):
        yield rec(f"{tag}{i}", start=DAY - timedelta(minutes=i), details={"pad": "x" * 400})
        if i % 500 == 499:
            yield Cursor({"at": i})
    yield Cursor({"at": n})


def test_full_disk_during_fetch_is_one_line_and_keeps_earlier_data(tokenmeter_env, monkeypatch):
    register(make_source("first", list(many(50, "f")), kind="ledger"),
             make_source("big", lambda *a: many(20_000, "b"), kind="ledger"), name="fake")
    assert cli_run(["fetch", "first"], NOW).exit_code == 0

    real_open = Store.open.__func__

    def tiny_disk(cls, path, **kw):
        store = real_open(cls, path, **kw)
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 400}")  # room for a few thousand rows
        return store

    monkeypatch.setattr(Store, "open", classmethod(tiny_disk))
    result = cli_run(["fetch", "big"], NOW)
    assert result.exit_code == 4, result.output
    line = one_line_error(result)
    assert "the disk is full" in line and "intact" in line
    assert "records read from big in this run were not stored" in line
    lost = int(line.split("full: ")[1].split(" records")[0])
    assert 0 < lost <= 500  # what was read since the last checkpoint (the source checkpoints every 500)

    # reports keep working on the full disk, and show the earlier data plus what was committed
    report = cli_run(["--all", "--by", "source", "--json"], NOW)
    assert report.exit_code == 0, report.output
    rows = {r["source"]: r["requests"] for r in json.loads(report.stdout)["rows"]}
    assert rows["first"] == 50
    assert rows["big"] % 500 == 0 and 0 < rows["big"] < 20_000  # checkpoints before the disk filled are kept
    monkeypatch.setattr(Store, "open", classmethod(real_open))
    with Store.open(tokenmeter_env / "tokenmeter.db") as store:
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- item 7: a read-only database ---------------------------------------------------------------


def _pretend_read_only(monkeypatch, db: Path) -> None:
    """Root writes anything: deny write access to the database the way os.access reports it."""
    real = os.access

    def access(path, how, *a, **kw):
        if how & os.W_OK and Path(path).resolve() in (db.resolve(), db.resolve().parent):
            return False
        return real(path, how, *a, **kw)

    monkeypatch.setattr(os, "access", access)


def _stored(tokenmeter_env):
    register(make_source("local", [rec("a", start=DAY), rec("b", start=DAY), Cursor({"n": 2})], kind="ledger"))
    assert cli_run(["fetch", "local"], NOW).exit_code == 0  # leaves rollup buckets to refresh
    return tokenmeter_env / "tokenmeter.db"


def _check_read_only_behaviour():
    report = cli_run(["--today", "--json"], NOW)
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["total"]["requests"] == 2
    export = cli_run(["db", "export", "--csv"], NOW)
    assert export.exit_code == 0 and len(export.stdout.strip().splitlines()) == 3
    fetch = cli_run(["fetch", "local", "--json"], NOW)
    assert fetch.exit_code == 4
    assert "read-only" in one_line_error(fetch)
    rebuild = cli_run(["db", "migrate", "--rebuild"], NOW)
    assert rebuild.exit_code == 4 and "read-only" in one_line_error(rebuild)


def test_read_only_database_reports_and_refuses_writes(tokenmeter_env, monkeypatch):
    db = _stored(tokenmeter_env)
    before = db.read_bytes()
    _pretend_read_only(monkeypatch, db)
    _check_read_only_behaviour()
    assert db.read_bytes() == before


def _unprivileged_cli() -> list[str] | None:
    """A command prefix that runs tokenmeter without root's right to write read-only files: nothing
    for an ordinary user, ``unshare -U`` (a user namespace) for root, None when that is unavailable."""
    if os.geteuid() != 0:
        return []
    try:
        ok = subprocess.run(["unshare", "-U", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return ["unshare", "-U"] if ok else None


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_file_or_folder_for_real(tokenmeter_env, what):
    prefix = _unprivileged_cli()
    if prefix is None:
        pytest.skip("root, and no user namespace to drop the right to write read-only files")
    db = _stored(tokenmeter_env)
    target = db if what == "file" else db.parent
    os.chmod(target, 0o400 if what == "file" else 0o500)
    try:
        if not prefix:
            _check_read_only_behaviour()
            return
        env = {**os.environ, **NOW, "TOKENMETER_LOAD_PLUGINS": ""}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*prefix, sys.executable, "-m", "tokenmeter", *args], env=env,
                                  capture_output=True, text=True, timeout=60)

        report = run("--today", "--json")
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["total"]["requests"] == 2
        export = run("db", "export", "--csv")
        assert export.returncode == 0 and len(export.stdout.strip().splitlines()) == 3
        for args in (["fetch", "--json"], ["db", "migrate", "--rebuild"]):
            done = run(*args)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 4 and len(lines) == 1 and "read-only" in lines[0], done.stderr
    finally:
        os.chmod(target, 0o600 if what == "file" else 0o700)


# -- item 10: a report meets a busy database ----------------------------------------------------


def test_report_retries_a_locked_database(monkeypatch):
    register(make_source("log", [rec("a", start=DAY), Cursor({"n": 1})], kind="log"))
    real_begin = WriteSession._begin
    calls = {"n": 0}

    def flaky_begin(self):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sqlite3.OperationalError("database is locked")
        real_begin(self)

    monkeypatch.setattr(WriteSession, "_begin", flaky_begin)
    result = cli_run(["--today", "--json"], NOW)
    assert result.exit_code == 0, result.output
    assert "OperationalError" not in result.stderr and "warning" not in result.stderr
    assert json.loads(result.stdout)["total"]["requests"] == 1  # refreshed on the third try
    assert calls["n"] >= 3


def test_report_gives_up_on_a_lock_that_stays_and_shows_stored_data(tokenmeter_env, monkeypatch):
    import tokenmeter.service as refresh

    register(make_source("log", [rec("a", start=DAY), Cursor({"n": 1})], kind="log"))
    monkeypatch.setattr(refresh, "BUSY_WAIT", 0.1)
    monkeypatch.setattr(refresh, "BUSY_BACKOFF", (0.05, 0.05))
    Store.open(tokenmeter_env / "tokenmeter.db").close()
    holder = sqlite3.connect(tokenmeter_env / "tokenmeter.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another run's long write transaction
    try:
        began = time.monotonic()
        result = cli_run(["--today", "--json"], NOW)
        assert time.monotonic() - began < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 0, result.output
    assert "OperationalError" not in result.stderr
    assert result.stderr.strip() == ("tokenmeter: note: log not refreshed: another tokenmeter run is writing "
                                     "to the database; showing the data stored so far")
    assert json.loads(result.stdout)["rows"] == []


def test_report_waits_for_a_short_lock(tokenmeter_env):
    register(make_source("log", [rec("a", start=DAY), Cursor({"n": 1})], kind="log"))
    Store.open(tokenmeter_env / "tokenmeter.db").close()
    holder = sqlite3.connect(tokenmeter_env / "tokenmeter.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        result = cli_run(["--today", "--json"], NOW)
    finally:
        release.join()
        holder.close()
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["total"]["requests"] == 1


# -- item 10: a failing source says why on stderr, whatever stdout is -------------------------------


@pytest.mark.parametrize("fmt", ["--json", "--csv", "table"])
def test_failed_source_reason_goes_to_stderr(fmt):
    def revoked(self, window, cursor):
        raise ProviderAuthError("revoked: key rejected by the provider (HTTP 401): check REVOKED_KEY",
                                source="revoked")
        yield  # pragma: no cover

    register(make_source("revoked", revoked, kind="ledger"))
    args = ["fetch", "revoked", *(["-f", "table"] if fmt == "table" else [fmt])]
    result = cli_run(args, NOW)
    assert result.exit_code == 5
    lines = result.stderr.strip().splitlines()
    assert lines == ["revoked: FAILED: key rejected by the provider (HTTP 401): check REVOKED_KEY"]
