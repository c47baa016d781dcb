"""Writing usage rows into a hub in bulk: COPY into a staging table, then one upsert by id.

Both a fetch straight into the hub (``PgWriteSession``) and ``db push`` write this way. Rows go in
id order, so two machines writing overlapping rows (two laptops fetching the same billing account)
take row locks in the same order and never deadlock each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .session import USAGE_COLUMNS, WriteSession

if TYPE_CHECKING:
    from .pg import PgStore

__all__ = ["PUSH_RULE", "SESSION_RULE", "PgWriteSession", "upsert_rows"]

_COLS = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)
# a fetch replaces a row whose content changed (as on SQLite)
SESSION_RULE = "usage.content_hash IS DISTINCT FROM excluded.content_hash"
# a push or merge replaces a row when anything it carries differs and it was not fetched earlier
# than what the hub holds (a re-estimate keeps its fetch time, so it goes through)
PUSH_RULE = (
    "(usage.content_hash, usage.est_cost_nanos, usage.est_currency, usage.price_basis, usage.machine) "
    "IS DISTINCT FROM (excluded.content_hash, excluded.est_cost_nanos, excluded.est_currency, "
    "excluded.price_basis, excluded.machine) AND excluded.fetched_at >= usage.fetched_at"
)


def _upsert_sql(rule: str) -> str:
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in USAGE_COLUMNS if c != "id")
    return (
        f"WITH w AS (INSERT INTO usage ({_COLS}) SELECT DISTINCT ON (id) {_COLS} FROM tokenmeter_stage ORDER BY id "
        f"ON CONFLICT (id) DO UPDATE SET {sets} WHERE {rule} RETURNING (xmax = 0) AS inserted) "
        "SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted) FROM w"
    )


def upsert_rows(store: PgStore, rows: Sequence[Sequence[Any]], rule: str) -> tuple[int, int]:
    """Upsert full rows (``USAGE_COLUMNS`` order) inside the caller's transaction; returns how many
    were inserted and how many updated (the rest were unchanged)."""
    if not rows:
        return 0, 0
    raw = store.conn.raw

    def run() -> tuple[int, int]:
        if not store._stage_ready:
            raw.execute("CREATE TEMP TABLE IF NOT EXISTS tokenmeter_stage (LIKE usage) ON COMMIT DELETE ROWS")
            store._stage_ready = True
        raw.execute("TRUNCATE tokenmeter_stage")
        with raw.cursor().copy(f"COPY tokenmeter_stage ({_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        inserted, updated = raw.execute(_upsert_sql(rule)).fetchone()
        return int(inserted), int(updated)

    return store.conn._call(run)


class PgWriteSession(WriteSession):
    """``WriteSession`` on a hub: the same rows, written by ``upsert_rows``; the rollup is marked by
    the hub's triggers."""

    store: PgStore

    def flush(self) -> None:
        if not self._pending and not self._bulk:
            return
        self._begin()
        rows = list(self._pending.values())
        if self._bulk:
            rows += [self._full_row(b) for b in self._bulk.values()]
        self._pending, self._bulk = {}, {}
        self._flush_sums, self._flush_rows = [], 0  # the hub's triggers keep its rollup
        new, updated = upsert_rows(self.store, rows, SESSION_RULE)
        self.counts.new += new
        self.counts.updated += updated
        self.counts.unchanged += len(rows) - new - updated

    def _full_row(self, b: tuple[Any, ...]) -> tuple[Any, ...]:
        """An ``add_rows`` row with the batch's shared values, in ``USAGE_COLUMNS`` order."""
        (rid, key, model, project, session, agent, start, start_ts, req, inp, out, cr, cw, rs, total,
         est, est_currency, basis, details, content_hash) = b
        account, provider = self._bulk_key or (None, "")
        return (rid, self.source, self.kind, account, key, provider, model, project, session, agent, self.machine,
                start, start, start_ts, start_ts, req, None, inp, out, cr, cw, rs, total, None, None, None,
                est, est_currency, basis, details, content_hash, self._fetched_at)
