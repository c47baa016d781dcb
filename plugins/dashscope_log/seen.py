"""``SeenKeys``: the record keys one run has seen, in about 8 bytes each.

A big cold read meets hundreds of thousands of calls and must drop the few it meets twice (a
``/branch`` copy, the same file under two roots). A ``set`` of 240k hashes costs ~19 MB, an eighth
of the memory a whole ingest may use; here only the latest few thousand are in a set, older ones
in sorted ``array`` runs (never merged: no peak while merging), and a bitmap in front answers
"never seen" for nearly every new key without a search.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["SeenKeys"]


class SeenKeys:
    """A set of 64-bit hashes that only grows: ``first(h)`` is True the first time ``h`` comes."""

    RECENT = 1 << 15  # hashes kept in a set before they move into a sorted run
    BITS = 1 << 23  # bitmap size (1 MB): ~3 % false "maybe seen" at 240k keys

    def __init__(self) -> None:
        self._runs: list[array[int]] = []
        self._recent: set[int] = set()
        self._bits = bytearray(self.BITS >> 3)

    def __len__(self) -> int:
        return sum(map(len, self._runs)) + len(self._recent)

    def first(self, h: int) -> bool:
        """Remember ``h``; True if it was not there before."""
        b = h & (self.BITS - 1)
        bits = self._bits
        mask = 1 << (b & 7)
        if bits[b >> 3] & mask:  # maybe seen: look it up
            if h in self._recent:
                return False
            for run in self._runs:
                i = bisect_left(run, h)
                if i < len(run) and run[i] == h:
                    return False
        else:
            bits[b >> 3] |= mask
        self._recent.add(h)
        if len(self._recent) >= self.RECENT:
            self._runs.append(array("q", sorted(self._recent)))
            self._recent = set()
        return True
