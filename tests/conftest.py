"""Every test gets its own config, data dir and database; plugins load as installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenmeter import plugin_manager

# the kit is opt-in for every project, this one included (tokenmeter_env below comes from it)
# pg_support: the PostgreSQL fixtures (pg_server, pg_url, pg_database_url) for the team hub tests
pytest_plugins = ["tokenmeter.testing", "pg_support"]

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"


@pytest.fixture(autouse=True)
def _isolate(tokenmeter_env: Path, monkeypatch: pytest.MonkeyPatch):
    for var in ("TOKENMETER_LOAD_PLUGINS", "TOKENMETER_DISABLE_PLUGINS", "TOKENMETER_RAISE_ERRORS",
                "QWEN_RUNTIME_DIR", "QWEN_DATA_DIR", "QWEN_HOME", "OPENROUTER_API_KEY", "OPENROUTER_MANAGEMENT_KEY",
                "HW_ACCESS_KEY", "HW_SECRET_KEY", "HW_SECURITY_TOKEN", "HUAWEICLOUD_SDK_AK",
                "HUAWEICLOUD_SDK_SK", "TZ", "TOKENMETER_NOW", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tokenmeter_env / "home"))
    monkeypatch.setenv("COLUMNS", "80")  # tables fit the terminal: never the width of the one running pytest
    (tokenmeter_env / "home").mkdir()
    plugin_manager.reset()
    yield
    plugin_manager.reset()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, migrated store on each backend: the store, report and agent suites run on both."""
    from tokenmeter.store import Store, open_store

    if request.param == "sqlite":
        store = Store.open(tmp_path / "any.db")
    else:
        store = open_store(request.getfixturevalue("pg_url"))
    yield store
    store.close()


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.exists():
        pytest.skip("../shared/samples is not present")
    return SAMPLES
