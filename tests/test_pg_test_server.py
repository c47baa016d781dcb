"""The PostgreSQL test infrastructure: the pg_support fixtures, tools/pg_test_server.sh, examples/hub."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pg_support import with_database, with_search_path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "pg_test_server.sh"
COMPOSE = ROOT / "examples" / "hub" / "compose.yaml"


def _connect(url: str) -> Any:
    psycopg = pytest.importorskip("psycopg")
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _one(url: str, query: str, params: tuple = ()) -> Any:
    with _connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


# -- the fixtures -----------------------------------------------------------------------------

def test_pg_url_is_a_fresh_schema_on_the_search_path(pg_url: str):
    schema = re.search(r"options=-csearch_path%3D(tm_[0-9a-f]{12})$", pg_url).group(1)
    with _connect(pg_url) as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == schema
        assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = %s", (schema,)).fetchone()[0] == 0
        conn.execute("CREATE TABLE x (id integer PRIMARY KEY)")
    tables = "SELECT array_agg(table_schema::text) FROM information_schema.tables WHERE table_name = 'x'"
    assert _one(pg_url, tables) == [schema]


def test_two_schemas_do_not_see_each_other(pg_url: str, pg_url_factory: Callable[[], str]):
    import psycopg

    other = pg_url_factory()
    assert other != pg_url
    with _connect(pg_url) as conn:
        conn.execute("CREATE TABLE mine (v text)")
        conn.execute("CREATE TABLE same (v text)")
        conn.execute("INSERT INTO same VALUES ('mine')")
    with _connect(other) as conn:
        conn.execute("CREATE TABLE same (v text)")  # the same name in another schema: no clash
        assert conn.execute("SELECT count(*) FROM same").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM mine")


def test_pg_database_url_is_a_fresh_database(pg_database_url: str, pg_server: str):
    name = _one(pg_database_url, "SELECT current_database()")
    assert re.fullmatch(r"tm_[0-9a-f]{12}", name) and name != _one(pg_server, "SELECT current_database()")
    assert _one(pg_database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


LEAKY_TEST = """
import json, os
import psycopg

leaked = []  # module-level: these connections outlive the test, as forgotten ones would


def test_leaks(pg_url, pg_database_url):
    for url in (pg_url, pg_database_url):
        conn = psycopg.connect(url)  # not autocommit: the SELECT leaves a transaction holding its lock
        conn.execute("CREATE TABLE t (id integer)")
        conn.commit()
        conn.execute("SELECT * FROM t")
        leaked.append(conn)
    with open(os.environ["REPORT"], "w") as f:
        json.dump({"schema": pg_url.rsplit("%3D", 1)[1], "database": pg_database_url.rsplit("/", 1)[1]}, f)
