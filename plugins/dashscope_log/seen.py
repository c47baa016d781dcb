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
        return bool(self.new([h]))

    def new(self, hashes: list[int]) -> list[int]:
        """Remember ``hashes``; the positions of those not seen before (nor earlier in the list)."""
        bits, recent, runs, size = self._bits, self._recent, self._runs, self.BITS - 1
        out = []
        for i, h in enumerate(hashes):
            b = h & size
            mask = 1 << (b & 7)
            if bits[b >> 3] & mask:  # maybe seen: look it up
                if h in recent or any(_has(run, h) for run in runs):
                    continue
            else:
                bits[b >> 3] |= mask
            recent.add(h)
            out.append(i)
            if len(recent) >= self.RECENT:
                runs.append(array("q", sorted(recent)))
                recent = self._recent = set()
        return out


def _has(run: array[int], h: int) -> bool:
    i = bisect_left(run, h)
    return i < len(run) and run[i] == h
