"""Acme's client call log: one JSON object per line, one line per API call.

Keys: ``time`` (ISO 8601 with offset), ``model``, ``input_tokens`` (all prompt tokens),
``cached_tokens`` (the cached part), ``output_tokens``; optional ``region`` (``eu`` for calls
served from Acme's EU data centres). No cost: tokenmeter estimates it from the registered prices.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tokenmeter import Cursor, Source, SourceDataError, UsageRecord, parse_time


class AcmeLogSource(Source):
    """Every API call from Acme's client log (read whole; re-reads replace the same rows)."""

    id = "acme-log"
    provider = "acme"
    kind = "log"
    description = "Acme client call log (JSON lines)"

    @dataclass
    class Settings:
        path: str = field(default="~/.acme/calls.jsonl", metadata={"help": "The call log to read (~ expanded)."})

    def available(self):
        path = Path(self.settings.path).expanduser()
        return None if path.is_file() else f"no file at {path}"

    def fetch(self, window, cursor):
        path = Path(self.settings.path).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SourceDataError(f"cannot read {path} ({exc.strerror}); set path in [sources.{self.id}]") from None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = self.parse(json.loads(line), account=self.ctx.machine_id)
            except (ValueError, KeyError, TypeError) as exc:
                self.ctx.skip(f"{path.name}:{lineno}", str(exc))
                continue
            yield record
        yield Cursor({"lines": len(lines)})

    def parse(self, call, account):
        """One log line -> one UsageRecord (ValueError/KeyError if the line is bad)."""
        start = parse_time(call["time"])
        if start is None:
            raise ValueError(f"bad time {call['time']!r}")
        provider = "acme-eu" if call.get("region") == "eu" else "acme"
        # the same call read twice has the same content, hence the same key: the row is replaced
        key = hashlib.sha256(json.dumps(call, sort_keys=True).encode()).hexdigest()[:16]
        return UsageRecord(
            key=key,
            start=start,
            provider=provider,
            model=call["model"],
            account=account,
            requests=1,
            input_tokens=int(call["input_tokens"]),
            cache_read_tokens=int(call.get("cached_tokens") or 0),
            output_tokens=int(call["output_tokens"]),
        )
