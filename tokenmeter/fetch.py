"""Running sources: each isolated, records and cursor committed together, a summary per source.

Which sources run: names given on the command line run even without a config table (with their
default settings). With no names, every installed source that is enabled and ``available()``
runs; the others are listed as skipped with the reason, which is not an error. A source whose
``available()`` raises ``SourceDataError`` (some of its data cannot be read) runs anyway, so it
stores what it can and reports the rest as its error.

One fetch of a source at a time per database: a run holds an advisory lock (``flock`` on
``<database>.<source>.lock`` next to the database file). A second run of the same source waits up to
``LOCK_WAIT`` seconds for it, then reads only what is new; if the first is still running it steps
aside ("skipped: another fetch of this source is running", not an error) instead of repeating the work.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .batch import RecordBatch
from .config import Config, build_settings, env_var_name, machine_id, request_deadline
from .dburl import is_url, url_key
from .errors import ConfigError, InvalidRecord, ProviderError, SourceDataError, StoreError, TokenmeterError
from .records import Cursor, QuotaSnapshot, UsageRecord
from .sources import Source, SourceContext, Window
from .store import Store, UsageStore, is_busy, is_full, is_read_only, iso, to_nanos
from .store.bulk import encode_rows, rollup_sums

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl: fetches run unlocked there
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_WAIT", "Pricer", "SourceResult", "exit_code_for", "make_pricer", "refresh_rollup", "reprice",
           "run_fetch", "run_one", "select_sources", "source_lock"]

# How long a fetch waits for another fetch of the same source before stepping aside: long enough for
# one that is just committing its last records, short enough not to hold up a cron job or a report.
LOCK_WAIT = 5.0
LOCKED_MESSAGE = "another fetch of this source is running"


@dataclass
class SourceResult:
    source: str
    status: str  # ok | error | skipped
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    snapshots: int = 0
    skipped_lines: int = 0
    skip_examples: list[str] = field(default_factory=list)
    unrecognised: int = 0
    unrecognised_examples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0
    traceback: str = ""
    retryable: bool = False  # failed only because another run held the database lock

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("traceback", "retryable")}
        out["seconds"] = round(self.seconds, 3)
        return out


def make_pricer(config: Config | None) -> Pricer | None:
    """The function that estimates a record's cost from the price tables (None if unavailable)."""
    overrides = (config.prices if config else None) or None
    if overrides:  # validated before anything is fetched: a bad [prices] entry is a config error
        return Pricer(_load_prices(overrides))
    # else built on first use: a run with nothing new (most runs) never needs the price tables
    return Pricer(loader=_load_prices)


def _load_prices(overrides: Any = None) -> Any:
    from .pricing import PriceBook  # the engine is imported only when something is priced

    return PriceBook.load(overrides=overrides)


class Pricer:
    """Estimates from one price book: ``pricer(record)`` for a record, ``pricer.rows(batch)`` for a batch."""

    def __init__(self, book: Any = None, *, loader: Callable[[], Any] | None = None) -> None:
        self._book = book
        self._loader = loader

    @property
    def book(self) -> Any:
        if self._book is None and self._loader is not None:
            self._book, self._loader = self._loader(), None
        return self._book

    def __call__(self, r: UsageRecord) -> Any:
        return self.book.estimate(
            model=r.model, provider=r.provider, day=r.start.astimezone(UTC).date(),
            input_tokens=r.input_tokens, output_tokens=r.output_tokens,
            cache_read_tokens=r.cache_read_tokens, cache_write_tokens=r.cache_write_tokens,
            reasoning_tokens=r.reasoning_tokens, requests=r.requests,
        )

    def rows(self, batch: RecordBatch) -> list[tuple[int, str, str] | None]:
        """One ``(cost nanos, currency, basis)`` or None per row: the integer form of ``__call__``."""
        price, provider = self.book.estimate_nanos, batch.provider
        out: list[tuple[int, str, str] | None] = []
        for _, start, model, _, _, _, req, inp, o, cr, cw, rs, _, _ in batch.rows:
            if not model:
                out.append(None)
                continue
            day = start.date() if start.tzinfo is UTC else start.astimezone(UTC).date()
            out.append(price(model, provider, day, inp, o, cr, cw, rs, req))
        return out


def _batch_estimates(pricer: Callable[[UsageRecord], Any] | None,
                     batch: RecordBatch) -> list[tuple[int, str, str] | None]:
    """A batch's estimates from any pricer (a plain function prices the rows' records)."""
    if pricer is None:
        return [None] * len(batch)
    if isinstance(pricer, Pricer):
        return pricer.rows(batch)
    out: list[tuple[int, str, str] | None] = []
    for row in batch.rows:
        r = batch.record(row)
        est = pricer(r) if r.model else None
        out.append((to_nanos(est.cost), est.currency, est.basis) if est is not None else None)  # type: ignore[misc]
    return out


