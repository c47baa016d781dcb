"""Schema of the tokenmeter database. Released migrations are never edited; fixes are new steps."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("tokenmeter")


@migrations()
def m001_initial(db: Database) -> None:
    db["usage"].create(
        {
            "id": str,  # hash of (source, account, key): re-fetches and merges replace, never duplicate
            "source": str,
            "kind": str,  # the source's kind: ledger or log; reports never add the two together
            "account": str,
            "key": str,
            "provider": str,
            "model": str,
            "project": str,
            "session": str,
            "start": str,  # ISO-8601 UTC, for people and Datasette
            "end": str,
            "start_ts": int,  # epoch seconds, for fast range queries and local-day bucketing
            "end_ts": int,
            "requests": int,
            "errors": int,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "reasoning_tokens": int,
            "total_tokens": int,
            "cost_nanos": int,  # money in 1e-9 of the currency, so SQL sums are exact
            "currency": str,
            "cost_kind": str,
            "est_cost_nanos": int,
            "est_currency": str,
            "price_basis": str,
            "details": str,
            "content_hash": str,
            "fetched_at": str,
        },
        pk="id",
        not_null={"source", "kind", "key", "provider", "start", "end", "start_ts", "end_ts"},
    )
    # The month report scans a start_ts range; the covering columns keep it off the table pages.
    db.execute(
        "CREATE INDEX idx_usage_start ON usage (start_ts, provider, model, source, kind)"
    )
    db.execute("CREATE INDEX idx_usage_provider ON usage (provider, start_ts)")
    db.execute("CREATE INDEX idx_usage_model ON usage (model, start_ts)")
    db.execute("CREATE INDEX idx_usage_source ON usage (source, start_ts)")

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
