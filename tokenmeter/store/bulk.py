"""Rows of a ``RecordBatch`` in the store's form, made where the batch was parsed (a worker process).

``encode_rows`` gives the ``usage`` columns that vary per row; ``rollup_sums`` the rows' 15-minute
rollup sums, which the write session adds to the rollup when every row turned out new (else the
rollup is summed from the inserted rows in SQL, as before). Both are pure functions of the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from ..batch import RecordBatch
from .common import ROLLUP, iso

__all__ = ["NanoEstimate", "Sums", "encode_rows", "rollup_sums"]

NanoEstimate = tuple[int, str, str]  # (cost in 10⁻⁹ of the currency, currency, basis)
# (bucket, model, project, agent, est_currency) -> [records, calls, requests, input, output,
# cache_read, cache_write, reasoning, total, est_cost]; None where SQL's SUM gives NULL
Sums = dict[tuple[Any, ...], list[Any]]


def encode_rows(batch: RecordBatch, estimates: Sequence[NanoEstimate | None], source: str,
                kind: str) -> tuple[tuple[Any, ...], ...]:
    """A batch's rows in ``_BULK_COLUMNS`` form, with one estimate per row (or None).

    The same id, columns and content hash as ``WriteSession._row`` gives each row's ``UsageRecord``,
    built in one loop without a record per row; pure, so it may run where the batch was parsed.
    """
    account, provider = batch.account, batch.provider
    id_prefix = f"{source}\x1f{account or ''}\x1f"
    # the repr of the tuple _row hashes for a record with end = start and no cost of its own, written
    # out (tests compare it with _row's): the batch's constants once, an ISO time needs no escaping
    head = f"({kind!r}, {account!r}, "
    provider_r = f", {provider!r}, "
    blake2b, dumps = hashlib.blake2b, json.dumps
    out = []
    for row, est in zip(batch.rows, estimates, strict=True):
        key, start, model, project, session, agent, req, inp, out_t, cr, cw, rs, total, det = row
        start_iso = (start.isoformat().replace("+00:00", "Z") if start.tzinfo is UTC else iso(start))
        details = dumps(dict(det), sort_keys=True, default=str, separators=(",", ":")) if det else "{}"
        content = (f"{head}{key!r}{provider_r}{model!r}, {project!r}, {session!r}, '{start_iso}', '{start_iso}', "
                   f"{req!r}, None, {inp!r}, {out_t!r}, {cr!r}, {cw!r}, {rs!r}, {total!r}, None, None, None, "
                   f"{details!r}" + (f", {agent!r})" if agent is not None else ")"))
        nanos, currency, basis = est if est is not None else (None, None, None)
        out.append((
            blake2b((id_prefix + key).encode(), digest_size=16).hexdigest(), key, model, project, session,
            agent, start_iso, int(start.timestamp()), req, inp, out_t, cr, cw, rs, total, nanos, currency,
            basis, details, blake2b(content.encode(), digest_size=12).hexdigest(),
        ))
    return tuple(out)


def rollup_sums(rows: Sequence[tuple[Any, ...]]) -> Sums:
    """The rollup sums of ``encode_rows`` rows (no cost of their own), as the rollup's SQL sums them:
    ``SUM`` of only NULLs is NULL, calls count a row without requests as one, a missing total is
    input + output."""
    out: Sums = {}
    for r in rows:
        ts, req, inp, o, total = r[7], r[8], r[9], r[10], r[14]
        if total is None and inp is not None and o is not None:
            total = inp + o
        _add(out, (ts - ts % ROLLUP, r[2], r[3], r[5], r[16]),
             (1, 1 if req is None else req, req, inp, o, r[11], r[12], r[13], total, r[15]))
    return out


def merge_sums(into: Sums, more: Sums) -> None:
    """Add ``more`` to ``into`` (the same NULL rules)."""
    for k, vals in more.items():
        _add(into, k, vals)


def _add(sums: Sums, key: tuple[Any, ...], vals: Sequence[Any]) -> None:
    acc = sums.get(key)
    if acc is None:
        sums[key] = list(vals)
        return
    for i, v in enumerate(vals):
        if v is not None:
            a = acc[i]
            acc[i] = v if a is None else a + v
