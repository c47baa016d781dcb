"""Smaller commands: sources, quota, prices, reprice, demo (`plugins` is in plugin_install.py)."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from ..config import Config, settings_help
from ..errors import ConfigError, SourceDataError
from ..fetch import make_pricer, reprice, run_fetch
from ..output import dumps, safe_text
from ..periods import Period, _parse_date
from ..plugin_manager import get_sources
from ..reports import usage_report
from ..store import Store
from .common import common_options, emit, format_options, get_env


@click.command(name="sources")
@click.option("--no-check", is_flag=True, help="Skip sources' health checks (e.g. a provider CLI's login status).")
@format_options
@common_options
def sources_cmd(fmt: str, no_check: bool) -> None:
    """Installed sources: enabled, ready or why not, last fetch, last error."""
    from ..config import build_settings
    from ..fetch import _redact, make_context

    env = get_env()
    config = env.config
    with env.open_store() as store:
        states = store.source_states()
        runs = store.last_runs()
    rows = []
    for sid, cls in get_sources().items():
        state = states.get(sid, {})
        run = runs.get(sid, {})
        row: dict[str, Any] = {
            "source": sid, "kind": cls.kind, "provider": cls.provider,
            "plugin": getattr(cls, "_tokenmeter_plugin", None),
            "enabled": config.source_enabled(sid), "status": "ready",
            "last_success": state.get("last_success"), "last_error": state.get("last_error"),
            "last_run": run.get("started_at"),
            "settings": settings_help(cls.Settings),
        }
        ctx = make_context(config, sid)
        try:
            source = cls(build_settings(cls.Settings, config.source_table(sid), f"sources.{sid}"), ctx)
            reason = source.available()
            if hasattr(source, "info"):
                row["info"] = source.info(_cursor(state))
            if reason:
                row["status"] = f"not ready: {reason}"
            elif not no_check and hasattr(source, "health"):
                ok, message = source.health()
                row["status"] = "ready" if ok else f"not ready: {message}"
        except ConfigError as exc:
            row["status"] = f"config error: {exc}"
        except SourceDataError as exc:  # e.g. a log it cannot read: not ready, and why
            row["status"] = f"not ready: {exc}"
        except Exception as exc:  # a health check must not break the listing
            row["status"] = f"check failed: {type(exc).__name__}: {exc}"
        finally:
            ctx.close()
        row["status"] = _redact(row["status"], ctx.secrets)
        if not row["enabled"]:
            row["status"] = "disabled"
        rows.append(row)
    emit(rows, rows, ["source", "kind", "provider", "status", "last_success", "last_error"], fmt)
    if fmt == "table":
        for row in rows:
            for line in _info_lines(row.get("info") or {}):
                click.echo(safe_text(f"{row['source']}: {line}"))


def _cursor(state: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(state.get("cursor") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _info_lines(info: dict[str, Any]) -> list[str]:
    """A source's ``info()`` as short lines under the table (lists joined, booleans as tested/untested)."""
    lines = []
    for key, value in info.items():
        if key == "client_versions" and isinstance(value, dict):
            value = ", ".join(f"{v} ({'tested' if ok else 'not covered by the conformance tests'})"
                              for v, ok in value.items()) or "none yet"
        elif isinstance(value, list | tuple):
            value = ", ".join(map(str, value)) or "none"
        lines.append(f"{key.replace('_', ' ')}: {value}")
    return lines


@click.command(name="quota")
@format_options
@common_options
def quota_cmd(fmt: str) -> None:
    """Latest quota snapshots: free tiers, coding-plan windows, credits, key limits."""
    env = get_env()
    with env.open_store() as store:
        rows = store.snapshots(latest=True)
    for r in rows:
        if r["total"] and r["used"] is not None and r["total"] > 0:
            r["used_pct"] = float(round(r["used"] / r["total"] * 100, 1))
        elif r["total"] and r["remaining"] is not None and r["total"] > 0:
            r["used_pct"] = float(round((r["total"] - r["remaining"]) / r["total"] * 100, 1))
        else:
            r["used_pct"] = None
    cols = ["provider", "name", "unit", "used", "remaining", "total", "used_pct", "resets_at", "observed_at"]
    data = [{c: r.get(c) for c in ["source", "account", *cols, "details"]} for r in rows]
    if fmt == "table" and not rows:
        click.echo("No quota snapshots yet. Run `tokenmeter fetch` with a provider that reports quotas.")
        return
    emit(data, data, cols, fmt)


