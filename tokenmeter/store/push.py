"""`db push`: a local SQLite database's changed rows, sent to a team hub.

The local database numbers its changes per 15-minute bucket (``usage_changes``: every insert,
update and delete bumps its bucket's number). The hub keeps, per pushing database, the number up
to which everything has arrived (``hub_pushes``). A push sends the rows of the buckets past that
watermark in change order, a batch per hub transaction that also moves the watermark, so:

- pushing twice sends nothing the second time (and a row sent again changes nothing: the hub
  upserts by id and only replaces a row when something in it differs);
- a push killed halfway keeps what it committed, and the next one resumes after it;
- many machines push at once: their rows are theirs (log rows' ids include the machine), shared
  ones (two machines fetching one billing account) are written in id order, so no deadlock.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .common import ROLLUP, _tx, now_iso
from .pg_write import PUSH_RULE, upsert_rows
from .quota import SNAPSHOT_COLUMNS
from .session import USAGE_COLUMNS

if TYPE_CHECKING:
    from . import Store
    from .pg import PgStore

__all__ = ["PUSH_BATCH", "PushResult", "push"]

PUSH_BATCH = 20_000  # rows per hub transaction
_MACHINE = USAGE_COLUMNS.index("machine")
_COLS = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)


@dataclass
class PushResult:
    rows: int = 0  # usage rows sent
    new: int = 0  # ... that the hub did not have
    updated: int = 0  # ... that replaced an older copy
    snapshots: int = 0  # quota snapshots sent
    seconds: float = 0.0


def _store_id(local: Store) -> str:
    """This database's identity on hubs. A copy of the file (or a backup restored over it) is a
    new file: it gets a new identity, so its first push sends everything (which is idempotent)
    instead of trusting a watermark that belongs to the original."""
    meta = dict(local.conn.execute("SELECT key, value FROM store_meta").fetchall())
    if "store_id" not in meta:
        raise StoreError(f"database {local.path} has no store id; run `tokenmeter db migrate`")
    try:
        st = os.stat(local.path)
        where = f"{st.st_dev}:{st.st_ino}"
    except OSError:
        return str(meta["store_id"])
    if meta.get("store_file") == where:
        return str(meta["store_id"])
    return _new_id(local, where)


def _new_id(local: Store, where: str | None = None) -> str:
    new_id = uuid.uuid4().hex
    with _tx(local):
        local.conn.execute("INSERT INTO store_meta VALUES ('store_id', ?) ON CONFLICT(key) DO UPDATE "
                           "SET value = excluded.value", (new_id,))
        if where is not None:
            local.conn.execute("INSERT INTO store_meta VALUES ('store_file', ?) ON CONFLICT(key) DO UPDATE "
                               "SET value = excluded.value", (where,))
    return new_id


def push(local: Store, hub: PgStore, *, machine: str, batch: int = PUSH_BATCH,
         on_progress: Callable[[int, int], None] | None = None) -> PushResult:
    """Send ``local``'s rows changed since its last push to ``hub``; rows that name no machine are
    sent as ``machine``'s. ``on_progress(rows sent, rows to send)`` follows along."""
    started = time.monotonic()
    store_id = _store_id(local)
    row = hub.conn.execute("SELECT seq, snapshot_rowid FROM hub_pushes WHERE store_id = ?", (store_id,)).fetchone()
    seq_done, snap_done = (row[0], row[1]) if row else (0, 0)
    (top,) = local.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM usage_changes").fetchone()
    if seq_done > top:
        # the hub holds more of "us" than this file ever had (a backup restored in place): this
        # file is someone else now; a new identity, and everything is sent again (idempotent)
        store_id, seq_done, snap_done = _new_id(local), 0, 0
    result = PushResult()
    # one read transaction: the whole push sees one state of the local file, while fetches go on
    local.conn.execute("BEGIN")
    try:
        changed = local.conn.execute(
            "SELECT bucket, seq FROM usage_changes WHERE seq > ? ORDER BY seq", (seq_done,)).fetchall()
        # a range search per changed bucket (a scan of every row would cost a no-op push seconds)
        total = local.conn.execute(
            "SELECT COUNT(*) FROM usage_changes c JOIN usage u ON u.start_ts >= c.bucket "
            "AND u.start_ts < c.bucket + 900 WHERE c.seq > ?", (seq_done,)).fetchone()[0] if changed else 0
        pending: list[tuple[Any, ...]] = []
        for i, (bucket, seq) in enumerate(changed):
            for r in local.conn.execute(f"SELECT {_COLS} FROM usage WHERE start_ts >= ? AND start_ts < ?",
                                        (bucket, bucket + ROLLUP)):
                pending.append(r if r[_MACHINE] is not None else (*r[:_MACHINE], machine, *r[_MACHINE + 1:]))
            if len(pending) >= batch or i == len(changed) - 1:
                _send(hub, result, pending, store_id=store_id, machine=machine, seq=seq)
                pending = []
                if on_progress is not None:
                    on_progress(result.rows, total)
        snaps = local.conn.execute(
            f"SELECT rowid, {', '.join(SNAPSHOT_COLUMNS)} FROM quota_snapshots WHERE rowid > ? ORDER BY rowid",
            (snap_done,)).fetchall()
    finally:
        local.conn.execute("COMMIT")
    if snaps:
        with _tx(hub):
            hub.conn.executemany(
                f"INSERT INTO quota_snapshots ({', '.join(SNAPSHOT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(SNAPSHOT_COLUMNS))}) ON CONFLICT (id) DO NOTHING",
                [s[1:] for s in snaps])
            _watermark(hub, store_id, machine, snapshot_rowid=snaps[-1][0])
        result.snapshots = len(snaps)
    hub.refresh_rollup()  # what Grafana reads is current as soon as the push returns
    result.seconds = time.monotonic() - started
    return result


def _send(hub: PgStore, result: PushResult, rows: list[tuple[Any, ...]], *, store_id: str, machine: str,
          seq: int) -> None:
    with _tx(hub):
        new, updated = upsert_rows(hub, rows, PUSH_RULE)
        _watermark(hub, store_id, machine, seq=seq, rows=len(rows))
    result.rows += len(rows)
    result.new += new
    result.updated += updated


def _watermark(hub: PgStore, store_id: str, machine: str, *, seq: int = 0, rows: int = 0,
               snapshot_rowid: int = 0) -> None:
    # GREATEST: two pushes of one database at once (an overlapping cron run) never move it back
    hub.conn.execute(
        "INSERT INTO hub_pushes (store_id, machine, seq, snapshot_rowid, rows, pushed_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (store_id) DO UPDATE SET machine = excluded.machine, "
        "seq = GREATEST(hub_pushes.seq, excluded.seq), "
        "snapshot_rowid = GREATEST(hub_pushes.snapshot_rowid, excluded.snapshot_rowid), "
        "rows = hub_pushes.rows + excluded.rows, pushed_at = excluded.pushed_at",
        (store_id, machine, seq, snapshot_rowid, rows, now_iso()))
