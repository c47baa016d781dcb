"""Reading stored usage rows, and re-estimating them (``reprice``) without any pricing code here:
the store hands out what an estimate needs and takes the new estimates back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .base import Estimate, StoredUsage
from .common import _tx, dicts, from_nanos, to_nanos

__all__ = ["UsageQueries"]


def _public_row(r: dict[str, Any]) -> dict[str, Any]:
    r["cost"] = from_nanos(r.pop("cost_nanos"))
    r["estimated_cost"] = from_nanos(r.pop("est_cost_nanos"))
    r["details"] = json.loads(r["details"] or "{}")
    return r


class UsageQueries:
    """``Store`` methods over ``usage`` rows."""

    conn: sqlite3.Connection
    path: str

    def usage_rows(self, **where: Any) -> list[dict[str, Any]]:
        """Stored usage rows as dicts (costs as Decimal), optionally filtered by exact column values."""
        sql = "SELECT * FROM usage"
        params: list[Any] = []
        if where:
            sql += " WHERE " + " AND ".join(f'"{k}" = ?' for k in where)
            params = list(where.values())
        sql += " ORDER BY start_ts, source, key"
        return [_public_row(r) for r in dicts(self.conn, sql, params)]

    def _missing_buckets(self, rows: list[tuple[str, int]]) -> set[int]:
        """The buckets of the (id, bucket) pairs whose id is not stored yet."""
        held: set[str] = set()
        for i in range(0, len(rows), 500):
            ids = [rid for rid, _ in rows[i : i + 500]]
            sql = f"SELECT id FROM usage WHERE id IN ({', '.join('?' * len(ids))})"
            held.update(rid for (rid,) in self.conn.execute(sql, ids))
        return {bucket for rid, bucket in rows if rid not in held}

    def stored_usage(self) -> list[StoredUsage]:
        """Every row that names a model, with the fields its estimate depends on."""
        cur = self.conn.execute(
            "SELECT id, provider, model, start, requests, input_tokens, output_tokens, cache_read_tokens, "
            "cache_write_tokens, reasoning_tokens, est_cost_nanos, est_currency, price_basis "
            "FROM usage WHERE model IS NOT NULL"
        )
        return [
            StoredUsage(rid, provider, model, datetime.fromisoformat(start.replace("Z", "+00:00")), *rest)
            for rid, provider, model, start, *rest in cur.fetchall()
        ]

    def set_estimates(self, estimates: Iterable[tuple[str, Estimate | None]]) -> int:
        """Store new estimates (None: no price) by row id in one transaction; returns how many changed."""
        rows = [
            (to_nanos(e.cost), e.currency, e.basis, rid) if e is not None else (None, None, None, rid)
            for rid, e in estimates
        ]
        with _tx(self):
            # only rows whose estimate differs are written: their rollup buckets are marked by trigger
            return self.conn.executemany(
                "UPDATE usage SET est_cost_nanos = ?1, est_currency = ?2, price_basis = ?3 WHERE id = ?4 "
                "AND (est_cost_nanos IS NOT ?1 OR est_currency IS NOT ?2 OR price_basis IS NOT ?3)", rows
            ).rowcount