@click.command(name="prices")
@click.argument("model", required=False)
@click.option("--on", "on_day", metavar="DATE", help="The price in force on this day (default today).")
@format_options
@common_options
def prices_cmd(model: str | None, on_day: str | None, fmt: str) -> None:
    """The price tokenmeter would use for MODEL (substring), and where it came from.

    Prices come from plugins (the `plugin` column names the one that registered the price) and
    from `[prices."<model>"]` tables in your config (origin `config`), which win.
    """
    from ..pricing import PriceBook

    env = get_env()
    day = _parse_date(on_day, "--on") if on_day else env.now().date()
    book = PriceBook.load(overrides=env.config.prices or None)
    rows = book.rows(model, day=day)
    if not rows and model:
        click.echo(safe_text(f"No price known for {model!r}: its usage is counted as unpriced. "
                             f'Add [prices."{model}"] to your config to price it.'), err=True)
    cols = [c for c in ("model", "region", "currency", "valid_from", "input", "output", "cache_read",
                        "cache_write", "thinking_output", "tiers", "origin", "plugin", "source")
            if not rows or c in rows[0]]
    emit({"basis": book.basis, "day": day, "prices": rows}, rows, cols, fmt)


@click.command(name="reprice")
@common_options
def reprice_cmd() -> None:
    """Recompute estimated costs after the price table or your overrides changed."""
    env = get_env()
    pricer = make_pricer(env.config)
    with env.open_store() as store:
        changed, total = reprice(store, pricer)
    click.echo(f"Repriced {total} records; {changed} estimates changed.")


def demo_sources(installed: dict[str, Any], workdir: Path) -> dict[str, dict[str, Any]]:
    """The settings of every installed source that offers demo data (``Source.demo_settings``)."""
    offered: dict[str, dict[str, Any]] = {}
    for sid, cls in installed.items():
        try:
            settings = cls.demo_settings(workdir / sid)
        except Exception as exc:  # one plugin's broken demo must not stop the others'
            click.echo(safe_text(f"{sid}: no demo: {type(exc).__name__}: {exc}"), err=True)
            continue
        if settings is not None:
            offered[sid] = dict(settings)
    return offered


@click.command(name="demo")
@click.option("--keep", type=click.Path(file_okay=False), help="Build the demo database in this folder.")
@format_options
@common_options
def demo_cmd(keep: str | None, fmt: str) -> None:
    """Build a throwaway database from the installed sources' sample data; print a report.

    Runs every installed source that offers demo data, with the real pricing: no network, no
    config, no credentials needed.
    """
    installed = get_sources()
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tokenmeter-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    offered = demo_sources(installed, folder / "data")
    if not offered:
        raise ConfigError("no installed source offers demo data; check `tokenmeter plugins` for load errors")
    config = Config(sources=offered)
    db = folder / "demo.db"
    with Store.open(db) as store:
        results = run_fetch(store, config, list(offered), installed)
        for r in results:
            line = f"{r.source}: {r.new} new records" + (
                f", {r.skipped_lines} bad lines skipped" if r.skipped_lines else "")
            click.echo(safe_text(line if r.status == "ok" else f"{r.source}: FAILED: {r.message}"), err=True)
        period = Period(None, None, UTC)
        report = usage_report(store, period, by=["provider", "model"])
    data_out = report.as_dict()
    if fmt == "json":
        click.echo(dumps(data_out | {"database": str(db)}))
    else:
        from .report import ROW_METRICS

        emit(data_out, report.rows + [dict(t, provider="Total") for t in report.total],
             ["provider", "model", *ROW_METRICS], fmt)
    click.echo(
        f"\nDemo database: {db}\nNext:\n"
        f"  tokenmeter --db {db} --all --by day,model     explore the demo data\n"
        f"  tokenmeter --db {db} prices {_top_model(report.rows)}   see how a cost was estimated\n"
        "  cp config.example.toml \"$(dirname \"$(tokenmeter db path)\")\"/config.toml   then point it at your logs\n"
        "  tokenmeter fetch && tokenmeter --month --by model",
        err=True,
    )


def _top_model(rows: list[dict[str, Any]]) -> str:
    """The model with the most requests in the demo report (what `tokenmeter prices` is shown for)."""
    named = [r for r in rows if r.get("model")]
    if not named:
        return "MODEL"
    return str(max(named, key=lambda r: r.get("requests") or 0)["model"])
