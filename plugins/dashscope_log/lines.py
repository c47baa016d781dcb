"""``LineLocator``: a byte offset in a log file as its line number, counted only when a message needs it."""

from __future__ import annotations

__all__ = ["LineLocator"]

READ_SIZE = 4 << 20


class LineLocator:
    """Turn a byte offset into a 1-based line number, lazily (only used for skip messages)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pos = 0
        self._line = 1

    def line_at(self, offset: int) -> int:
        if offset < self._pos:
            self._pos, self._line = 0, 1
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                left = offset - self._pos
                while left > 0:
                    data = f.read(min(left, READ_SIZE))
                    if not data:
                        break
                    self._line += data.count(b"\n")
                    left -= len(data)
        except OSError:
            return 0
        self._pos = offset
        return self._line

    def where(self, offset: int) -> str:
        return f"{self.path}:{self.line_at(offset)}"
