"""`tokenmeter db path|migrate|merge|export`."""

from __future__ import annotations

import click

from .. import service
from ..output import safe_text
from ..render import View
from ..store import Store
from ..store.merge import MERGE_TIMEOUT
from .common import common_options, format_options, get_env, show


@click.group(name="db")
def db_group() -> None:
    """The database: where it is, migrations, merging, export."""


@db_group.command(name="path")
@common_options
def db_path_cmd() -> None:
    """Print the database path."""
    click.echo(get_env().db_path)


@db_group.command(name="migrate")
@click.option("--rebuild", is_flag=True, help="Also recompute the report rollup from every usage row "
                                               "(after inserting rows into `usage` by hand).")
@common_options
def db_migrate_cmd(rebuild: bool) -> None:
    """Apply pending schema migrations (every command also does this)."""
    env = get_env()
    with Store.open(env.db_path, migrate=False) as store:
        pending = store.pending_migrations()
    with Store.open(env.db_path) as store:
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
