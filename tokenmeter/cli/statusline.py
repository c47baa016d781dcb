"""`tokenmeter statusline`: one short line for a coding agent's ``statusLine`` command setting.

The agent CLIs that offer it (the README names them; the host names no provider) run the command
through a shell after every change they show (new response, model switch, …, debounced), kill it
after a few seconds or when the next update starts, show at most two lines of its stdout, and pipe
one JSON object on stdin (``tests/fixtures/*statusline.json`` has the shape the client writes)::

    {"session_id", "version", "model": {"display_name"},
     "context_window": {"context_window_size", "used_percentage", "remaining_percentage",
                        "current_usage", "total_input_tokens", "total_output_tokens"},
     "workspace": {"current_dir"}, "git": {"branch"}?, "worktree": {…}?,
     "metrics": {"models": {<model id>: {"api": {"total_requests", "total_errors", "total_latency_ms"},
                                          "tokens": {"prompt", "completion", "total", "cached",
                                                     "thoughts"}}},
                 "files": {"total_lines_added", "total_lines_removed"}},
     "vim": {"mode"}?}

It runs on every redraw, so the figures (the session's cost from the database, today's and the
month's, the tightest budget) are cached next to the database for ``--ttl`` seconds; a warm run reads
the payload and one small JSON file. Whatever goes wrong, it prints one harmless line and exits 0:
a status line must never break the client's screen.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from ..dburl import is_url, url_key
from ..output import safe_text
from .common import common_options, get_env

MAX_PAYLOAD = 1 << 20  # the client sends ~1 KB; anything near this is not its payload
STDIN_WAIT = 1.0  # seconds to wait for a payload that never comes (run by hand, stdin left open)
SYMBOLS = {"USD": "$", "CNY": "¥", "EUR": "€", "GBP": "£", "JPY": "¥"}
CACHE_VERSION = 1


def read_payload(stream: Any) -> dict[str, Any]:
    """The client's JSON object from ``stream``, or {} for anything else (a terminal, garbage)."""
    try:
        if stream is None or stream.isatty():
            return {}
        fd = stream.fileno()
        ready, _, _ = select.select([fd], [], [], STDIN_WAIT)
        data = os.read(fd, MAX_PAYLOAD) if ready else b""
        while ready and data and len(data) < MAX_PAYLOAD:
            ready, _, _ = select.select([fd], [], [], STDIN_WAIT)
            more = os.read(fd, MAX_PAYLOAD - len(data)) if ready else b""
            if not more:
                break
            data += more
    except (OSError, ValueError, AttributeError):  # no real file (tests hand a StringIO over)
        try:
            data = stream.read(MAX_PAYLOAD)
        except (OSError, ValueError, AttributeError):
            return {}
        data = data.encode("utf-8", "replace") if isinstance(data, str) else data
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str | None:
    """A short string field of the payload, safe for a terminal, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = safe_text(value.strip())
    return value if len(value) <= limit else value[:limit - 1] + "…"


def money(amounts: dict[str, Any]) -> str:
    """``$1.23`` / ``¥0.045`` / ``1.20 XYZ`` per currency, joined with ``+``; ``?`` unpriced."""
    if not amounts:
        return "0"
    parts = []
    for currency, raw in sorted(amounts.items()):
        if raw is None:
            parts.append("?")
            continue
        amount = Decimal(raw)
        # two decimals from 1 up; below, two significant digits (a cheap session costs fractions of a cent)
        places = 2 if abs(amount) >= 1 or not amount else min(6, max(2, 1 - amount.adjusted()))
        number = f"{amount:,.{places}f}"
        symbol = SYMBOLS.get(currency)
        parts.append(f"{symbol}{number}" if symbol else f"{number} {safe_text(currency)}")
    return " + ".join(parts)


def _totals(report: Any) -> dict[str, Any]:
    """A report's total cost per currency (None: unpriced usage only)."""
    return _totals_of(report.total)


