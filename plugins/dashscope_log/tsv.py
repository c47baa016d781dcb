"""The DashScope TSV usage log: ``timestamp model provider input_tokens output_tokens cost_usd``.

Keys. Each line is one call, so two identical lines are two calls, yet re-reading the file (after
truncation, replacement, or as a rotated copy) must produce the same keys. The key is
``"{timestamp}:{h}:{n}"`` where ``h`` is a CRC-32 of the first five fields (timestamp, model,
provider, input and output tokens) and ``n`` counts earlier lines *of the same file* with the same
hash. The count is a pure function of the file's content, so any re-read from byte 0 reproduces it.
(A hash collision only bumps ``n``: keys stay distinct, nothing is lost.) Identical lines share a
timestamp, so they are close together in a time-ordered log: only the last ``MAX_COUNTS`` hashes
are remembered (in the cursor, in order), which keeps the state bounded.

The cost is left out of the hash on purpose: a last line without its newline is read (the sample
logs end that way) but may still be growing, and only its last field can be cut while the row
still has six fields; the completed line then gets the same key and replaces the early reading.
(With a header that reorders the columns, such a line is read only once its key fields are complete.)

The writer (the orchestrator's ``brain.py``) logs ``result.get('model', '?')`` and
``result.get('provider', '?')``: ``?`` means unknown, so the record gets no model (unpriced, not a
model named "?") and the source's default provider label. Its ``cost_usd`` is its own flat-rate
figure (one rate for every model), kept as the ``logged`` cost; the price table's estimate sits
beside it in ``tokenmeter reconcile``. Numbers must be plain ASCII decimals: ``int()`` and
``Decimal()`` would also take ``1_000`` and Arabic-Indic digits, which no writer produces.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokenmeter import Cursor, Source, SourceDataError, UsageRecord, Window

from .demo import copy_demo_data
from .lines import LineLocator
from .tail import check_readable, expand_paths, ingest

__all__ = ["DEFAULT_PATHS", "DEFAULT_TSV", "DEFAULT_VISION_TSV", "DashscopeLogSource", "TsvParser"]

DEFAULT_TSV = "/opt/ai-orchestrator/var/logs/qwen-usage.tsv"
# the same writer logs vision calls (provider qwen-vl-singapore) to a second file, same columns
DEFAULT_VISION_TSV = "/opt/ai-orchestrator/var/logs/qwen-vision-usage.tsv"
DEFAULT_PATHS = (DEFAULT_TSV, DEFAULT_VISION_TSV)
UNKNOWN = "?"  # what the writer logs when the API result named no model or provider
DEFAULT_PROVIDER = "qwen"
# ASCII only (re.ASCII): str.isdigit, int() and Decimal() also accept "1_000" and non-ASCII digits
_INT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_COST = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)
COLUMNS = ("timestamp", "model", "provider", "input_tokens", "output_tokens", "cost_usd")
MAX_COUNTS = 256
# Larger values are corruption; they would also overflow the store's 64-bit integers and fail the run.
MAX_TOKENS = 10**12
MAX_COST = Decimal(10**6)
# (key, start, provider, model, input_tokens, output_tokens, cost)
Row = tuple[str, datetime, str, "str | None", int, int, "Decimal | None"]
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


def parse_timestamp(text: str) -> datetime:
    """ISO-8601 (``Z`` or an offset; a naive time is taken as UTC) -> aware UTC datetime."""
    ts = datetime.fromisoformat(text)
    tz = ts.tzinfo
    if tz is UTC:  # "Z": the common case
        return ts
    if tz is None:
        return ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past datetime.max in UTC
        raise ValueError(f"timestamp out of range: {text!r}") from None


_DEFAULT = list(range(len(COLUMNS)))


def _is_header(fields: list[str]) -> bool:
    names = {f.strip().lower() for f in fields}
    return names.issuperset(COLUMNS)


class TsvParser:
    """Parses one TSV file from ``start``; keeps duplicate counters and the column map as state."""

    block_size = 1 << 20  # ~15k rows per block

    def __init__(self, path: str, start: int, state: dict[str, Any] | None, opts: Any = None) -> None:
        self.locator = LineLocator(path)
        self.skips: list[tuple[str, str]] = []
        state = state or {}
        cols = state.get("cols")
        self.cols: list[int] = cols if cols and cols != _DEFAULT else _DEFAULT
        self.counts: dict[str, int] = {h: n for h, n in state.get("n", [])}

    def state(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.cols is not _DEFAULT:
            out["cols"] = self.cols
        if self.counts:
            out["n"] = [[h, n] for h, n in self.counts.items()]
        return out or None

    def block(self, buf: bytes, end: int, base: int) -> list[Row]:
        rows = []
        pos = 0
        for line in buf[:end].split(b"\n")[:-1]:
            row = self._line(line, base + pos, final=True)
            pos += len(line) + 1
            if row is not None:
                rows.append(row)
        return rows

    def tail(self, data: bytes, base: int) -> list[Row]:
        saved = dict(self.counts)
        row = self._line(data, base, final=False)
        self.counts = saved  # the offset stays before this line: so must the counters
        return [row] if row is not None else []

    def _skip(self, offset: int, reason: str, final: bool) -> None:
        if final:  # an unterminated last line may still be being written: not an error yet
            self.skips.append((self.locator.where(offset), reason))

    def _line(self, line: bytes, offset: int, *, final: bool) -> Row | None:
        if line[-1:] == b"\r":
            line = line[:-1]
        try:
            text = line.decode()
        except UnicodeDecodeError:
            self._skip(offset, "not UTF-8", final)
            return None
        fields = text.split("\t")
        if not fields[0][:1].isdigit():
            if not text.strip():
                return None
            if _is_header(fields):
                if offset == 0:
                    self._header(fields)
                else:
                    self._skip(offset, "repeated header line", final)
                return None
        cols = self.cols
        if cols is _DEFAULT and len(fields) >= 6:
            ts_s, model, provider, in_s, out_s, cost_s = fields[:6]
        elif len(fields) > max(cols):
            if not final and len(fields) <= max(cols[:5]) + 1:
                return None  # a key field may still be growing: only the cost may be cut (see above)
            ts_s, model, provider, in_s, out_s, cost_s = (fields[i] for i in cols)
        else:
            self._skip(offset, f"short row ({len(fields)} fields, expected {len(COLUMNS)})", final)
            return None
        try:
            start = parse_timestamp(ts_s.strip())
        except ValueError:
            self._skip(offset, f"bad timestamp {ts_s[:40]!r}", final)
            return None
        if not (_INT.fullmatch(in_s) and _INT.fullmatch(out_s)):
            self._skip(offset, "non-numeric token count", final)
            return None
        try:
            in_tok, out_tok = int(in_s), int(out_s)
        except ValueError:  # over Python's int() digit limit (4300): far over MAX_TOKENS
            self._skip(offset, "token count over 10^12", final)
            return None
        if in_tok < 0 or out_tok < 0:
            self._skip(offset, "negative token count", final)
            return None
        if in_tok > MAX_TOKENS or out_tok > MAX_TOKENS:
            self._skip(offset, "token count over 10^12", final)
            return None
        cost: Decimal | None = None
        if cost_s and not cost_s.isspace():
            if not _COST.fullmatch(cost_s):  # also NaN, Infinity, 1_000, non-ASCII digits
                self._skip(offset, "non-numeric cost_usd", final)
                return None
            try:
                cost = Decimal(cost_s)
            except InvalidOperation:  # the pattern admits only what Decimal parses; kept as a guard
                self._skip(offset, "non-numeric cost_usd", final)
                return None
            if cost < 0:  # the writer multiplies token counts by positive rates: corruption
                self._skip(offset, "negative cost_usd", final)
                return None
            if cost > MAX_COST:
                self._skip(offset, "cost_usd out of range", final)
                return None
        if cols is _DEFAULT and len(fields) == 6:
            prefix = line[:line.rfind(b"\t")]  # the raw bytes of the first five fields
        else:
            prefix = "\t".join((ts_s, model, provider, in_s, out_s)).encode()
        digest = f"{zlib.crc32(prefix):08x}"
        counts = self.counts
        n = counts.pop(digest, 0)
        counts[digest] = n + 1  # re-inserted: most recent last, so eviction drops the oldest
        if len(counts) > MAX_COUNTS:
            del counts[next(iter(counts))]
        model, provider = model.strip(), provider.strip()
        return (f"{ts_s.strip()}:{digest}:{n}", start,
                provider if provider and provider != UNKNOWN else DEFAULT_PROVIDER,
                model if model and model != UNKNOWN else None, in_tok, out_tok, cost)

    def _header(self, fields: list[str]) -> None:
        names = [f.strip().lower() for f in fields]
        cols = [names.index(c) for c in COLUMNS]
        self.cols = _DEFAULT if cols == _DEFAULT else cols


class DashscopeLogSource(Source):
    """DashScope usage log written by the orchestrator (one TSV line per API call, logged USD)."""

    id = "dashscope-log"
    provider = DEFAULT_PROVIDER
    kind = "log"
    description = "DashScope TSV usage logs (qwen-usage.tsv, qwen-vision-usage.tsv), read incrementally"

    @dataclass
    class Settings:
        paths: list[str] = field(
            default_factory=lambda: list(DEFAULT_PATHS),
            metadata={"help": "TSV log files or globs (~ expanded), e.g. include rotated 'qwen-usage.tsv*'; "
                              "default: qwen-usage.tsv and qwen-vision-usage.tsv"},
        )

    @classmethod
    def demo_settings(cls, workdir: Path) -> dict[str, Any] | None:
        """The demo reads a sample ``qwen-usage.tsv`` (copied to ``workdir``)."""
        return {"paths": [str(copy_demo_data("qwen-usage.tsv", workdir))]}

    def _files(self) -> list[str]:
        files = expand_paths(self.settings.paths)
        return [f for f in files if not f.endswith(COMPRESSED)]

    def available(self) -> str | None:
        files = self._files()
        check_readable(files)  # raises: the host runs the source anyway, so the error is reported
        if files:
            return None
        return f"no log files at {', '.join(self.settings.paths)}"

    def fetch(self, window: Window, cursor: Any) -> Iterator[UsageRecord | Cursor]:
        files = expand_paths(self.settings.paths)
        if not files:
            # only reached when the source is named (`tokenmeter fetch dashscope-log`): else
            # available() skips it. Say where we looked and which key to fix, not "0 new".
            raise SourceDataError(
                f"no log file at {', '.join(self.settings.paths)}: set `paths` in [sources.{self.id}] of the "
                "config to the TSV files the orchestrator writes", source=self.id)
        compressed = [f for f in files if f.endswith(COMPRESSED)]
        if compressed:
            self.ctx.warn(f"{self.id}: ignoring {len(compressed)} compressed file(s), e.g. {compressed[0]}")
        account = self.ctx.machine_id

        def to_record(row: Row) -> UsageRecord:
            key, start, provider, model, in_tok, out_tok, cost = row
            return UsageRecord(
                key=key,
                start=start,
                provider=provider,
                model=model,
                account=account,
                requests=1,
                input_tokens=in_tok,
                output_tokens=out_tok,
                cost=cost,
                currency="USD" if cost is not None else None,
                cost_kind="logged" if cost is not None else None,
            )

        yield from ingest(self.ctx, cursor, [f for f in files if f not in compressed], TsvParser, None,
                          to_record, window)
