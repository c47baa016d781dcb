"""Config: unknown keys and bad values name the key, source settings, secrets warning, paths, durations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers_host import cli_run

from tokenmeter import ConfigError
from tokenmeter.config import (
    build_settings,
    config_path,
    data_dir,
    db_path,
    load_config,
    machine_id,
    parse_config,
    settings_help,
)


def err(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_unknown_section_and_keys_are_named():
    assert "unknown config section 'sourcse'" in err({"sourcse": {}})
    assert err({"tokenmeter": {"databse": "x"}}).startswith("tokenmeter.databse: unknown key")
    assert "sources.fake: expected a table" in err({"sources": {"fake": 3}})
    assert "sources.fake.enabled: expected true or false" in err({"sources": {"fake": {"enabled": "yes"}}})
    assert "tokenmeter.timezone" in err({"tokenmeter": {"timezone": "Europe/Atlantis"}})
    assert "tokenmeter.database: expected a non-empty string" in err({"tokenmeter": {"database": 5}})
    assert "alerts: expected [[alerts]] tables" in err({"alerts": {"x": 1}})


@pytest.mark.parametrize(
    "value,seconds",
    [(3600, 3600), ("45s", 45), ("30m", 1800), ("6h", 21600), ("1d", 86400), (" 90 ", 90), (0, 0)],
)
def test_refresh_after_durations(value, seconds):
    assert parse_config({"tokenmeter": {"refresh_after": value}}).refresh_after == seconds


@pytest.mark.parametrize("value", ["soon", "1w", -5, True, 1.5, "6 hours"])
def test_bad_refresh_after(value):
    assert err({"tokenmeter": {"refresh_after": value}}).startswith("tokenmeter.refresh_after: expected a duration")


def test_timezone_and_database():
    cfg = parse_config({"tokenmeter": {"timezone": "Asia/Kathmandu", "database": "~/tm.db"}})
    assert cfg.timezone.key == "Asia/Kathmandu"
    assert cfg.database == "~/tm.db"


@dataclass
class Settings:
    paths: list[str] = field(default_factory=lambda: ["/default.tsv"], metadata={"help": "Log files."})
    timeout: float = 30.0
    retries: int = 3
    verbose: bool = False
    region: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def test_build_settings_fills_and_checks():
    s = build_settings(Settings, {"paths": ["/a", "/b"], "timeout": 5, "region": "cn-north-4",
                                  "enabled": True}, "sources.x")
    assert (s.paths, s.timeout, s.retries, s.region) == (["/a", "/b"], 5.0, 3, "cn-north-4")
    assert isinstance(s.timeout, float)
    assert build_settings(Settings, {}, "sources.x") == Settings()
    assert build_settings(Settings, {"paths": "/one.tsv"}, "sources.x").paths == ["/one.tsv"]


@pytest.mark.parametrize(
    "table,message",
    [
        ({"paths": ["/a", 3]}, "sources.x.paths[1]: expected a string, got 3"),
        ({"paths": [7]}, "sources.x.paths[0]: expected a string"),
        ({"paths": 7}, "sources.x.paths: expected a list"),
        ({"timeout": "fast"}, "sources.x.timeout: expected a number"),
        ({"retries": 2.5}, "sources.x.retries: expected an integer"),
        ({"retries": True}, "sources.x.retries: expected an integer"),
        ({"verbose": 1}, "sources.x.verbose: expected true or false"),
        ({"region": 4}, "sources.x.region: expected a string"),
        ({"headers": "x"}, "sources.x.headers: expected a table"),
        ({"pahts": ["/a"]}, "sources.x.pahts: unknown key; known keys: enabled, headers, paths, region"),
    ],
)
def test_build_settings_errors_name_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        build_settings(Settings, table, "sources.x")
    assert str(info.value).startswith(message)


def test_settings_help():
    rows = {r["name"]: r for r in settings_help(Settings)}
    assert rows["paths"]["default"] == ["/default.tsv"] and rows["paths"]["help"] == "Log files."
    assert rows["timeout"]["default"] == 30.0


def test_literal_secret_warning():
    cfg = parse_config({"sources": {"openrouter": {"api_key": "sk-or-fake", "api_key_env": "OPENROUTER_API_KEY"},
                                    "huawei": {"sk": "fake-sk", "credentials_file": "~/.hw"}}})
    assert cfg.warnings == [
        "sources.openrouter.api_key holds a literal secret; prefer an environment variable",
        "sources.huawei.sk holds a literal secret; prefer an environment variable",
    ]
    assert "sk-or-fake" not in " ".join(cfg.warnings)
    assert cfg.source_table("openrouter")["api_key_env"] == "OPENROUTER_API_KEY"


def test_literal_secret_warning_on_cli(tokenmeter_env):
    (tokenmeter_env / "config.toml").write_text('[sources.fake]\ntoken = "fake-token-123"\n')
    result = cli_run(["report", "--json"])
    assert result.exit_code == 0
    assert "sources.fake.token holds a literal secret" in result.stderr
    assert "fake-token-123" not in result.output


def test_load_config_files(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[tokenmeter]\nrefresh_after = "2h"\n[sources.fake]\nenabled = false\n')
    cfg = load_config(str(path))
    assert cfg.path == path and cfg.refresh_after == 7200 and not cfg.source_enabled("fake")
    assert cfg.source_enabled("other")
    path.write_text("[tokenmeter\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.toml"))
    # the default file missing is just an empty config
    assert load_config().sources == {}


def test_tokenmeter_home_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENMETER_DB", raising=False)
    monkeypatch.delenv("TOKENMETER_CONFIG", raising=False)
    home = tmp_path / "tmhome"
    monkeypatch.setenv("TOKENMETER_HOME", str(home))
    assert config_path() == home / "config.toml"
    assert data_dir() == home
    assert db_path() == home / "tokenmeter.db"
    assert config_path("/etc/x.toml") == Path("/etc/x.toml")
    monkeypatch.setenv("TOKENMETER_DB", str(tmp_path / "env.db"))
    assert db_path() == tmp_path / "env.db"
    assert db_path(str(tmp_path / "flag.db")) == tmp_path / "flag.db"
    monkeypatch.delenv("TOKENMETER_DB")
    assert db_path(config=parse_config({"tokenmeter": {"database": str(tmp_path / "cfg.db")}})) == tmp_path / "cfg.db"


def test_platformdirs_defaults(tmp_path, monkeypatch):
    for var in ("TOKENMETER_HOME", "TOKENMETER_DB", "TOKENMETER_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path() == tmp_path / ".config" / "tokenmeter" / "config.toml"
    assert db_path() == tmp_path / ".local" / "share" / "tokenmeter" / "tokenmeter.db"


def test_machine_id_is_stable(tokenmeter_env):
    first = machine_id()
    assert first == machine_id() and len(first) == 12
    assert (tokenmeter_env / "machine-id").read_text().strip() == first


def test_cli_config_option(tmp_path):
    cfg = tmp_path / "alt.toml"
    cfg.write_text('[tokenmeter]\ntimezone = "Asia/Tokyo"\n')
    result = cli_run(["report", "--json", "--config", str(cfg), "--offline"])
    assert result.exit_code == 0
    import json

    assert json.loads(result.stdout)["period"]["tz"] == "Asia/Tokyo"
    missing = cli_run(["report", "--json", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 4 and "does not exist" in missing.stderr


def test_literal_webhook_url_is_accepted_with_a_warning():
    from tokenmeter.config import parse_config

    cfg = parse_config({"alerts": [{"type": "webhook", "url": "https://hooks.example.test/services/T0/B0/FAKE"}]})
    assert cfg.warnings == ["alerts[0].url holds a webhook URL, which is a secret; prefer url_env"]
    assert "FAKE" not in cfg.warnings[0]
