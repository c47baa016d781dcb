"""Config file, default paths and source settings (DESIGN §7).

Paths: ``TOKENMETER_HOME`` puts config, data and database in one folder (tests, portable
installs); otherwise platformdirs' user config and data dirs. ``--config``/``TOKENMETER_CONFIG``
and ``--db``/``TOKENMETER_DB`` override each.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .dburl import has_password, is_url
from .errors import ConfigError

__all__ = [
    "Config",
    "build_settings",
    "config_path",
    "data_dir",
    "db_path",
    "load_config",
    "host_name",
    "machine_id",
    "request_deadline",
]

APP = "tokenmeter"
TOP_LEVEL = {"tokenmeter", "hub", "sources", "budgets", "alerts", "prices"}
HUB_KEYS = {"url"}
TOKENMETER_KEYS = {"database", "timezone", "refresh_after", "request_deadline", "machine_name"}
DEFAULT_REQUEST_DEADLINE = 120.0  # seconds one HTTP request (or CLI call, or alert attempt) may take in total
REQUEST_DEADLINE_ENV = "TOKENMETER_REQUEST_DEADLINE"
MAX_REQUEST_DEADLINE = 24 * 3600.0
_SECRETISH = re.compile(r"(^|_)(api_?key|key|secret|password|token|access_?key|secret_?key|ak|sk)$", re.I)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _home() -> Path | None:
    home = os.environ.get("TOKENMETER_HOME")
    return Path(home).expanduser() if home else None


def config_dir() -> Path:
    return _home() or Path(_platformdirs().user_config_dir(APP))


def data_dir() -> Path:
    return _home() or Path(_platformdirs().user_data_dir(APP))


def _platformdirs() -> Any:
    # imported when asked: with TOKENMETER_HOME set (tests, containers) no run needs it, and it
    # costs a report's start-up a few milliseconds
    import platformdirs

    return platformdirs


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (and missing parents) if needed; a folder created here is 0700 whatever the
    umask (it holds spend, project paths and sessions). An existing folder is left as it is."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    return folder


def config_path(explicit: str | None = None) -> Path:
    value = explicit or os.environ.get("TOKENMETER_CONFIG")
    return Path(value).expanduser() if value else config_dir() / "config.toml"


def db_path(explicit: str | None = None, config: Config | None = None) -> Path | str:
    """The database: a SQLite file's path, or a PostgreSQL URL (``postgresql://…``) as given."""
    value = explicit or os.environ.get("TOKENMETER_DB") or (config.database if config else None)
    if value and is_url(value):
        return value.strip()
    return Path(value).expanduser() if value else data_dir() / "tokenmeter.db"


def fixed_now() -> Any:
    """``TOKENMETER_NOW`` (ISO-8601) pins "now" for reproducible demos and tests; None otherwise."""
    value = os.environ.get("TOKENMETER_NOW")
    if not value:
        return None
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"TOKENMETER_NOW: expected an ISO-8601 time, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def host_name() -> str:
    """The host name (the default ``machine_name``), short form."""
    import socket

    return socket.gethostname().split(".")[0] or "localhost"


def machine_id() -> str:
    """A stable, non-secret id for this machine, kept in the data dir (log sources' ``account``)."""
    path = data_dir() / "machine-id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except OSError:
        pass
    value = uuid.uuid4().hex[:12]
    private_dir(path.parent)
    path.write_text(value + "\n")
    return value


