"""`tokenmeter db path|migrate|merge|export|push`."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import service
from ..output import safe_text
from ..render import View
from ..store import is_url, open_store, redact_url
from ..store.merge import MERGE_TIMEOUT
from .common import common_options, format_options, get_env, show


@click.group(name="db")
def db_group() -> None:
    """The database: where it is, migrations, merging, export."""


@db_group.command(name="path")
@common_options
def db_path_cmd() -> None:
    """Print the database path (a hub's URL without its password)."""
    click.echo(redact_url(get_env().db_path))


@db_group.command(name="migrate")
@click.option("--rebuild", is_flag=True, help="Also recompute the report rollup from every usage row "
                                               "(after inserting rows into `usage` by hand).")
@common_options
def db_migrate_cmd(rebuild: bool) -> None:
    """Apply pending schema migrations (every command also does this)."""
    env = get_env()
    with open_store(env.db_path, migrate=False) as store:
        pending = store.pending_migrations()
    with open_store(env.db_path) as store:
        if rebuild:
            store.mark_all_dirty()
            buckets = store.refresh_rollup()
    click.echo(f"Applied {len(pending)} migration(s)" + (f": {', '.join(pending)}" if pending else "")
               + (f"; rebuilt {buckets} rollup buckets" if rebuild else ""))


@db_group.command(name="merge")
@click.argument("other", type=click.Path(dir_okay=False))
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=MERGE_TIMEOUT, show_default=True,
              metavar="SECONDS",
              help="Give up (changing nothing) after this many seconds.")
@common_options
def db_merge_cmd(other: str, timeout: float) -> None:
    """Merge OTHER.db (e.g. from another machine) into the database.

    Idempotent: merging the same file twice changes nothing. A row replaces ours only when it was
    fetched later. Cursors are per machine and are not merged. OTHER is read as untrusted input:
    a schema this version does not know (wrong or newer) changes nothing and exits 4; rows that
    are not valid records are skipped and counted.
    """
    env = get_env()
    with env.open_store() as store:
        counts = store.merge(other, timeout=timeout)
    skipped = f"; {counts['skipped']} invalid rows skipped" if counts["skipped"] else ""
    click.echo(f"Merged {safe_text(other)}: {counts['usage']} usage rows and {counts['quota_snapshots']} snapshots "
               f"added or updated{skipped}")


@db_group.command(name="export")
@format_options
@common_options
def db_export_cmd(fmt: str) -> None:
    """Export every usage row (CSV, TSV or JSON; costs as decimals)."""
    env = get_env()
    with env.open_store() as store:
        rows, columns = service.export_rows(store)
    # JSON carries the export's columns only; a table of every column would not fit: CSV instead
    show(View(data=[{c: r.get(c) for c in columns} for r in rows], rows=rows, columns=columns),
         "csv" if fmt == "table" else fmt)


@db_group.command(name="push")
@click.argument("url", required=False, metavar="[URL]")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object with the counts.")
@common_options
def db_push_cmd(url: str | None, fmt: str) -> None:
    """Send the rows changed since the last push to a team hub (PostgreSQL).

    URL is a libpq URL (default: `[hub] url` in the config), e.g.
    postgresql://alice@hub.example.com:5432/tokenmeter?sslmode=require; keep the password in
    ~/.pgpass or PGPASSWORD rather than in the URL. Idempotent and incremental: a push sends
    only what changed, pushing again sends nothing, and a push that was stopped halfway resumes
    where it stopped. Rows are named after this machine (`[tokenmeter] machine_name`, default
    the host name). Run it from cron after `tokenmeter fetch`.
    """
    env = get_env()
    target = url or env.config.hub_url
    if not target:
        raise click.UsageError("no hub to push to: give its URL (`tokenmeter db push postgresql://user@host/db`) "
                               "or set `url` in the [hub] section of the config")
    if not is_url(target):
        raise click.UsageError(f"{safe_text(target)} is not a PostgreSQL URL (postgresql://user@host:5432/dbname)")
    if is_url(env.db_path):
        raise click.UsageError("the database is already a hub: `db push` sends a local SQLite database's rows "
                               "(fetch straight into the hub instead)")
    from ..store.push import push

    bar = _ProgressBar() if sys.stderr.isatty() and fmt == "text" else None
    with open_store(env.db_path) as local, open_store(target) as hub:
        try:
            result = push(local, hub, machine=env.config.machine_name,
                          on_progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    counts = {"rows": result.rows, "new": result.new, "updated": result.updated,
              "snapshots": result.snapshots, "seconds": round(result.seconds, 3)}
    if fmt == "json":
        show(View(data={"hub": redact_url(target), "machine": env.config.machine_name, **counts}), "json")
        return
    click.echo(f"Pushed {result.rows} usage rows ({result.new} new, {result.updated} updated) and "
               f"{result.snapshots} quota snapshots to {safe_text(redact_url(target))} as "
               f"{safe_text(env.config.machine_name)} in {result.seconds:.1f} s")


class _ProgressBar:
    """A progress bar on stderr for pushes big enough to need one."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._done = 0

    def update(self, done: int, total: int) -> None:
        if self._bar is None:
            if total < 50_000:
                return
            self._bar = click.progressbar(length=total, label="Pushing", file=sys.stderr)
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
