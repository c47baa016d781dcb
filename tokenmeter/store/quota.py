"""Quota snapshots: written by a run's session, read latest-per-quota for `quota` and budgets."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from decimal import Decimal
from typing import Any

from ..records import QuotaSnapshot
from .common import dec, dicts, iso

SNAPSHOT_COLUMNS = ("id", "source", "provider", "account", "name", "unit", "used", "remaining", "total",
                    "resets_at", "observed_at", "details")
_LATEST_SQL = (
    "SELECT q.* FROM quota_snapshots q JOIN (SELECT provider, COALESCE(account, '') a, name, "
    "MAX(observed_at) m FROM quota_snapshots GROUP BY provider, COALESCE(account, ''), name) l "
    "ON q.provider = l.provider AND COALESCE(q.account, '') = l.a AND q.name = l.name "
    "AND q.observed_at = l.m ORDER BY q.provider, q.name"
)


def insert_snapshot(conn: sqlite3.Connection, source: str, s: QuotaSnapshot) -> None:
    """Store one snapshot (the same quota observed at the same time again replaces it)."""
    observed = iso(s.observed_at)
    sid = hashlib.sha256(f"{s.provider}\x1f{s.account or ''}\x1f{s.name}\x1f{observed}".encode()).hexdigest()[:32]
    conn.execute(
        "INSERT INTO quota_snapshots (id, source, provider, account, name, unit, used, remaining, total, "
        "resets_at, observed_at, details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in ("source", "provider", "account", "name", "unit", "used",
                                                    "remaining", "total", "resets_at", "observed_at", "details")),
        (sid, source, s.provider, s.account, s.name, s.unit, dec(s.used), dec(s.remaining),
         dec(s.total), iso(s.resets_at), observed, json.dumps(dict(s.details), sort_keys=True, default=str)),
    )


class QuotaQueries:
    """``Store`` methods over ``quota_snapshots``."""

    conn: sqlite3.Connection

    def snapshots(self, latest: bool = True) -> list[dict[str, Any]]:
        """The latest snapshot per (provider, account, name), or every snapshot in time order."""
        sql = _LATEST_SQL if latest else "SELECT * FROM quota_snapshots ORDER BY observed_at"
        out = []
        for r in dicts(self.conn, sql):
            for k in ("used", "remaining", "total"):
                r[k] = None if r[k] is None else Decimal(r[k])
            r["details"] = json.loads(r["details"] or "{}")
            out.append(r)
        return out
