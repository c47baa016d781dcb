"""Finding log files: globs expanded, and files or folders that cannot be read never dropped in silence."""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Iterable

from tokenmeter import SourceDataError

__all__ = ["Unreadable", "check_readable", "error_reason", "expand_paths", "unreadable_error"]


class Unreadable(str):
    """A path ``expand_paths`` found but cannot read: a file without read permission, or a folder
    it cannot list or enter (whose files it therefore cannot see). ``ingest`` reports it."""

    reason: str

    def __new__(cls, path: str, reason: str = "permission denied") -> Unreadable:
        self = super().__new__(cls, path)
        self.reason = reason
        return self


def _access(path: str, mode: int) -> bool:
    """May this process ``mode`` (``os.R_OK``/``X_OK``) ``path``? (a seam, like ``_open``)"""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _hidden_by(path: str) -> str | None:
    """The folder that hides ``path`` when a permission is why ``path`` cannot be seen, else None.

    ``stat`` says EACCES when a folder on the way cannot be entered; the nearest one that can still
    be stat'ed is the one to fix (ENOENT means the path just is not there: not our business here).
    """
    try:
        os.stat(path)
        return None
    except PermissionError:
        pass
    except OSError:
        return None
    d = os.path.dirname(path)
    while True:
        try:
            os.stat(d)
            return d
        except PermissionError:
            parent = os.path.dirname(d)
            if parent == d:
                return d
            d = parent
        except OSError:
            return None


def _blocked_folders(pattern: str) -> list[Unreadable]:
    """Folders on the way to ``pattern``'s matches that cannot be listed or entered.

    ``glob`` skips those in silence; walking the pattern's folder parts with the same matching finds
    them. Listing a folder (a wildcard follows) needs read and execute; passing through it (a plain
    name follows) needs execute only.
    """
    parts = pattern.split(os.sep)
    i = 0
    while i < len(parts) - 1 and not glob.has_magic(parts[i]):
        i += 1
    prefix = os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else os.curdir)
    hidden = _hidden_by(prefix)
    if hidden is not None:
        return [Unreadable(hidden)]
    if not os.path.isdir(prefix):
        return []
    out: list[Unreadable] = []
    level = [prefix]
    for j in range(i, len(parts)):
        part, last = parts[j], j == len(parts) - 1
        need = os.X_OK | (os.R_OK if glob.has_magic(part) else 0)
        nxt: list[str] = []
        for d in level:
            if not _access(d, need):
                out.append(Unreadable(d))
            elif not last:
                if glob.has_magic(part):
                    nxt += (m for m in sorted(glob.glob(os.path.join(glob.escape(d), part))) if os.path.isdir(m))
                elif os.path.isdir(os.path.join(d, part)):
                    nxt.append(os.path.join(d, part))
        level = nxt
    return out


def expand_paths(patterns: Iterable[str]) -> list[str]:
    """Expand ``~`` and globs; return existing regular files, absolute, sorted, without duplicates.

    Files and folders that exist but cannot be read come back as ``Unreadable`` paths (``ingest``
    reports them; ``check_readable`` raises for them), never dropped in silence.
    """
    out: dict[str, str] = {}
    for pattern in patterns:
        pattern = os.path.expanduser(os.path.expandvars(pattern))
        magic = glob.has_magic(pattern)
        matches = glob.glob(pattern) if magic else [pattern]
        for m in sorted(matches):
            if os.path.isfile(m):
                path = os.path.abspath(m)
                out.setdefault(path, path if _access(m, os.R_OK) else Unreadable(path))
            elif not magic and (hidden := _hidden_by(m)) is not None:
                out.setdefault(os.path.abspath(hidden), Unreadable(os.path.abspath(hidden)))
        if magic:
            for blocked in _blocked_folders(pattern):
                path = os.path.abspath(blocked)
                out.setdefault(path, Unreadable(path, blocked.reason))
    return list(out.values())


def unreadable_error(paths: list[Unreadable], *, stored: bool = False) -> SourceDataError:
    """One line: the first unreadable path, how many more, what was done and how to fix it."""
    first = paths[0]
    more = f" (and {len(paths) - 1} more unreadable path{'s' if len(paths) > 2 else ''})" if len(paths) > 1 else ""
    done = "; the readable logs were stored" if stored else ""
    return SourceDataError(
        f"cannot read {first}: {first.reason}{more}{done}; give the user running tokenmeter read access "
        "(and execute on folders), or leave the path out of the source's settings")


def check_readable(paths: Iterable[str]) -> None:
    """Raise ``SourceDataError`` naming the first ``Unreadable`` path in ``paths`` (for ``available()``:
    the host then runs the source, which stores the readable files and reports this as its error)."""
    bad = list({p: p for p in paths if isinstance(p, Unreadable)}.values())
    if bad:
        raise unreadable_error(bad)



def error_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower() if exc.errno != errno.EISDIR else "is a folder"


# -- reading -------------------------------------------------------------------------------------
# Events of one file: ("rows", rows, nbytes) | ("skips", [(where, reason)]) | ("unrecognised", [where])
# | ("entry", entry, final) | ("unreadable", reason)