def system_timezone() -> tzinfo:
    name = os.environ.get("TZ")
    if name:
        try:
            return ZoneInfo(name.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            return ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    from datetime import datetime

    return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


def parse_timezone(name: str, where: str = "--tz") -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'") from None


@dataclass
class Config:
    path: Path | None = None
    database: str | None = None
    timezone_name: str | None = None
    refresh_after: int | None = None  # seconds; ledger data older than this is refreshed before reports
    request_deadline: float | None = None  # seconds; see request_deadline()
    machine_name_value: str | None = None  # [tokenmeter] machine_name
    hub_url: str | None = None  # [hub] url: where `db push` sends rows
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    alerts: list[Any] = field(default_factory=list)
    prices: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def timezone(self) -> tzinfo:
        if self.timezone_name:
            return parse_timezone(self.timezone_name, "tokenmeter.timezone")
        return system_timezone()

    @property
    def machine_name(self) -> str:
        """This machine's readable name on a team hub: ``[tokenmeter] machine_name``, else the host name."""
        return self.machine_name_value or host_name()

    def source_table(self, source_id: str) -> dict[str, Any]:
        return dict(self.sources.get(source_id, {}))

    def source_enabled(self, source_id: str) -> bool:
        return bool(self.sources.get(source_id, {}).get("enabled", True))


def _duration(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
        if m:
            return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    raise ConfigError(f"{where}: expected a duration such as 3600, '30m', '6h' or '1d', got {value!r}")


def parse_deadline(value: Any, where: str) -> float:
    """A deadline in seconds (a number above 0, at most a day); ``ConfigError`` names ``where``."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not 0 < number <= MAX_REQUEST_DEADLINE:
        raise ConfigError(
            f"{where}: expected seconds (a number above 0, at most {MAX_REQUEST_DEADLINE:g}), got {value!r}"
        )
    return number


def request_deadline(config: Config | None = None) -> float:
    """Seconds one request may take in total: ``TOKENMETER_REQUEST_DEADLINE``, else
    ``[tokenmeter] request_deadline``, else 120 (the env var wins, like ``TOKENMETER_DB``)."""
    value = os.environ.get(REQUEST_DEADLINE_ENV, "").strip()
    if value:
        return parse_deadline(value, REQUEST_DEADLINE_ENV)
    if config is not None and config.request_deadline is not None:
        return config.request_deadline
    return DEFAULT_REQUEST_DEADLINE


def load_config(explicit: str | None = None) -> Config:
    """Read the config file (a missing default file is an empty config; a missing explicit one is an error)."""
    path = config_path(explicit)
    if not path.exists():
        if explicit or os.environ.get("TOKENMETER_CONFIG"):
            where = "--config" if explicit else "TOKENMETER_CONFIG"
            raise ConfigError(f"{where}: config file {path} does not exist; create it from config.example.toml")
        return Config(path=None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    cfg = Config(path=path)
    for key in data:
        if key not in TOP_LEVEL:
            raise ConfigError(f"unknown config section {key!r}; known: {', '.join(sorted(TOP_LEVEL))}")
    tm = data.get("tokenmeter", {})
    _table(tm, "tokenmeter")
    for key, value in tm.items():
        if key not in TOKENMETER_KEYS:
            raise ConfigError(f"tokenmeter.{key}: unknown key; known: {', '.join(sorted(TOKENMETER_KEYS))}")
        if key == "database":
            cfg.database = _string(value, "tokenmeter.database")
            if has_password(cfg.database):
                cfg.warnings.append("tokenmeter.database holds a password; prefer ~/.pgpass or PGPASSWORD")
        elif key == "timezone":
            cfg.timezone_name = _string(value, "tokenmeter.timezone")
            parse_timezone(cfg.timezone_name, "tokenmeter.timezone")
        elif key == "refresh_after":
            cfg.refresh_after = _duration(value, "tokenmeter.refresh_after")
        elif key == "request_deadline":
            cfg.request_deadline = parse_deadline(value, "tokenmeter.request_deadline")
        elif key == "machine_name":
            name = cfg.machine_name_value = _string(value, "tokenmeter.machine_name").strip()
            if not name or len(name) > 200 or not name.isprintable():
                raise ConfigError("tokenmeter.machine_name: expected a short printable name, such as 'alice-laptop'")
    hub = data.get("hub", {})
    _table(hub, "hub")
    for key, value in hub.items():
        if key not in HUB_KEYS:
            raise ConfigError(f"hub.{key}: unknown key; known: {', '.join(sorted(HUB_KEYS))}")
        cfg.hub_url = _string(value, "hub.url")
        if not is_url(cfg.hub_url):
            raise ConfigError("hub.url: expected a PostgreSQL URL such as 'postgresql://tokenmeter@hub:5432/tokenmeter'")
        if has_password(cfg.hub_url):
            cfg.warnings.append("hub.url holds a password; prefer ~/.pgpass or PGPASSWORD")
    sources = data.get("sources", {})
    _table(sources, "sources")
    for sid, table in sources.items():
        _table(table, f"sources.{sid}")
        if "enabled" in table and not isinstance(table["enabled"], bool):
            raise ConfigError(f"sources.{sid}.enabled: expected true or false")
        for key, value in table.items():
            if isinstance(value, str) and _SECRETISH.search(key) and not key.endswith(("_env", "_file")):
                cfg.warnings.append(
                    f"sources.{sid}.{key} holds a literal secret; prefer an environment variable"
                )
            elif key.endswith("_env") and not env_var_name(value):  # never echo it: it may be the key
                cfg.warnings.append(
                    f"sources.{sid}.{key} is not an environment variable name (did you paste the secret "
                    "itself?); give the name of the variable that holds it"
                )
        cfg.sources[sid] = dict(table)
    budgets = data.get("budgets", {})
    _table(budgets, "budgets")
    cfg.budgets = dict(budgets)
    alerts = data.get("alerts", [])
    if not isinstance(alerts, list):
        raise ConfigError("alerts: expected [[alerts]] tables")
    cfg.alerts = list(alerts)
    for i, table in enumerate(cfg.alerts):
        if isinstance(table, Mapping) and isinstance(table.get("url"), str):
            # Slack/Discord webhook URLs carry their token in the path
            cfg.warnings.append(f"alerts[{i}].url holds a webhook URL, which is a secret; prefer url_env")
    prices = data.get("prices", {})
    _table(prices, "prices")
    cfg.prices = dict(prices)
    _validate_sections(cfg)
    return cfg


def _validate_sections(cfg: Config) -> None:
    """Validate budgets, alerts and price overrides with their owners' parsers."""
    import importlib

    for section, module, func in (
        ("prices", "pricing", "validate_overrides"),
        ("budgets", "budgets", "parse_budgets"),
        ("alerts", "alerts", "parse_alerts"),
    ):
        value = getattr(cfg, section)
        if value:
            getattr(importlib.import_module(f"tokenmeter.{module}"), func)(value)


def env_var_name(value: Any) -> bool:
    """Whether ``value`` can name an environment variable (a pasted API key cannot)."""
    return isinstance(value, str) and _ENV_NAME.fullmatch(value) is not None


def _table(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string")
    return value


# -- source settings ----------------------------------------------------------------------------


def build_settings(settings_cls: type, table: Mapping[str, Any], where: str) -> Any:
    """Build a source's ``Settings`` dataclass from its config table, checking keys and types."""
    if not dataclasses.is_dataclass(settings_cls):
        raise ConfigError(f"{where}: the source's Settings is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(settings_cls)}
    hints = typing.get_type_hints(settings_cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "enabled":
            continue
        if key not in fields:
            known = ", ".join(sorted([*fields, "enabled"]))
            raise ConfigError(f"{where}.{key}: unknown key; known keys: {known}")
        values[key] = _coerce(value, hints.get(key, Any), f"{where}.{key}")
    try:
        return settings_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        if isinstance(value, str) and origin is not None:
            value = [value]  # a single path where a list is expected is what people mean
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def settings_help(settings_cls: type) -> list[dict[str, Any]]:
    """Describe a Settings dataclass: name, type, default, help (for docs and `sources`)."""
    out = []
    for f in dataclasses.fields(settings_cls):
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out.append({"name": f.name, "type": str(f.type), "default": default, "help": f.metadata.get("help", "")})
    return out
