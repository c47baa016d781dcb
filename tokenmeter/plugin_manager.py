"""Loading plugins from the ``tokenmeter`` entry-point group, one at a time, failures isolated.

Environment:

- ``TOKENMETER_LOAD_PLUGINS=a,b`` loads only these (distribution or entry-point names);
  set but empty loads none.
- ``TOKENMETER_DISABLE_PLUGINS=a,b`` skips these.
- ``TOKENMETER_RAISE_ERRORS=1`` makes any load failure fatal (for plugin developers).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .output import safe_text

__all__ = ["get_plugins", "get_prices", "get_sources", "load_commands", "load_plugins", "pm"]

GROUP = "tokenmeter"


@dataclass
class LoadError:
    plugin: str
    error: str
    version: str | None = None


@dataclass
class _State:
    loaded: bool = False
    errors: list[LoadError] = field(default_factory=list)
    dist_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # entry point -> (label, version)
    distribution: dict[str, str] = field(default_factory=dict)  # entry point -> distribution
    commands_from: set[str] = field(default_factory=set)  # plugins whose register_commands ran


pm = pluggy.PluginManager(GROUP)
pm.add_hookspecs(hookspecs)
_state = _State()


def raise_errors() -> bool:
    return os.environ.get("TOKENMETER_RAISE_ERRORS", "") not in ("", "0", "false", "no")


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip().lower() for n in value.split(",") if n.strip()}


def _record_error(plugin: str, message: str, version: str | None = None) -> None:
    if raise_errors():
        raise PluginError(f"plugin {plugin}: {message}")
    _state.errors.append(LoadError(plugin, message, version))
    print(safe_text(f"tokenmeter: warning: plugin {plugin} skipped: {message}"), file=sys.stderr)


def load_plugins() -> None:
    """Load every allowed entry point once. Safe to call many times."""
    if _state.loaded:
        return
    _state.loaded = True
    allow = _names("TOKENMETER_LOAD_PLUGINS")
    deny = _names("TOKENMETER_DISABLE_PLUGINS") or set()
    seen: dict[str, str] = {}
    eps = list(importlib.metadata.entry_points(group=GROUP))
    # each .name / .version parses the distribution's METADATA again: read it once per distribution
    about: dict[int, tuple[str, str]] = {}
    for ep in eps:
        if ep.dist is not None and id(ep.dist) not in about:
            meta = ep.dist.metadata
            about[id(ep.dist)] = (meta["Name"], meta["Version"])
    per_dist: dict[str, int] = {}
    for ep in eps:
        d = about[id(ep.dist)][0] if ep.dist else ep.name
        per_dist[d] = per_dist.get(d, 0) + 1
    for ep in eps:
        dist_name, version = about[id(ep.dist)] if ep.dist else (ep.name, "?")
        names = {dist_name.lower(), ep.name.lower()}
        # a distribution with one entry point is known by its name; one shipping several
        # (tokenmeter's own built-ins) by entry-point name
        dist = dist_name if per_dist[dist_name] == 1 else ep.name
        if allow is not None and not names & allow:
            continue
        if names & deny:
            continue
        if ep.name in seen:
            _record_error(dist, f"entry point name {ep.name!r} is also used by {seen[ep.name]}", version)
            continue
        seen[ep.name] = dist
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not break the CLI
            if isinstance(exc, PluginError):
                raise
            _record_error(dist, f"{type(exc).__name__}: {exc}", version)
            continue
        _state.dist_of[ep.name] = (dist, version)
        _state.distribution[ep.name] = dist_name
    check_hooks()


def check_hooks() -> None:
    """Unregister plugins implementing hooks that do not exist (a misspelt hook name)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        plugin = exc.plugin
        name = pm.get_name(plugin) or repr(plugin)
        dist, version = _state.dist_of.get(name, (name, None))
        pm.unregister(plugin)
        _state.dist_of.pop(name, None)
        _record_error(dist, f"unknown hook: {exc}", version)
        check_hooks()


def reset() -> None:
    """Forget loaded plugins (for tests)."""
    for plugin in list(pm.get_plugins()):
        pm.unregister(plugin)
    _state.loaded = False
    _state.errors.clear()
    _state.dist_of.clear()
    _state.distribution.clear()
    _state.commands_from.clear()


def load_commands(cli: Any) -> None:
    """Call each plugin's ``register_commands`` once; a plugin that raises is reported, not fatal."""
    load_plugins()
    for impl in reversed(pm.hook.register_commands.get_hookimpls()):
        if impl.plugin_name in _state.commands_from:
            continue
        _state.commands_from.add(impl.plugin_name)
        try:
            impl.function(cli=cli)
        except Exception as exc:
            _record_once(_plugin_label(impl.plugin_name)[0],
                         f"register_commands failed: {type(exc).__name__}: {exc}")


def _plugin_label(name: str) -> tuple[str, str | None]:
    if name in _state.dist_of:
        return _state.dist_of[name]
    return name, None


def get_sources() -> dict[str, Any]:
    """Registered source classes by id. Duplicate ids are rejected naming both plugins."""
    from .sources import SOURCE_KINDS, Source

    load_plugins()
    found: dict[str, Any] = {}
    owner: dict[str, str] = {}
    # pluggy calls last-registered first; walk implementations so we know who registered what
    for impl in reversed(pm.hook.register_sources.get_hookimpls()):
        plugin_name, _ = _plugin_label(impl.plugin_name)
        registered: list[Any] = []
        try:
            impl.function(register=registered.append)
        except Exception as exc:
            _record_once(plugin_name, f"register_sources failed: {type(exc).__name__}: {exc}")
            continue
        for cls in registered:
            problem = _check_source_class(cls, Source, SOURCE_KINDS)
            if problem:
                _record_once(plugin_name, problem)
                continue
            if cls.id in found:
                _record_once(
                    plugin_name,
                    f"source id {cls.id!r} is already registered by {owner[cls.id]}; "
                    f"{plugin_name} cannot register it too",
                )
                continue
            found[cls.id] = cls
            owner[cls.id] = plugin_name
            cls._tokenmeter_plugin = plugin_name
    return dict(sorted(found.items()))