def _totals_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Cost per currency of report rows (None: unpriced usage only)."""
    out: dict[str, Any] = {}
    for t in rows:
        if t.get("currency") and t.get("cost") is not None:
            out[t["currency"]] = str(Decimal(out.get(t["currency"]) or 0) + t["cost"])
        elif t.get("requests"):
            out.setdefault(t.get("currency") or "?", None)
    return out


def _session_cost(store: Any, config: Any, now: Any, session: str,
                  since: str | None) -> tuple[dict[str, Any], str]:
    """The session's cost per currency (as a report counts it), and the day to search from next time.

    Sessions have no index: the first search for a session reads all the data (once), later ones
    only the days since its first usage (a session's new calls are appended after its old ones)."""
    from .. import service

    local_today = now.astimezone(config.timezone).date()
    if since:
        # never after today, even if the session's first calls were (a clock set back, a pinned now)
        query = service.report_query(config, now, date_from=min(since, local_today.isoformat()),
                                     date_to=local_today.isoformat(), by="day,session")
    else:
        query = service.report_query(config, now, preset="all", by="day,session")
    rows = [r for r in service.report(store, config, query).rows if r.get("session") == session]
    # no usage yet (a new session): its calls will come from now on; a day back covers midnight
    first = min((str(r["day"]) for r in rows), default=since or (local_today - timedelta(days=1)).isoformat())
    return _totals_of(rows), first


def _figures(session: str | None, since: str | None, offline: bool) -> dict[str, Any]:
    """Today's and the month's cost, the tightest budget and the session's cost, from the database
    (log sources read first: only what was appended)."""
    from .. import service

    env = get_env()
    now = env.now()
    config = env.config
    with env.open_store() as store:
        today = service.report(store, config, service.report_query(config, now, preset="today", by="none"),
                               refresh="none" if offline else "logs")
        month = service.report(store, config, service.report_query(config, now, preset="month", by="none"))
        statuses = service.budgets(store, config, now, env.timezone(None))
        figures: dict[str, Any] = {"at": time.time(), "today": _totals(today), "month": _totals(month)}
        if statuses:
            tight = max(statuses, key=lambda s: s.percent)  # budgets and provider quotas alike
            figures["budget"] = {"name": tight.name, "percent": str(tight.percent), "level": tight.level}
        if session:
            figures["session"], figures["since"] = _session_cost(store, config, now, session, since)
    return figures


def line(payload: dict[str, Any], figures: dict[str, Any] | None) -> str:
    """The status line: model, this session's cost, today's, the month's, the tightest budget."""
    parts = []
    model = _text((payload.get("model") or {}).get("display_name") if isinstance(payload.get("model"), dict)
                  else None, 32)
    if model:
        parts.append(model)
    if figures is None:
        return " · ".join([*parts, "tokenmeter: no figures yet"])
    if "session" in figures:
        parts.append(f"session {money(figures['session'])}")
    parts.append(f"today {money(figures.get('today') or {})}")
    parts.append(f"month {money(figures.get('month') or {})}")
    budget = figures.get("budget")
    if budget:
        name = _text(budget.get("name"), 24) or "budget"
        # rounded down, like `tokenmeter budget`: never 50 % while the level is still ok
        parts.append(f"{name} {int(Decimal(budget['percent']))}% {budget['level']}")
    return " · ".join(parts)


def _amounts_ok(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    try:
        return all(isinstance(c, str) and (a is None or Decimal(a).is_finite()) for c, a in value.items())
    except (ArithmeticError, TypeError, ValueError):
        return False


def _day_ok(value: Any) -> bool:
    try:
        return isinstance(value, str) and date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _load(path: Path) -> dict[str, Any]:
    """The cache as written by ``_save``; anything else in the file (edited, truncated, an older
    version) is dropped, so a bad cache costs one recomputation, never a broken line."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {"figures": {}, "sessions": {}}
    cache = cache if isinstance(cache, dict) and cache.get("v") == CACHE_VERSION else {}
    figures = cache.get("figures")
    budget = figures.get("budget") if isinstance(figures, dict) else None
    if not (isinstance(figures, dict) and isinstance(figures.get("at"), int | float)
            and _amounts_ok(figures.get("today")) and _amounts_ok(figures.get("month"))
            and (budget is None or (isinstance(budget, dict) and isinstance(budget.get("name"), str)
                                    and isinstance(budget.get("level"), str)
                                    and _amounts_ok({"%": budget.get("percent")})))):
        figures = {}
    sessions = cache.get("sessions") if isinstance(cache.get("sessions"), dict) else {}
    sessions = {k: v for k, v in sessions.items()
                if isinstance(v, dict) and isinstance(v.get("at"), int | float)
                and (v.get("cost") is None or _amounts_ok(v["cost"]))
                and (v.get("since") is None or _day_ok(v["since"]))}
    return {"figures": figures, "sessions": sessions}


def _save(path: Path, cache: dict[str, Any]) -> None:
    # another statusline may read it at any moment: write aside, then rename over
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it names sessions and spend
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, path)
    except OSError:  # a read-only or full disk: the line is still printed, just not cached
        tmp.unlink(missing_ok=True)


def _cache_path(db: str) -> Path:
    """The cache file: next to a SQLite database; for a hub, in this machine's data folder."""
    if is_url(db):
        from ..config import data_dir

        return data_dir() / f"hub-{url_key(db)}.statusline.json"
    return Path(db + ".statusline.json")


def status(payload: dict[str, Any], *, ttl: float, offline: bool) -> str:
    """The line for ``payload``: from the cache when it is younger than ``ttl`` seconds, else
    recomputed (by one process at a time: the others show what is cached)."""
    import fcntl

    session = _text(payload.get("session_id"), 128)
    env = get_env()
    path = _cache_path(env.db_path)
    cache = _load(path)
    now = time.time()
    sessions = cache["sessions"]
    cached = dict(cache["figures"])
    if session and session in sessions:
        cached["session"] = sessions[session].get("cost")
    # a time in the future (a clock set back, an edited file) is stale, not fresh for ever
    fresh = bool(cached) and 0 <= now - cached["at"] < ttl and (
        not session or 0 <= now - sessions.get(session, {}).get("at", -1e300) < ttl)
    if fresh:
        return line(payload, cached)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another redraw is computing: never pile up processes
            return line(payload, cached or None)
        since = sessions.get(session, {}).get("since") if session else None
        figures = _figures(session, since, offline)
        cost, since = figures.pop("session", None), figures.pop("since", None)
        # sessions seen in the last day are kept; older ones are dropped from the file
        kept = {k: v for k, v in sessions.items() if now - v["at"] < 86400}
        if session is not None:
            kept[session] = {"at": figures["at"], "cost": cost, "since": since}
        _save(path, {"v": CACHE_VERSION, "figures": figures, "sessions": kept})
    if session is not None:
        figures["session"] = cost
    return line(payload, figures)


@click.command(name="statusline")
@click.option("--ttl", type=click.FloatRange(min=0), default=30, show_default=True, metavar="SECONDS",
              help="How long cached figures are shown before they are recomputed.")
@click.option("--offline", is_flag=True, help="Read the database only; do not read the logs first.")
@common_options
def statusline_cmd(ttl: float, offline: bool) -> None:
    """One line for a coding agent's status bar: session, today, month and the tightest budget.

    Reads the JSON payload the agent pipes on stdin (session_id, model.display_name, …); set it
    as the agent's status line command, e.g. in its settings.json:
    {"ui": {"statusLine": {"type": "command", "command": "tokenmeter statusline"}}}.
    Always exits 0 and prints one line, whatever the payload or the database.
    """
    payload = read_payload(sys.stdin)
    try:
        text = status(payload, ttl=ttl, offline=offline)
    except Exception as exc:  # a status line must never break the client's screen
        if get_env().debug:
            raise
        text = line(payload, None).replace("no figures yet", f"unavailable ({type(exc).__name__})")
    click.echo(safe_text(text))
