"""Workspace state of DVC-tracked data: a stat cache of file md5s and cheap dirty checks.

A file's md5 is hashed once and reused while its (size, mtime_ns, inode) is unchanged. A folder
verified clean also gets a stamp (an md5 of its listing with those stats), so checking an
unchanged folder of thousands of files costs one scandir walk and a one-row query.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

# A file modified this recently may change again within the same mtime tick: hash it, but do
# not cache its md5 (git's "racy clean" problem; some filesystems keep 1-2 s timestamps).
RACY_WINDOW_NS = 2_000_000_000
# Names DVC always ignores inside a tracked folder (dvc/ignore.py: default_ignore_patterns).
_ALWAYS_IGNORED = frozenset({".git", ".hg", ".dvc"})
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS file_state (
        path TEXT NOT NULL CONSTRAINT pk_file_state PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        md5 TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS dir_state (
        path TEXT NOT NULL CONSTRAINT pk_dir_state PRIMARY KEY,
        stamp TEXT NOT NULL,
        md5 TEXT NOT NULL
    ) WITHOUT ROWID""",
)
_Row = tuple[int, int, int, str]  # size, mtime_ns, inode, md5


class FileStat(NamedTuple):
    """What the stat cache compares: a file's absolute path, size, mtime and inode."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: str, st: os.stat_result | None = None) -> FileStat:
        st = st or os.stat(path)
        return cls(path, st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class Ignore:
    """`.dvcignore` rules for one folder: `match(relpath)`, and their text for folder stamps."""

    rules: str
    match: Callable[[str], bool]


@dataclass(frozen=True)
class Dirty:
    """Outcome of a dirty check: the verdict, how it was reached, and any warnings."""

    dirty: bool | None
    check: str
    warnings: tuple[str, ...] = ()


def file_md5(path: str) -> str:
    """Plain md5 of a file's bytes, as DVC 3 records it."""
    with open(path, "rb") as fobj:
        return hashlib.file_digest(fobj, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def dir_md5(md5s: Mapping[str, str]) -> str:
    """DVC's hash of a folder from {posix relpath: file md5}: md5 of its `.dir` manifest + '.dir'.

    Mirrors dvc_data.hashfile.tree.Tree.as_bytes: json.dumps of the entries sorted by relpath,
    with sort_keys=True and json's default separators and ASCII escaping.
    """
    entries = [{"md5": md5s[rel], "relpath": rel} for rel in sorted(md5s)]
    data = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(data, usedforsecurity=False).hexdigest() + ".dir"


def read_manifest(path: str) -> dict[str, str] | None:
    """{relpath: md5} from a cached `.dir` manifest, or None if absent or unreadable."""
    try:
        with open(path, "rb") as fobj:
            entries = json.load(fobj)
        return {str(e["relpath"]): str(e["md5"]) for e in entries}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def scan_dir(top: str) -> dict[str, FileStat]:
    """Files under `top` by posix relpath; skips .git/.hg/.dvc, does not enter symlinked folders."""
    found: dict[str, FileStat] = {}
    stack = [(top, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name in _ALWAYS_IGNORED:
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                else:
                    found[rel] = FileStat.of(entry.path, entry.stat())
    return found


def stamp(files: Mapping[str, FileStat], salt: str = "") -> str | None:
    """md5 of a folder's listing with sizes, mtimes and inodes; None if a file is too fresh."""
    if files and time.time_ns() - max(st.mtime_ns for st in files.values()) < RACY_WINDOW_NS:
        return None
    listing = "\n".join(
        f"{rel}\0{st.size}\0{st.mtime_ns}\0{st.inode}" for rel, st in sorted(files.items())
    )
    return hashlib.md5(
        (salt + "\n" + listing).encode("utf-8", "surrogateescape"), usedforsecurity=False
    ).hexdigest()


class StatCache:
    """md5s keyed by absolute path, valid while (size, mtime_ns, inode) is unchanged.

    Backed by `<state_dir>/datastate.db` (SQLite, WAL, safe to share between processes), or by
    memory only when the file cannot be used. Use as a context manager: rows are written on exit.
    """

    def __init__(self, db_path: str | None) -> None:
        self.warnings: list[str] = []
        self.hashed = 0
        self._db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._rows: dict[str, _Row] = {}
        self._loaded: list[str] = []
        self._new: dict[str, _Row] = {}
        self._new_dirs: list[tuple[str, str, str]] = []

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verified(self, folder: str) -> tuple[str, str] | None:
        """(stamp, dir md5) of the folder's last clean check, if any."""
        rows = self._select("SELECT stamp, md5 FROM dir_state WHERE path = ?", (folder,))
        return (rows[0][0], rows[0][1]) if rows else None

    def remember_clean(self, folder: str, folder_stamp: str, md5: str) -> None:
        self._new_dirs.append((folder, folder_stamp, md5))

    def preload(self, folder: str) -> None:
        """Read every cached file row under `folder` with one range query."""
        prefix = folder.rstrip(os.sep) + os.sep
        # Every path under prefix sorts in [prefix, prefix with its last char bumped).
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        self._fetch("path >= ? AND path < ?", (prefix, upper))
        self._loaded.append(prefix)

    def md5(self, st: FileStat) -> str:
        """The file's md5 from the cache if its stat matches, else hashed (and remembered)."""
        row = self._row(st.path)
        if row is not None and row[:3] == st[1:]:
            return row[3]
        digest = file_md5(st.path)
        self.hashed += 1
        row = (st.size, st.mtime_ns, st.inode, digest)
        self._rows[st.path] = row
        if time.time_ns() - st.mtime_ns > RACY_WINDOW_NS:
            self._new[st.path] = row
        return digest

    def close(self) -> None:
        """Write new rows (best effort: this is a cache) and close the database."""
        if self._new or self._new_dirs:
            self._write()
        if self._conn is not None:
            self._conn.close()
        self._conn, self._db_path = None, None

    def _row(self, path: str) -> _Row | None:
        if path not in self._rows and not any(path.startswith(p) for p in self._loaded):
            self._fetch("path = ?", (path,))
        return self._rows.get(path)

    def _fetch(self, where: str, args: tuple[str, ...]) -> None:
        sql = f"SELECT path, size, mtime_ns, inode, md5 FROM file_state WHERE {where}"
        self._rows.update((row[0], row[1:]) for row in self._select(sql, args))

    def _select(self, sql: str, args: tuple[str, ...]) -> list[tuple]:
        conn = self._connection()
        if conn is None:
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # else a new database, set up on first write
                self._disable("unreadable, hashing instead", exc)
        except (sqlite3.Error, UnicodeEncodeError) as exc:  # a non-UTF-8 file name, say
            self._disable("unreadable, hashing instead", exc)
        return []

    def _write(self) -> None:
        conn = self._connection()
        if conn is None:
            return
        try:
            conn.execute("PRAGMA journal_mode = WAL")  # kept in the file: once is enough
            conn.execute("PRAGMA synchronous = NORMAL")
            for ddl in _SCHEMA:
                conn.execute(ddl)
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO file_state VALUES (?, ?, ?, ?, ?)",
                    [(path, *row) for path, row in self._new.items()],
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO dir_state VALUES (?, ?, ?)", self._new_dirs
                )
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            self._disable("not updated", exc)
        self._new.clear()
        self._new_dirs.clear()

    def _connection(self) -> sqlite3.Connection | None:
        """The database, opened on first use; reads need no setup, so a warm check stays cheap."""
        if self._conn is None and self._db_path is not None:
            try:
                os.makedirs(os.path.dirname(self._db_path), exist_ok=True)
                self._conn = sqlite3.connect(self._db_path, timeout=10.0)
            except (OSError, sqlite3.Error) as exc:
                self._disable("unusable, hashing instead", exc)
        return self._conn

    def _disable(self, what: str, exc: Exception) -> None:
        self.warnings.append(f"data state cache {self._db_path} {what}: {exc}")
        if self._conn is not None:
            self._conn.close()
        self._conn, self._db_path = None, None


def check_file(path: str, md5: str, size: int | None, cache: StatCache) -> Dirty:
    """Compare one workspace file with its recorded md5 (and size, when recorded)."""
    try:
        st = FileStat.of(path)
        if size is not None and st.size != size:
            return Dirty(True, "stat-cache")
        before = cache.hashed
        same = cache.md5(st) == md5
    except OSError as exc:
        return Dirty(None, "skipped", (f"cannot read {path}: {exc}",))
    return Dirty(not same, "hashed" if cache.hashed > before else "stat-cache")


def check_dir(
    path: str,
    md5: str,
    expected: tuple[int | None, int | None],
    manifest_path: str,
    cache: StatCache,
    ignore: Ignore | None = None,
) -> Dirty:
    """Compare a workspace folder with its recorded `.dir` hash and (size, nfiles).

    An unchanged stamp of a folder verified clean decides at once ("stat-cache"). Else, with
    the cached manifest, only files whose stat changed are hashed ("stat-cache", or "hashed"
    if any was); without it, the `.dir` hash is recomputed from (cached) file md5s ("hashed").
    A differing file set or size decides without hashing ("stat-cache"); unreadable files fall
    back to comparing sizes ("size-only").
    """
    try:
        scanned = scan_dir(path)
    except OSError as exc:
        return Dirty(None, "skipped", (f"cannot list {path}: {exc}",))
    folder_stamp = stamp(scanned, ignore.rules if ignore else "")
    if folder_stamp is not None and cache.verified(path) == (folder_stamp, md5):
        return Dirty(False, "stat-cache")
    manifest = read_manifest(manifest_path)
    files = _visible(scanned, manifest, ignore)
    if _sizes_differ(files.values(), expected) or (
        manifest is not None and files.keys() != manifest.keys()
    ):
        return Dirty(True, "stat-cache")
    verdict = _compare_md5s(path, md5, files, manifest, cache, expected)
    if verdict.dirty is False and verdict.check != "size-only" and folder_stamp is not None:
        cache.remember_clean(path, folder_stamp, md5)
    return verdict


def check_sizes(
    path: str, is_dir: bool, expected: tuple[int | None, int | None], ignore: Ignore | None = None
) -> Dirty:
    """Compare only total size and file count (DVC 2 dos2unix hashes, unhashable data)."""
    if expected == (None, None):
        return Dirty(None, "skipped", (f"{path}: DVC recorded no size to compare with",))
    try:
        files = _visible(scan_dir(path), None, ignore).values() if is_dir else [FileStat.of(path)]
    except OSError as exc:
        return Dirty(None, "skipped", (f"cannot list {path}: {exc}",))
    return Dirty(_sizes_differ(files, expected), "size-only")


def _compare_md5s(
    path: str,
    md5: str,
    files: Mapping[str, FileStat],
    manifest: Mapping[str, str] | None,
    cache: StatCache,
    expected: tuple[int | None, int | None],
) -> Dirty:
    """File md5s against the manifest, else the recomputed `.dir` hash against `md5`."""
    cache.preload(path)
    before = cache.hashed
    try:
        if manifest is not None:
            same = all(cache.md5(st) == manifest[rel] for rel, st in files.items())
            return Dirty(not same, "hashed" if cache.hashed > before else "stat-cache")
        md5s = {rel: cache.md5(st) for rel, st in files.items()}
    except OSError as exc:
        verdict = None if expected == (None, None) else False
        return Dirty(verdict, "size-only", (f"cannot hash a file under {path}: {exc}",))
    return Dirty(dir_md5(md5s) != md5, "hashed")


def _visible(
    files: dict[str, FileStat], manifest: Mapping[str, str] | None, ignore: Ignore | None
) -> dict[str, FileStat]:
    """Drop .dvcignore'd files; with a manifest only files DVC did not record need the test."""
    if ignore is None:
        return files
    known = manifest or {}
    return {rel: st for rel, st in files.items() if rel in known or not ignore.match(rel)}


def _sizes_differ(files: Iterable[FileStat], expected: tuple[int | None, int | None]) -> bool:
    stats = list(files)
    size, nfiles = expected
    if nfiles is not None and len(stats) != nfiles:
        return True
    return size is not None and sum(st.size for st in stats) != size