def get_prices() -> tuple[list[Any], list[Any]]:
    """Registered ``(PriceEntry list, PriceRegion list)``, each stamped with its plugin's name.

    A plugin that registers something that is not a price, a label another plugin's region already
    claims, a price in another currency than its region, or a price another plugin already registered
    (same model, label and date) has that item rejected, naming both plugins.
    """
    from dataclasses import replace

    from .pricing.entries import PriceEntry, PriceRegion

    load_plugins()
    entries: list[Any] = []
    regions: list[Any] = []
    label_owner: dict[str, Any] = {}  # lower-case label -> its PriceRegion
    for impl in reversed(pm.hook.register_prices.get_hookimpls()):
        plugin_name, _ = _plugin_label(impl.plugin_name)
        registered: list[Any] = []
        try:
            impl.function(register=registered.append)
        except Exception as exc:
            _record_once(plugin_name, f"register_prices failed: {type(exc).__name__}: {exc}")
            continue
        for item in registered:
            if isinstance(item, PriceRegion):
                clash = next((label_owner[p.lower()] for p in item.providers if p.lower() in label_owner), None)
                clash = clash or next((r for r in regions if r.id == item.id), None)
                if clash is not None:
                    _record_once(plugin_name, f"price region {item.id!r} overlaps region {clash.id!r} of "
                                              f"{clash.plugin}; {plugin_name} cannot register it too")
                    continue
                region = replace(item, plugin=plugin_name)
                regions.append(region)
                label_owner.update({p.lower(): region for p in item.providers})
            elif isinstance(item, PriceEntry):
                entries.append(replace(item, plugin=plugin_name, origin="plugin", region=None))
            else:
                _record_once(plugin_name, f"register() was given {item!r}, not a tokenmeter.PriceEntry "
                                          "or tokenmeter.PriceRegion")
    kept: list[Any] = []
    seen: dict[tuple[str | None, str, Any], Any] = {}
    for e in entries:
        label = e.provider.lower() if e.provider else None
        region = label_owner.get(label) if label else None
        if label and region is None:  # a label no region lists is a region of its own: its first price's currency
            region = label_owner[label] = PriceRegion(id=e.provider, currency=e.currency, providers=(e.provider,),
                                                      plugin=e.plugin)
        if region is not None and e.currency != region.currency:
            _record_once(e.plugin, f"price of {e.model} for {e.provider} is in {e.currency}, but region "
                                   f"{region.id} ({region.plugin}) is priced in {region.currency}")
            continue
        key = (region.id if region is not None else label, e.model.lower(), e.effective)
        if key in seen:
            _record_once(e.plugin, f"price of {e.model} for {e.provider or 'any provider'} from "
                                   f"{e.effective or 'always'} is already registered by {seen[key].plugin}")
            continue
        seen[key] = e
        kept.append(e)
    return kept, regions


def _record_once(plugin: str, message: str) -> None:
    if any(e.plugin == plugin and e.error == message for e in _state.errors):
        return
    _record_error(plugin, message)


def _check_source_class(cls: Any, base: type, kinds: tuple[str, ...]) -> str | None:
    if not isinstance(cls, type) or not issubclass(cls, base):
        return f"register() was given {cls!r}, not a tokenmeter.Source subclass"
    for attr in ("id", "provider", "kind"):
        if not isinstance(getattr(cls, attr, None), str):
            return f"source {cls.__name__} has no {attr!r} string"
    if cls.kind not in kinds:
        return f"source {cls.id!r} has kind {cls.kind!r}; use 'ledger' or 'log'"
    return None


def get_plugins() -> list[dict[str, Any]]:
    """What ``tokenmeter plugins`` prints: name, version, hooks, sources, prices, load errors."""
    sources = get_sources()
    by_plugin: dict[str, list[str]] = {}
    for sid, cls in sources.items():
        by_plugin.setdefault(cls._tokenmeter_plugin, []).append(sid)
    entries, regions = get_prices()  # also reports rejected price registrations
    prices_of: dict[str, dict[str, Any]] = {}
    for e in entries:
        prices_of.setdefault(e.plugin, {"entries": 0, "regions": []})["entries"] += 1
    for r in regions:
        prices_of.setdefault(r.plugin, {"entries": 0, "regions": []})["regions"].append(r.id)
    out: list[dict[str, Any]] = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        dist, version = _plugin_label(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        entry: dict[str, Any] = {"name": dist, "version": version, "hooks": hooks}
        if name in _state.distribution:
            entry["distribution"] = _state.distribution[name]
            entry["entry_point"] = name
        entry["sources"] = sorted(by_plugin.get(dist, []))
        if "register_prices" in hooks:  # how many dated prices it registered, and its price regions
            entry["prices"] = prices_of.get(dist, {"entries": 0, "regions": []})
        errors = [e.error for e in _state.errors if e.plugin == dist]
        if errors:
            entry["errors"] = errors
        out.append(entry)
    listed = {e["name"] for e in out}
    for err in _state.errors:
        if err.plugin not in listed:
            out.append({"name": err.plugin, "version": err.version, "hooks": [], "sources": [],
                        "errors": [e.error for e in _state.errors if e.plugin == err.plugin]})
            listed.add(err.plugin)
    return sorted(out, key=lambda e: e["name"])

