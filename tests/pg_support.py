"""PostgreSQL fixtures: the server at TOKENMETER_TEST_PG, and a fresh schema or database per test."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOW_TO_START = "start one with `bash tools/pg_test_server.sh` or set TOKENMETER_TEST_PG"


def base_url() -> str:
    """The server the tests use: TOKENMETER_TEST_PG, else the local default."""
    return os.environ.get("TOKENMETER_TEST_PG") or DEFAULT_URL


def _is_uri(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _shown(url: str) -> str:
    # skip and fail messages end up in CI logs
    if not _is_uri(url):
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _unavailable(message: str) -> None:
    # CI promises a server (tools/test.sh starts one), so a missing one is a failure there
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _with_param(url: str, name: str, value: str) -> str:
    """URL with query parameter ``name`` set to ``value`` (others kept byte for byte)."""
    parts = urlsplit(url)
    # libpq decodes only %XX in a URI (a `+` is a plus), so untouched parameters are left as written
    params = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] != name]
    params.append(f"{name}={quote(value, safe='')}")
    return urlunsplit(parts._replace(query="&".join(params)))


def _param(url: str, name: str) -> str | None:
    for p in urlsplit(url).query.split("&"):
        key, _, value = p.partition("=")
        if key == name:
            return unquote(value)
    return None


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections start with ``search_path`` = ``schema`` (libpq ``options``)."""
    option = f"-csearch_path={schema}"
    if not _is_uri(url):
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        existing = conninfo_to_dict(url).get("options")
        return make_conninfo(url, options=f"{existing} {option}" if existing else option)
    existing = _param(url, "options")
    # a later -c wins, so options the URL already had (statement_timeout, say) still apply
    return _with_param(url, "options", f"{existing} {option}" if existing else option)


def with_database(url: str, dbname: str) -> str:
    """``url`` naming database ``dbname`` instead."""
    if not _is_uri(url):
        from psycopg.conninfo import make_conninfo

        return make_conninfo(url, dbname=dbname)
    parts = urlsplit(url)
    # a dbname parameter would override the path
    query = "&".join(p for p in parts.query.split("&") if p and p.split("=", 1)[0] != "dbname")
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe=""), query=query))


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The URL of a PostgreSQL that answers (skips, or fails under CI=true, when none does)."""
    url = base_url()
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[test,postgres]'")
    reason = None
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if reason is not None:
        # outside the except: a chained traceback would print the conninfo, password and all
        _unavailable(f"no PostgreSQL at {_shown(url)}: {HOW_TO_START} ({reason})")
    return url


def _drop_schema(url: str, schema: str) -> None:
    from psycopg import sql

    with _connect(url) as conn:
        # a connection the test left open may hold a lock in the schema, and DROP would wait for it forever
        conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND l.pid <> pg_backend_pid()",
            (schema,),
        )
        conn.execute("SET lock_timeout = '10s'")  # a lock taken since then fails the teardown, not hangs it
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_url_factory(pg_server: str) -> Iterator[Callable[[], str]]:
    """Call it for the URL of another fresh, empty schema; every one is dropped after the test."""
    from psycopg import sql

    made: list[str] = []

    def make() -> str:
        schema = f"tm_{secrets.token_hex(6)}"
        with _connect(pg_server) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        made.append(schema)
        return with_search_path(pg_server, schema)

    yield make
    for schema in made:
        _drop_schema(pg_server, schema)


@pytest.fixture
def pg_url(pg_url_factory: Callable[[], str]) -> str:
    """A URL into a fresh, empty schema of the test database (its search_path), dropped after the test."""
    return pg_url_factory()


@pytest.fixture
def pg_database_url(pg_server: str) -> Iterator[str]:
    """A URL to a fresh, empty database, dropped after the test (for what a schema cannot hold)."""
    import psycopg
    from psycopg import sql

    name = f"tm_{secrets.token_hex(6)}"
    ident = sql.Identifier(name)
    with _connect(pg_server) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
            refused = None
        except psycopg.Error as exc:  # a shared server may not grant CREATEDB
            refused = str(exc)
    if refused is not None:
        _unavailable(f"cannot create a database at {_shown(pg_server)}: {refused}")
    yield with_database(pg_server, name)
    with _connect(pg_server) as conn:
        if conn.info.server_version >= 130000:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        else:
            # before 13 there is no FORCE: end the connections the test left open first
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