class BatchPreparer:
    """The host's work on a ``RecordBatch`` before the store takes it: price and encode its rows.

    Given to a bulk source as ``ctx.prepare_batch``: pure and picklable, so a source that parses in
    worker processes runs it there and the main process only writes. ``warm()`` loads the price
    book first (once, before workers fork, so they share it).
    """

    def __init__(self, encoding: tuple[str, str], pricer: Callable[[UsageRecord], Any] | None) -> None:
        self.encoding = encoding
        self.pricer = pricer

    def warm(self) -> None:
        if isinstance(self.pricer, Pricer):
            _ = self.pricer.book

    def __call__(self, batch: RecordBatch) -> RecordBatch:
        rows = encode_rows(batch, _batch_estimates(self.pricer, batch), *self.encoding)
        return batch.with_prepared((self.encoding, rows, rollup_sums(rows)))


def reprice(store: UsageStore, pricer: Callable[[Any], Any] | None) -> tuple[int, int]:
    """Re-estimate every stored row that names a model with ``pricer``; returns (changed, total)."""
    rows = store.stored_usage()
    # a stored row has the fields the pricer reads (provider, model, start, token counts)
    changed = store.set_estimates((r.id, pricer(r) if pricer else None) for r in rows)
    return changed, len(rows)


ROLLUP_WAIT = 1.0  # seconds the rollup refresh after a fetch waits for another writer


def refresh_rollup(store: UsageStore) -> None:
    """Bring the report rollup up to date after a fetch, so the next report starts at once.

    Skipped when another run holds the write lock: the next report refreshes it anyway.
    """
    try:
        with store.busy_timeout(ROLLUP_WAIT):
            store.refresh_rollup()
    except StoreError as exc:
        if exc.reason != "busy":
            raise


