"""Bookkeeping: per-source state (cursor, last success, last error), fetch runs, sent alerts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .common import now_iso

__all__ = ["StateQueries"]


class StateQueries:
    """``Store`` methods over ``source_state``, ``fetch_runs`` and ``alert_state``."""

    conn: sqlite3.Connection
    # a hub keeps each machine's cursors apart ("<source>@<machine id>"): two machines fetching the
    # same source straight into it read their own files from their own positions
    state_suffix = ""

    def get_cursor(self, source: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT cursor FROM source_state WHERE source = ?",
                                (source + self.state_suffix,)).fetchone()
        if not row or not row[0]:
            return {}
        return json.loads(row[0])

    def source_states(self) -> dict[str, dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM source_state")
        names = [d[0] for d in cur.description]
        suffix = self.state_suffix
        out = {}
        for r in cur.fetchall():
            state = dict(zip(names, r, strict=True))
            if r[0].endswith(suffix) and (suffix or "@" not in r[0]):
                out[r[0][: len(r[0]) - len(suffix)]] = state | {"source": r[0][: len(r[0]) - len(suffix)]}
        return out

    def record_error(self, source: str, message: str) -> None:
        self.conn.execute(
            "INSERT INTO source_state (source, last_error, last_error_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET last_error = excluded.last_error, "
            "last_error_at = excluded.last_error_at, updated_at = excluded.updated_at",
            (source + self.state_suffix, message, now_iso(), now_iso()),
        )

    def log_run(self, **values: Any) -> None:
        cols = ", ".join(f'"{c}"' for c in values)
        self.conn.execute(
            f"INSERT INTO fetch_runs ({cols}) VALUES ({', '.join('?' * len(values))})", list(values.values())
        )

    def last_runs(self) -> dict[str, dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT * FROM fetch_runs WHERE id IN (SELECT MAX(id) FROM fetch_runs GROUP BY source)"
        )
        names = [d[0] for d in cur.description]
        return {r[1]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    def alerts_sent(self) -> set[tuple[str, str, str]]:
        return {(b, lv, p) for b, lv, p in self.conn.execute("SELECT budget, level, period FROM alert_state")}

    def mark_alert_sent(self, budget: str, level: str, period: str) -> None:
        self.conn.execute(
            "INSERT INTO alert_state (budget, level, period, sent_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(budget, level, period) DO UPDATE SET sent_at = excluded.sent_at",
            (budget, level, period, now_iso()),
        )
