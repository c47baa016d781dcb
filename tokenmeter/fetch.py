"""Running sources: each isolated, records and cursor committed together, a summary per source.

Which sources run: names given on the command line run even without a config table (with their
default settings). With no names, every installed source that is enabled and ``available()``
runs; the others are listed as skipped with the reason, which is not an error.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import Config, build_settings, env_var_name, machine_id
from .errors import ConfigError, InvalidRecord, ProviderError, TokenmeterError
from .records import Cursor, QuotaSnapshot, UsageRecord
from .sources import Source, SourceContext, Window
from .store import Store, iso

__all__ = ["SourceResult", "exit_code_for", "make_pricer", "run_fetch", "run_one", "select_sources"]


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
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0
    traceback: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "traceback"}
        out["seconds"] = round(self.seconds, 3)
        return out


def make_pricer(config: Config | None) -> Callable[[UsageRecord], Any] | None:
    """The function that estimates a record's cost from the price tables (None if unavailable)."""
    try:
        from .pricing import PriceBook
    except ImportError:  # pragma: no cover - the pricing package ships with tokenmeter
        return None
    book = PriceBook.load(overrides=(config.prices if config else None) or None)

    def price(r: UsageRecord) -> Any:
        return book.estimate(
            model=r.model, provider=r.provider, day=r.start.astimezone(UTC).date(),
            input_tokens=r.input_tokens, output_tokens=r.output_tokens,
            cache_read_tokens=r.cache_read_tokens, cache_write_tokens=r.cache_write_tokens,
            reasoning_tokens=r.reasoning_tokens, requests=r.requests,
        )

    return price


def _redact(text: str, secrets: Iterable[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


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
    """Run one source; never raises for source failures (KeyboardInterrupt excepted)."""
    sid = source_cls.id
    result = SourceResult(sid, "ok")
    started = time.monotonic()
    started_at = iso(datetime.now(UTC))
    window = window or Window(start=None, end=ctx.now())
    session = store.session(sid, source_cls.kind, pricer=pricer)
    try:
        settings = build_settings(source_cls.Settings, table, f"sources.{sid}")
        source = source_cls(settings, ctx)
        cursor = store.get_cursor(sid)
        last_tick = 0.0
        last_cursor: Mapping[str, Any] | None = None
        for item in source.fetch(window, cursor):
            if isinstance(item, Cursor):
                last_cursor = dict(item.state)
                session.checkpoint(last_cursor)
            elif isinstance(item, UsageRecord | QuotaSnapshot):
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
        if isinstance(exc, InvalidRecord) and not exc.plugin:
            exc = exc.with_plugin(sid)
        if isinstance(exc, TokenmeterError):
            message = str(exc)
            if isinstance(exc, ProviderError | ConfigError) and not message.startswith(sid):
                message = f"{sid}: {message}"
            result.exit_code = exc.exit_code
        else:
            message = f"{sid}: unexpected {type(exc).__name__}: {exc}"
            result.exit_code = 6
        result.status = "error"
        result.message = _redact(message, ctx.secrets)
        result.traceback = _redact(traceback.format_exc(), ctx.secrets)
        store.record_error(sid, result.message)
    finally:
        ctx.close()
    result.seconds = time.monotonic() - started
    # after a failure only what the last checkpoint committed is stored, so report that
    counts = session.committed if result.status == "error" else session.counts
    result.new, result.updated = counts.new, counts.updated
    result.unchanged, result.snapshots = counts.unchanged, counts.snapshots
    result.skipped_lines = ctx.skipped
    result.skip_examples = [_redact(s, ctx.secrets) for s in ctx.skip_examples]
    result.warnings = [_redact(w, ctx.secrets) for w in ctx.warnings]
    store.log_run(
        source=sid, started_at=started_at, finished_at=iso(datetime.now(UTC)), status=result.status,
        new=result.new, updated=result.updated, unchanged=result.unchanged, snapshots=result.snapshots,
        skipped=result.skipped_lines, seconds=round(result.seconds, 3),
        window_from=iso(window.start), window_to=iso(window.end), error=result.message or None,
    )
    return result


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
        data_dir=data_dir() / "sources" / source_id,
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
    """Run the selected sources one after another; failures are isolated and reported."""
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