"""


def test_teardown_drops_schema_and_database_despite_leaked_connections(pg_server: str, tmp_path: Path):
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "REPORT": str(report), "TOKENMETER_TEST_PG": pg_server}
    # its own pytest run, to watch the teardown from outside
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "pg_support", "-p", "no:cacheprovider",
                          "test_leaky.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    made = json.loads(report.read_text())
    assert _one(pg_server, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (made["schema"],)) == 0
    assert _one(pg_server, "SELECT count(*) FROM pg_database WHERE datname = %s", (made["database"],)) == 0


def test_urls_keep_their_query_and_encode_options():
    base = "postgresql://u:p%40ss@db.example:5433/test?sslmode=require&application_name=a+b"
    assert with_search_path(base, "tm_ab") == base + "&options=-csearch_path%3Dtm_ab"
    timeout = base + "&options=-cstatement_timeout%3D5s"
    assert with_search_path(timeout, "tm_cd") == base + "&options=-cstatement_timeout%3D5s%20-csearch_path%3Dtm_cd"
    assert with_database(base, "tm_ef") == base.replace("/test?", "/tm_ef?")
    assert with_database("postgresql://u@h/test?dbname=x&sslmode=disable", "tm_ef") == (
        "postgresql://u@h/tm_ef?sslmode=disable")


def test_urls_from_key_value_conninfo():
    conninfo = pytest.importorskip("psycopg.conninfo")
    params = conninfo.conninfo_to_dict(with_search_path("host=h dbname=test options='-cwork_mem=1MB'", "tm_ab"))
    assert params == {"host": "h", "dbname": "test", "options": "-cwork_mem=1MB -csearch_path=tm_ab"}
    assert conninfo.conninfo_to_dict(with_database("host=h dbname=test", "tm_ef"))["dbname"] == "tm_ef"


# -- tools/pg_test_server.sh ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # apt-get may run first on a machine without PostgreSQL: allow it the time
    return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600, check=False)


def test_script_starts_a_throwaway_server_and_stops_it(tmp_path: Path):
    nothing_there = f"postgresql://postgres@127.0.0.1:{_free_port()}/test"
    assert not _answers(nothing_there)
    dir_file = tmp_path / "pg-dir"
    # --stop-with: a pytest killed before the finally below still takes the server down
    started = _script("--dir-file", str(dir_file), "--stop-with", str(os.getpid()),
                      env={"TOKENMETER_TEST_PG": nothing_there})
    assert started.returncode == 0, started.stderr
    data = dir_file.read_text().strip()
    url = started.stdout.strip()
    try:
        assert started.stdout == url + "\n", "stdout is the URL alone, for $(...)"
        assert re.fullmatch(r"postgresql://postgres@127\.0\.0\.1:\d+/test", url)
        assert data and f"--stop {data}" in started.stderr
        assert _one(url, "SELECT 1") == 1
        assert _one(url, "SELECT current_database() || ' ' || current_user") == "test postgres"
    finally:
        stopped = _script("--stop", data)
    assert stopped.returncode == 0, stopped.stderr
    assert not _answers(url)
    assert not Path(data).exists()


def test_script_uses_a_server_that_answers(pg_server: str, tmp_path: Path):
    dir_file = tmp_path / "pg-dir"
    run = _script("--dir-file", str(dir_file), env={"TOKENMETER_TEST_PG": pg_server})
    assert run.returncode == 0, run.stderr
    assert run.stdout == pg_server + "\n"
    assert dir_file.read_text() == "", "nothing started, nothing to stop"


def test_script_stop_leaves_other_folders_alone(tmp_path: Path):
    (tmp_path / "keep").write_text("x")
    run = _script("--stop", str(tmp_path))
    assert run.returncode != 0
    assert "not a folder made by this script" in run.stderr
    assert (tmp_path / "keep").exists()


# -- examples/hub -----------------------------------------------------------------------------

def _compose_facts(text: str, parse: bool) -> tuple[dict, dict, list[str], str]:
    """(service, environment, ports, healthcheck) of its one service, parsed or read as plain text."""
    if parse:
        yaml = pytest.importorskip("yaml")
        doc = yaml.safe_load(text)
        (service,) = doc["services"].values()
        assert set(doc["volumes"]) == {v.split(":")[0] for v in service["volumes"]}, "a named volume"
        return service, service["environment"], service["ports"], " ".join(service["healthcheck"]["test"])
    # without PyYAML: the same facts from the lines that carry them
    service = {"image": re.search(r"^\s*image:\s*(\S+)", text, re.MULTILINE).group(1)}
    env = dict(re.findall(r"^\s*(\w*PASSWORD\w*)\s*[:=]\s*(.*?)\s*$", text, re.MULTILINE))
    ports = re.findall(r'^\s*-\s*"([^"]*:5432)"', text, re.MULTILINE)
    assert re.search(r"^volumes:\s*\n\s+hub-data:", text, re.MULTILINE), "a named volume"
    return service, env, ports, text


@pytest.mark.parametrize("parse", [True, False], ids=["yaml", "text"])
def test_hub_compose_has_no_password(parse: bool):
    service, env, ports, healthcheck = _compose_facts(COMPOSE.read_text(), parse)
    assert service["image"] == "postgres:16"
    passwords = {k: str(v) for k, v in env.items() if "PASSWORD" in k}
    assert "POSTGRES_PASSWORD" in passwords
    for key, value in passwords.items():
        # from the environment or .env, with no default to fall back on
        assert re.fullmatch(r"\$\{[A-Z_]+(:?\?[^}]*)?\}", value), f"{key} is not ${{VARIABLE}}: {value}"
    assert ports and all(p.startswith("${TOKENMETER_HUB_BIND:-127.0.0.1}:") for p in ports)
    assert "pg_isready" in healthcheck
