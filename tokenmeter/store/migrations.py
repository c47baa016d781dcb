"""Schema of the tokenmeter database. Released migrations are never edited; fixes are new steps."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

from .common import NEXT_SEQ

migrations = Migrations("tokenmeter")


@migrations()
def m001_initial(db: Database) -> None:
    # ``id`` (the hash of source, account and key) is unique, so re-fetches and merges replace
    # instead of duplicating. Reports read usage_rollup (m003), so this table only needs the
    # indexes that writes and the rollup rebuild use: every extra index slows a big ingest.
    db.execute(
        """
        CREATE TABLE usage (
            id TEXT NOT NULL,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,          -- the source's kind: ledger or log
            account TEXT,
            key TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT,
            project TEXT,
            session TEXT,
            start TEXT NOT NULL,         -- ISO-8601 UTC, for people and Datasette
            "end" TEXT NOT NULL,
            start_ts INTEGER NOT NULL,   -- epoch seconds, for range queries and local-day buckets
            end_ts INTEGER NOT NULL,
            requests INTEGER,
            errors INTEGER,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cache_read_tokens INTEGER,
            cache_write_tokens INTEGER,
            reasoning_tokens INTEGER,
            total_tokens INTEGER,
            cost_nanos INTEGER,          -- money in 1e-9 of the currency: SQL sums stay exact
            currency TEXT,
            cost_kind TEXT,
            est_cost_nanos INTEGER,
            est_currency TEXT,
            price_basis TEXT,
            details TEXT,
            content_hash TEXT,
            fetched_at TEXT
        )
        """
    )
    db.execute("CREATE UNIQUE INDEX idx_usage_id ON usage (id)")
    db.execute("CREATE INDEX idx_usage_start ON usage (start_ts)")
    # partial: log rows (the many) never enter it, so it costs a big log ingest nothing
    db.execute(
        "CREATE INDEX idx_usage_ledger ON usage (start_ts, end_ts, provider) WHERE kind = 'ledger'"
    )
    # no per-provider/model indexes: reports read usage_rollup, and every index slows big ingests

    db["quota_snapshots"].create(
        {
            "id": str,
            "source": str,
            "provider": str,
            "account": str,
            "name": str,
            "unit": str,
            "used": str,  # decimal strings: units vary (tokens, requests, currencies)
            "remaining": str,
            "total": str,
            "resets_at": str,
            "observed_at": str,
            "details": str,
        },
        pk="id",
        not_null={"source", "provider", "name", "unit", "observed_at"},
    )
    db.execute("CREATE INDEX idx_quota_latest ON quota_snapshots (provider, name, observed_at)")

    db["source_state"].create(
        {
            "source": str,
            "cursor": str,
            "last_success": str,
            "last_error": str,
            "last_error_at": str,
            "updated_at": str,
        },
        pk="source",
    )

    db["fetch_runs"].create(
        {
            "id": int,
            "source": str,
            "started_at": str,
            "finished_at": str,
            "status": str,  # ok | error
            "new": int,
            "updated": int,
            "unchanged": int,
            "snapshots": int,
            "skipped": int,
            "seconds": float,
            "window_from": str,
            "window_to": str,
            "error": str,
        },
        pk="id",
    )
    db.execute("CREATE INDEX idx_fetch_runs_source ON fetch_runs (source, started_at)")


@migrations()
def m002_alert_state(db: Database) -> None:
    # one row per (budget, level, period): an alert is sent once per level per budget period
    db["alert_state"].create(
        {"budget": str, "level": str, "period": str, "sent_at": str},
        pk=("budget", "level", "period"),
    )


@migrations()
def m003_rollup(db: Database) -> None:
    # Reports read 15-minute partial sums instead of every record (a month of per-request logs is
    # hundreds of thousands of rows; its rollup is a few thousand). 15 minutes because every time
    # zone's UTC offset is a multiple of it, so local days can still be cut exactly.
    db.execute(
        """
        CREATE TABLE usage_rollup (
            bucket INTEGER NOT NULL,      -- start_ts rounded down to 900 s
            source TEXT, kind TEXT, account TEXT, provider TEXT, model TEXT, project TEXT,
            has_cost INTEGER,             -- 1: the rows carry the source's own cost
            currency TEXT, cost_kind TEXT, est_currency TEXT,
            records INTEGER, calls INTEGER, -- calls = requests, or 1 per record that has none
            requests INTEGER, input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
            cache_write_tokens INTEGER, reasoning_tokens INTEGER, total_tokens INTEGER,
            cost_nanos INTEGER, est_cost_nanos INTEGER
        )
        """
    )
    db.execute("CREATE INDEX idx_rollup_bucket ON usage_rollup (bucket)")
    # buckets whose rollup must be recomputed before the next report. The store marks the buckets
    # of rows it inserts (cheaper than a trigger per row on a big ingest); these triggers catch
    # every update and delete (re-fetched rows that changed, merges, reprice, edits by hand).
    db.execute("CREATE TABLE rollup_dirty (bucket INTEGER PRIMARY KEY) WITHOUT ROWID")
    db.execute("INSERT OR IGNORE INTO rollup_dirty SELECT DISTINCT start_ts - start_ts % 900 FROM usage")
    # not INSERT OR IGNORE: an upsert's conflict handling overrides the OR clause inside triggers
    mark = (
        "INSERT INTO rollup_dirty SELECT {0}.start_ts - {0}.start_ts % 900 WHERE NOT EXISTS "
        "(SELECT 1 FROM rollup_dirty WHERE bucket = {0}.start_ts - {0}.start_ts % 900);"
    )
    db.execute(
        f"CREATE TRIGGER usage_rollup_update AFTER UPDATE ON usage BEGIN {mark.format('OLD')} {mark.format('NEW')} END"
    )
    db.execute(f"CREATE TRIGGER usage_rollup_delete AFTER DELETE ON usage BEGIN {mark.format('OLD')} END")


@migrations()
def m004_agent(db: Database) -> None:
    # which agent made the calls (a coding agent's main conversation or a subagent). ADD COLUMN is
    # instant on any size of table; old rows get NULL ("not reported") in both tables, which is
    # exactly what a rebuild of their rollup buckets would give, so the rollup stays correct as is.
    db.execute("ALTER TABLE usage ADD COLUMN agent TEXT")
    db.execute("ALTER TABLE usage_rollup ADD COLUMN agent TEXT")


@migrations()
def m005_hub(db: Database) -> None:
    # the readable name of the machine that fetched a row ([tokenmeter] machine_name), for a team
    # hub's per-machine reports; NULL on rows stored before (a push names them after the pusher)
    db.execute("ALTER TABLE usage ADD COLUMN machine TEXT")
    db.execute("ALTER TABLE usage_rollup ADD COLUMN machine TEXT")
    # `db push` sends the rows of buckets whose change number passed the hub's watermark. Buckets,
    # not rows: a change number per row would cost every insert of a big ingest an index update.
    db.execute("CREATE TABLE usage_changes (bucket INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    db.execute("CREATE INDEX idx_usage_changes_seq ON usage_changes (seq)")
    db.execute(
        "INSERT INTO usage_changes (bucket, seq) SELECT bucket, ROW_NUMBER() OVER (ORDER BY bucket) FROM "
        "(SELECT DISTINCT start_ts - start_ts % 900 AS bucket FROM usage)"
    )
    mark = (
        "INSERT INTO rollup_dirty SELECT {0}.start_ts - {0}.start_ts % 900 WHERE NOT EXISTS "
        "(SELECT 1 FROM rollup_dirty WHERE bucket = {0}.start_ts - {0}.start_ts % 900); "
        "INSERT INTO usage_changes (bucket, seq) VALUES ({0}.start_ts - {0}.start_ts % 900, " + NEXT_SEQ + ") "
        "ON CONFLICT(bucket) DO UPDATE SET seq = excluded.seq;"
    )
    db.execute("DROP TRIGGER usage_rollup_update")
    db.execute("DROP TRIGGER usage_rollup_delete")
    db.execute(
        f"CREATE TRIGGER usage_rollup_update AFTER UPDATE ON usage BEGIN {mark.format('OLD')} {mark.format('NEW')} END"
    )
    db.execute(f"CREATE TRIGGER usage_rollup_delete AFTER DELETE ON usage BEGIN {mark.format('OLD')} END")
    # this database's identity on a hub (where its push watermark is kept)
    db.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO store_meta VALUES ('store_id', lower(hex(randomblob(16))))")
