"""The JSON Schema of the config file (``schemas/config.schema.json``), built from the code that
parses it: the ``[tokenmeter]`` keys, every built-in source's ``Settings`` dataclass, and the keys
the budget, alert and price parsers accept. ``tools/gen_schemas.py`` writes it and
``tests/test_schemas.py`` fails when the file is not what the code would write.

Editors validate TOML against it (taplo / Even Better TOML read a ``#:schema`` comment); the parsers
stay the authority: they also check what a schema cannot (a budget's window, ``warn < critical``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

__all__ = ["SCHEMA_ID", "config_schema"]

SCHEMA_ID = "urn:tokenmeter:schema:config"  # a name, not a download address

_NUMBER = {"type": ["number", "string"], "description": "a number (a decimal string keeps every digit)"}
_DATE = {"type": "string", "format": "date", "description": "a TOML date (2026-02-01) or YYYY-MM-DD"}
_STRINGS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

# [tokenmeter]: config.TOKENMETER_KEYS, each described here (a new key without an entry fails)
_TOKENMETER = {
    "database": {"type": "string",
                 "description": "database file or PostgreSQL URL (a team hub); --db / TOKENMETER_DB win"},
    "machine_name": {"type": "string", "description": "this machine's name on a team hub (default: the host name)"},
    "timezone": {"type": "string", "description": "IANA zone for report days; default: the system's"},
    "refresh_after": {"type": ["integer", "string"], "pattern": r"^\s*\d+\s*[smhd]?\s*$",
                      "description": "re-fetch ledger sources older than this before a report (3600, '6h')"},
    "request_deadline": {"type": ["number", "string"],
                         "description": "seconds one HTTP request, CLI call or alert attempt may take (120)"},
}

# [budgets.<name>]: budgets._KEYS
_BUDGET = {
    "limit": {**_NUMBER, "description": "the budget's size, in currency or unit"},
    "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "a money budget: ISO 4217 code"},
    "unit": {"enum": ["tokens", "requests"], "description": "a usage budget"},
    "period": {"enum": ["day", "week", "month", "quarter", "year"], "description": "a recurring window"},
    "from": {**_DATE, "description": "a one-time window's first day"},
    "to": {**_DATE, "description": "a one-time window's last day"},
    "provider": {"type": "string", "description": "only providers containing this"},
    "source": {"type": "string", "description": "only sources containing this"},
    "model": {"type": "string", "description": "only models containing this"},
    "warn": {**_NUMBER, "description": "fraction used for level warning (0.5)"},
    "critical": {**_NUMBER, "description": "fraction used for level critical (0.8)"},
}

# [[alerts]]: alert_channels._WEBHOOK_KEYS and _COMMAND_KEYS
_ALERT = {
    "type": {"enum": ["webhook", "command"]},
    "timeout": {"type": "number", "description": "seconds per attempt (10)"},
    "levels": {**_STRINGS, "description": "warning and/or critical (default both)"},
    "budgets": {**_STRINGS, "description": "only these budgets (default all)"},
    "url": {"type": "string", "description": "webhook URL (a secret: prefer url_env)"},
    "url_env": {"type": "string", "description": "environment variable holding the webhook URL"},
    "format": {"enum": ["json", "slack", "discord"]},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "headers_env": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "header name -> environment variable holding its value"},
    "command": {**_STRINGS, "description": "gets the alert as JSON on stdin"},
}

# [prices."<model>"]: pricing.overrides.ENTRY_KEYS and TIER_KEYS (prices per 1M tokens)
_PRICE = {
    "input": _NUMBER, "output": _NUMBER, "cache_read": _NUMBER, "cache_write": _NUMBER,
    "thinking_output": _NUMBER,
    "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
    "provider": {"type": "string", "description": "only records with this provider label"},
    "region": {"type": "string", "description": "a price region plugins register (intl, cn, ...)"},
    "from": {**_DATE, "description": "in force from this date"},
    "tiers": {"type": "array"},  # items filled in below
    "source": {"type": "string", "description": "label shown by `tokenmeter prices`"},
    "above": {"type": "integer", "minimum": 0, "description": "prompt tokens per request above which a tier applies"},
}


def _keys(names: typing.Iterable[str], table: dict[str, Any]) -> dict[str, Any]:
    return {name: table[name] for name in names}


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False, **extra}


def _json_type(hint: Any) -> dict[str, Any]:
    """The schema of a Settings field's type, as ``config.build_settings`` coerces it."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_json_type(a) for a in typing.get_args(hint) if a is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = _json_type(item)
        if items == {"type": "string"}:  # one path where a list is expected is a list of one
            return {"anyOf": [{"type": "array", "items": items}, items]}
        return {"type": "array", "items": items} if items else {"type": "array"}
    if origin is dict or hint is dict:
        return {"type": "object"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return {"type": simple[hint]} if hint in simple else {}


def _source_schema(settings_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(settings_cls)
    props: dict[str, Any] = {"enabled": {"type": "boolean", "default": True, "description": "run this source"}}
    for f in dataclasses.fields(settings_cls):
        prop = _json_type(hints.get(f.name, Any))
        if f.metadata.get("help"):
            prop["description"] = f.metadata["help"]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if default is not None:
            prop["default"] = list(default) if isinstance(default, tuple) else default
        props[f.name] = prop
    return _closed(props)


def builtin_sources() -> dict[str, type]:
    """The sources tokenmeter ships (third-party plugins are not in the published schema)."""
    from .plugin_manager import get_sources

    return {sid: cls for sid, cls in sorted(get_sources().items())
            if cls.__module__.startswith("tokenmeter_plugins.")}


def config_schema() -> dict[str, Any]:
    """The config file's JSON Schema (draft 2020-12)."""
    from .alert_channels import _COMMAND_KEYS, _WEBHOOK_KEYS
    from .budgets import _KEYS as BUDGET_KEYS
    from .config import TOKENMETER_KEYS, TOP_LEVEL
    from .pricing.overrides import ENTRY_KEYS, TIER_KEYS

    tier = _closed(_keys(TIER_KEYS, _PRICE))
    entry = _closed(_keys(ENTRY_KEYS, _PRICE) | {"tiers": {"type": "array", "items": tier}})
    alert_keys = list(dict.fromkeys([*_WEBHOOK_KEYS, *_COMMAND_KEYS]))
    sections = {
        "tokenmeter": _closed(_keys(sorted(TOKENMETER_KEYS), _TOKENMETER)),
        "sources": {
            "type": "object",
            "description": "one table per source; plugins' own sources take their own keys",
            "properties": {sid: _source_schema(cls.Settings) for sid, cls in builtin_sources().items()},
            "additionalProperties": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
        },
        "budgets": {"type": "object", "additionalProperties": _closed(_keys(BUDGET_KEYS, _BUDGET),
                                                                      required=["limit"])},
        "alerts": {"type": "array", "items": _closed(_keys(alert_keys, _ALERT), required=["type"])},
        "hub": _closed({"url": {"type": "string", "pattern": "^[Pp][Oo][Ss][Tt][Gg][Rr][Ee][Ss]",
                                "description": "PostgreSQL URL `db push` sends rows to (no password: use "
                                               "~/.pgpass or PGPASSWORD)"}}),
        "prices": {"type": "object", "description": "per model: one price, or several ([[prices.\"<model>\"]])",
                   "additionalProperties": {"anyOf": [entry, {"type": "array", "items": entry}]}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "tokenmeter config.toml",
        "description": "Generated by tools/gen_schemas.py from tokenmeter's config parsers; see config.example.toml.",
        **_closed(_keys(sorted(TOP_LEVEL), sections)),
    }
