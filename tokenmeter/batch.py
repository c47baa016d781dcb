"""``RecordBatch``: many usage records of one provider and account as compact tuples.

The bulk path for big log sources: a source that reads hundreds of thousands of calls can hand the
host tuples instead of one ``UsageRecord`` each (a source offers it with a ``fetch_batches`` method
that yields ``RecordBatch`` and ``Cursor``; the host then uses it instead of ``fetch``). Validation
moves, it does not disappear: a batch checks every row when it is built (possibly in a worker
process), with the same rules as ``UsageRecord`` for these fields, and raises the same
``InvalidRecord``. Once built, a batch is immutable, so the host trusts it.

Each row is a tuple in ``RecordBatch.FIELDS`` order. A row is one instant (``end`` = ``start``)
with no cost of its own (an estimate is still made from the price tables); ``details`` is a dict
or None.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from .errors import InvalidRecord
from .records import UsageRecord

__all__ = ["ROW_FIELDS", "RecordBatch"]

ROW_FIELDS = (
    "key", "start", "model", "project", "session", "agent", "requests", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens", "details",
)
_WIDTH = len(ROW_FIELDS)


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Rows (tuples in ``FIELDS`` order) of one ``provider`` and ``account``, validated on creation."""

    FIELDS: ClassVar[tuple[str, ...]] = ROW_FIELDS
    provider: str
    account: str | None
    rows: tuple[tuple[Any, ...], ...]
    # the host's storage form of the rows, made where the batch was parsed (``SourceContext.
    # prepare_batch``); sources leave it None
    prepared: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.rows, tuple):
            object.__setattr__(self, "rows", tuple(self.rows))
        if not isinstance(self.provider, str) or not self.provider:
            raise InvalidRecord("provider", "expected a non-empty str")
        if self.account is not None and (not isinstance(self.account, str) or not self.account):
            raise InvalidRecord("account", "expected a non-empty str or None")
        _check_rows(self)

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, rows: Iterable[tuple[Any, ...]]) -> RecordBatch:
        """A batch of some of these rows (already checked: not checked again; not prepared)."""
        return self._trusted(tuple(rows), None)

    def pick(self, indices: Iterable[int]) -> RecordBatch:
        """A batch of the rows at ``indices``, with their prepared form if this batch has one (what
        the host derived from all the rows, e.g. their sums, is dropped)."""
        idx = list(indices)
        prepared = self.prepared
        if prepared is not None:
            prepared = (prepared[0], tuple(prepared[1][i] for i in idx))
        return self._trusted(tuple(self.rows[i] for i in idx), prepared)

    def with_prepared(self, prepared: Any) -> RecordBatch:
        """This batch with the host's storage form of its rows (see ``SourceContext.prepare_batch``)."""
        return self._trusted(self.rows, prepared)

    def _trusted(self, rows: tuple[tuple[Any, ...], ...], prepared: Any) -> RecordBatch:
        out = object.__new__(RecordBatch)
        object.__setattr__(out, "provider", self.provider)
        object.__setattr__(out, "account", self.account)
        object.__setattr__(out, "rows", rows)
        object.__setattr__(out, "prepared", prepared)
        return out

    def record(self, row: tuple[Any, ...]) -> UsageRecord:
        """One row as the ``UsageRecord`` it stands for."""
        key, start, model, project, session, agent, req, inp, out, cr, cw, rs, total, details = row
        return UsageRecord(
            key=key, start=start, provider=self.provider, model=model, account=self.account, project=project,
            session=session, agent=agent, requests=req, input_tokens=inp, output_tokens=out,
            cache_read_tokens=cr, cache_write_tokens=cw, reasoning_tokens=rs, total_tokens=total,
            details=details if details is not None else {},
        )

    def records(self) -> Iterator[UsageRecord]:
        """Every row as a ``UsageRecord`` (for callers that want records, e.g. ``Source.fetch``)."""
        return map(self.record, self.rows)


def _check_rows(batch: RecordBatch) -> None:
    # The common case in plain type tests (a bulk ingest checks every row); anything unusual is
    # decided by building the UsageRecord, so the rules and the error messages are exactly its own.
    for row in batch.rows:
        if type(row) is not tuple or len(row) != _WIDTH:
            raise InvalidRecord("row", f"expected a tuple of {_WIDTH} fields ({', '.join(ROW_FIELDS)})")
        key, start, model, project, session, agent, req, inp, out, cr, cw, rs, total, details = row
        if (
            type(key) is not str or not key
            or not isinstance(start, datetime) or start.utcoffset() is None
            or (model is not None and (type(model) is not str or not model))
            or (project is not None and (type(project) is not str or not project))
            or (session is not None and (type(session) is not str or not session))
            or (agent is not None and (type(agent) is not str or not agent))
            or (details is not None and not isinstance(details, Mapping))
            or not _counts_ok(req, inp, out, cr, cw, rs, total)
        ):
            batch.record(row)  # raises the InvalidRecord a UsageRecord would (or accepts, e.g. a str subclass)


def _counts_ok(*counts: Any) -> bool:
    for v in counts:
        if v is not None and (type(v) is not int or v < 0):
            return False
    _, inp, out, cr, cw, rs, _ = counts
    if inp is not None and ((cr or 0) + (cw or 0)) > inp:
        return False
    return not (rs is not None and out is not None and rs > out)
