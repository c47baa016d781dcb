"""Finding log files: globs expanded, and files or folders that cannot be read never dropped in silence."""

from __future__ import annotations

import errno
import glob
import json
import os
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from tokenmeter import SourceDataError

__all__ = ["Folder", "FolderCache", "Unreadable", "check_readable", "error_reason", "expand_paths", "list_folder",
           "unreadable_error"]


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
    return os.access(path, mode, effective_ids=_EFFECTIVE_IDS)


_EFFECTIVE_IDS = os.access in os.supports_effective_ids  # asked once: a walk checks thousands of files


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


# -- listing folders -----------------------------------------------------------------------------
class Folder(NamedTuple):
    """What a walk needs of one folder: its sub-folders and its ``*.jsonl`` files, by name, sorted
    (symbolic links followed, as ``DirEntry.is_dir()``/``is_file()`` do)."""

    path: str
    dirs: list[str]
    jsonl: list[str]


def list_folder(path: str, blocked: list[str], seen: list[tuple[str, int]] | None = None,
                cache: FolderCache | None = None) -> Folder:
    """``path``'s ``Folder``; one that exists but cannot be listed goes to ``blocked`` (never
    skipped quietly) and comes back empty. ``seen`` collects (folder, mtime): a file added or
    removed changes its folder's. ``cache`` may answer instead of listing the folder again (see
    ``FolderCache``); the permission check is made either way."""
    kept = None
    try:
        st = os.stat(path) if seen is not None or cache is not None else None
        if seen is not None and st is not None:
            seen.append((path, st.st_mtime_ns))
        kept = cache.get(path, st) if cache is not None and st is not None else None
        if kept is None:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return Folder(path, [], [])
    except OSError:
        blocked.append(path)
        return Folder(path, [], [])
    if not _access(path, os.R_OK | os.X_OK):  # root lists anything: the permission decides
        blocked.append(path)
        return Folder(path, [], [])
    if kept is not None:
        return kept
    folder = Folder(path, [e.name for e in entries if e.is_dir()],
                    [e.name for e in entries if e.name.endswith(".jsonl") and e.is_file()])
    if cache is not None and st is not None:
        # a link's target can change without its folder changing: such a folder is listed each time
        cache.put(folder, st, links=any(e.is_symlink() for e in entries))
    return folder


class FolderCache:
    """Folder listings kept between runs in a small JSON file, so that a warm run stats a folder
    instead of listing it (most of a big tree is finished subagent folders that never change).

    A listing is used only while its folder's change time, inode and device are the same: adding,
    removing or renaming an entry, or a chmod, sets the change time. A folder changed less than
    ``RACY_NS`` before the walk is listed again next time (a change in the same clock tick would
    leave the time as it was). The file is only an optimisation: unreadable, corrupt or of another
    version, it is ignored; when it cannot be written, the next run lists the folders again.
    """

    VERSION = 1
    RACY_NS = 2_000_000_000

    def __init__(self, file: str | None) -> None:
        self.file = file
        self._old: dict[str, list[Any]] | None = None  # read on first use
        self._new: dict[str, list[Any]] = {}
        self._since = 0
        self._stored = False

    def begin(self) -> None:
        """Start a walk: only the folders it visits are kept."""
        self._new = {}
        self._since = time.time_ns() - self.RACY_NS
        self._stored = False

    def get(self, path: str, st: os.stat_result) -> Folder | None:
        if self._old is None:
            self._old = self._load()
        e = self._old.get(path)
        if not isinstance(e, list) or len(e) != 5 or e[:3] != [st.st_ctime_ns, st.st_ino, st.st_dev]:
            return None
        self._new[path] = e
        return Folder(path, e[3], e[4])

    def put(self, folder: Folder, st: os.stat_result, *, links: bool) -> None:
        if not links and st.st_ctime_ns < self._since:
            self._new[folder.path] = [st.st_ctime_ns, st.st_ino, st.st_dev, folder.dirs, folder.jsonl]
            self._stored = True

    def save(self) -> None:
        """Write the listings of the walk just made, if they differ from those read."""
        old = self._old if self._old is not None else {}
        if self.file is None or not (self._stored or self._new.keys() != old.keys()):
            return
        self._old = self._new
        tmp = f"{self.file}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.file), 0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # paths of the user's projects
            with open(fd, "w", encoding="utf-8") as f:
                json.dump({"v": self.VERSION, "folders": self._new}, f, separators=(",", ":"))
            os.replace(tmp, self.file)  # whole or not at all, whoever reads it meanwhile
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _load(self) -> dict[str, list[Any]]:
        if self.file is None:
            return {}
        try:
            with open(self.file, encoding="utf-8") as f:
                data = json.load(f)
            folders = data["folders"] if data.get("v") == self.VERSION else {}
        except (OSError, ValueError, AttributeError, KeyError, TypeError, RecursionError):
            return {}
        return folders if isinstance(folders, dict) else {}