def _redact(text: str, secrets: Iterable[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def _lock_path(store: Store, sid: str) -> str | None:
    """The lock file of ``sid`` next to the database (None for an in-memory or URI database)."""
    if store.path == ":memory:" or store.path.startswith("file:"):
        return None
    if is_url(store.path):  # a hub: the lock is this machine's, kept in its data folder
        from .config import data_dir, private_dir

        folder = data_dir() / "locks"
        try:
            private_dir(folder)
        except OSError:
            return None
        name = url_key(store.path)
        return str(folder / f"{name}.{re.sub(r'[^A-Za-z0-9._-]', '_', sid)}.lock")
    db = os.path.abspath(os.path.expanduser(store.path))
    return f"{db}.{re.sub(r'[^A-Za-z0-9._-]', '_', sid)}.lock"


@contextlib.contextmanager
def source_lock(store: Store, sid: str, wait: float) -> Iterator[bool]:
    """Hold the lock for fetching ``sid`` into ``store``; yields False when another process or thread
    still holds it after ``wait`` seconds.

    ``flock`` belongs to the open file, so two threads conflict like two processes, and the kernel
    releases it when the holder dies (no stale locks after a SIGKILL). Where the lock file cannot be
    made (no ``fcntl``, an odd folder, a file system without locks), the fetch runs unlocked, as the
    database itself still keeps the data consistent.
    """
    path = _lock_path(store, sid)
    fd = -1
    if path is not None and fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # private, like the database
    if fd < 0:
        yield True
        return
    locked = False
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(0.05, left))
            except OSError:  # e.g. ENOLCK on a network file system: run unlocked
                locked = True
                break
        yield locked
    finally:
        os.close(fd)  # releases the lock


def run_one(
    store: Store,
    source_cls: type[Source],
    table: Mapping[str, Any],
    *,
    ctx: SourceContext,
    window: Window | None = None,
    pricer: Callable[[UsageRecord], Any] | None = None,
    on_progress: Callable[[SourceContext], None] | None = None,
) -> SourceResult:
    """Run one source; never raises for source failures (KeyboardInterrupt excepted).

    Another fetch of the same source into the same database is waited for (``LOCK_WAIT``), then this
    one reads only what that one left; if it is still running, this one is skipped (see the module).
    """
    with source_lock(store, source_cls.id, LOCK_WAIT) as locked:  # the global: tests shrink it
        if not locked:
            ctx.close()
            return SourceResult(source_cls.id, "skipped", message=LOCKED_MESSAGE)
        return _run_one(store, source_cls, table, ctx=ctx, window=window, pricer=pricer, on_progress=on_progress)


def _run_one(
    store: Store,
    source_cls: type[Source],
    table: Mapping[str, Any],
    *,
    ctx: SourceContext,
    window: Window | None,
    pricer: Callable[[UsageRecord], Any] | None,
    on_progress: Callable[[SourceContext], None] | None,
) -> SourceResult:
    sid = source_cls.id
    result = SourceResult(sid, "ok")
    started = time.monotonic()
    started_at = iso(datetime.now(UTC))
    window = window or Window(start=None, end=ctx.now())
    session = store.session(sid, source_cls.kind, ctx.machine_name)
    try:
        settings = build_settings(source_cls.Settings, table, f"sources.{sid}")
        source = source_cls(settings, ctx)
        cursor = store.get_cursor(sid)
        last_tick = 0.0
        last_cursor: Mapping[str, Any] | None = None
        # a source with the bulk form yields RecordBatch (validated when built) instead of records
        bulk = getattr(source, "fetch_batches", None)
        prepare = BatchPreparer(session.encoding, pricer)
        ctx.prepare_batch = prepare if callable(bulk) else None
        for item in (bulk if callable(bulk) else source.fetch)(window, cursor):
            if isinstance(item, RecordBatch):
                if item.prepared is None or item.prepared[0] != session.encoding:
                    item = prepare(item)
                session.add_rows(item)
            elif isinstance(item, Cursor):
                last_cursor = dict(item.state)
                session.checkpoint(last_cursor)
            elif isinstance(item, UsageRecord):
                # priced here, before the store: the store keeps what it is given
                session.add(item, pricer(item) if pricer is not None and item.model else None)
            elif isinstance(item, QuotaSnapshot):
                session.add(item)
            else:
                raise InvalidRecord("item", f"fetch() yielded {type(item).__name__}", plugin=sid)
            if on_progress is not None:
                tick = time.monotonic()
                if tick - last_tick > 0.1:
                    last_tick = tick
                    on_progress(ctx)
        session.finish(last_cursor)
    except KeyboardInterrupt:
        session.abort()
        raise
    except Exception as exc:
        session.abort()
        if is_full(exc) or is_read_only(exc):
            # nothing more can be stored by any source: stop the whole fetch with one line
            ctx.close()
            raise _unstored(exc, store, sid, session.uncommitted) from exc
        if is_busy(exc):
            exc = StoreError(f"database is busy: another tokenmeter run is writing to it; "
                             f"{session.uncommitted} records read were not stored, try again when it has finished",
                             reason="busy")
            result.retryable = True
        if isinstance(exc, InvalidRecord) and not exc.plugin:
            exc = exc.with_plugin(sid)
        if isinstance(exc, TokenmeterError):
            message = str(exc)
            if isinstance(exc, ProviderError | ConfigError | StoreError) and not message.startswith(sid):
                message = f"{sid}: {message}"
            result.exit_code = exc.exit_code
        else:
            message = f"{sid}: unexpected {type(exc).__name__}: {exc}"
            result.exit_code = 6
        result.status = "error"
        result.message = _redact(message, ctx.secrets)
        result.traceback = _redact(traceback.format_exc(), ctx.secrets)
        if not result.retryable:  # the lock holder would make us wait again for nothing
            _bookkeeping(store, sid, store.record_error, sid, result.message)
    finally:
        ctx.close()
    result.seconds = time.monotonic() - started
    # after a failure only what the last checkpoint committed is stored, so report that
    counts = session.committed if result.status == "error" else session.counts
    result.new, result.updated = counts.new, counts.updated
    result.unchanged, result.snapshots = counts.unchanged, counts.snapshots
    result.skipped_lines = ctx.skipped
    result.skip_examples = [_redact(s, ctx.secrets) for s in ctx.skip_examples]
    result.unrecognised = ctx.unrecognised_count
    result.unrecognised_examples = [_redact(s, ctx.secrets) for s in ctx.unrecognised_examples]
    result.warnings = [_redact(w, ctx.secrets) for w in ctx.warnings]
    if result.retryable:
        return result
    _bookkeeping(
        store, sid, store.log_run,
        source=sid, started_at=started_at, finished_at=iso(datetime.now(UTC)), status=result.status,
        new=result.new, updated=result.updated, unchanged=result.unchanged, snapshots=result.snapshots,
        skipped=result.skipped_lines, seconds=round(result.seconds, 3),
        window_from=iso(window.start), window_to=iso(window.end), error=result.message or None,
    )
    return result


def _unstored(exc: BaseException, store: Store, sid: str, lost: int) -> StoreError:
    """The one line for a fetch the database cannot take (disk full, read-only file)."""
    what = (f"{lost} record{'s' if lost != 1 else ''} read from {sid} in this run were not stored" if lost
            else f"nothing more from {sid} could be stored")
    if is_full(exc):
        return StoreError(f"database {store.path}: the disk is full: {what}; the data stored before is "
                          "intact; free some space and run `tokenmeter fetch` again", reason="full")
    return StoreError(f"database {store.path} is read-only (the file or its folder is not writable): {what}; "
                      "reports and exports still work", reason="read-only")


def _bookkeeping(store: Store, sid: str, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Write a run's error or history row: skipped when another run holds the lock (the run's
    outcome is reported anyway); a full disk or read-only file stops the fetch with one line."""
    try:
        write(*args, **kwargs)
    except sqlite3.Error as exc:
        if is_busy(exc):
            return
        if is_full(exc) or is_read_only(exc):
            raise _unstored(exc, store, sid, 0) from exc
        raise


def select_sources(
    names: Sequence[str], config: Config, installed: Mapping[str, type[Source]]
) -> tuple[list[type[Source]], list[SourceResult]]:
    """Which sources to run, and which are skipped (with the reason)."""
    unknown = [n for n in names if n not in installed]
    if unknown:
        known = ", ".join(installed) or "none installed"
        raise ConfigError(f"unknown source {unknown[0]!r}; installed sources: {known}")
    if names:
        return [installed[n] for n in dict.fromkeys(names)], []
    run, skipped = [], []
    for sid, cls in installed.items():
        if not config.source_enabled(sid):
            skipped.append(SourceResult(sid, "skipped", message="disabled in config"))
            continue
        ctx = make_context(config, sid)
        try:
            settings = build_settings(cls.Settings, config.source_table(sid), f"sources.{sid}")
            reason = cls(settings, ctx).available()
        except ConfigError:
            run.append(cls)  # run it so the config error is reported properly
            continue
        except SourceDataError:
            # some of its data cannot be read (e.g. a log without read permission): run it, so it
            # stores what it can and reports the rest as its error instead of being skipped quietly
            run.append(cls)
            continue
        except TokenmeterError as exc:
            reason = str(exc)
        except Exception:  # a buggy check must not stop the others: run it, so a real failure is reported
            run.append(cls)
            continue
        finally:
            ctx.close()
        if reason:
            skipped.append(SourceResult(sid, "skipped", message=_redact(reason, ctx.secrets)))
        else:
            run.append(cls)
    return run, skipped


def make_context(config: Config, source_id: str, now: datetime | None = None) -> SourceContext:
    from .config import data_dir, fixed_now

    ctx = SourceContext(
        source_id,
        now=now or fixed_now(),
        timezone=config.timezone,
        machine_id=machine_id(),
        machine_name=config.machine_name,
        data_dir=data_dir() / "sources" / source_id,
        request_deadline=request_deadline(config),
    )
    for key, value in config.source_table(source_id).items():
        if key.endswith("_env") and isinstance(value, str) and not env_var_name(value):
            ctx.add_secret(value)  # a key pasted where its variable's name belongs: redact it everywhere
    return ctx


def run_fetch(
    store: Store,
    config: Config,
    names: Sequence[str],
    installed: Mapping[str, type[Source]],
    *,
    window: Window | None = None,
    on_progress: Callable[[SourceContext], None] | None = None,
    on_result: Callable[[SourceResult], None] | None = None,
    context_factory: Callable[[str], SourceContext] | None = None,
) -> list[SourceResult]:
    """Run the selected sources one after another; failures are isolated and reported.

    A read-only database, or a disk that fills up, stops the run with ``StoreError``.
    """
    if store.read_only:
        raise StoreError(f"database {store.path} is read-only (the file or its folder is not writable): "
                         "cannot store fetched data; reports and exports still work", reason="read-only")
    to_run, results = select_sources(names, config, installed)
    for r in results:
        if on_result:
            on_result(r)
    pricer = make_pricer(config)
    for cls in to_run:
        ctx = context_factory(cls.id) if context_factory else make_context(config, cls.id)
        r = run_one(store, cls, config.source_table(cls.id), ctx=ctx, window=window, pricer=pricer,
                    on_progress=on_progress)
        results.append(r)
        if on_result:
            on_result(r)
    if any(r.new or r.updated for r in results):
        refresh_rollup(store)
    return results


def exit_code_for(results: Sequence[SourceResult]) -> int:
    """0 all ok; one kind of failure and nothing stored → its code; a mix → 6."""
    failed = [r for r in results if r.status == "error"]
    if not failed:
        return 0
    ok = [r for r in results if r.status == "ok"]
    codes = {r.exit_code for r in failed}
    if not ok and len(codes) == 1:
        return codes.pop()
    return 6
