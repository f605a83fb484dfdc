"""The repository's index file, read and updated in process with GitPython's index format code:
entries for a few paths are replaced under `index.lock` (taken with O_EXCL, as git takes it), so a
later `git status` sees exactly the files we committed, and the rest of the index stays as it was."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from io import BytesIO
from pathlib import Path
from struct import pack

from git.index.fun import read_cache, write_cache
from git.index.typ import CE_STAGESHIFT, IndexEntry

from distill_es.workspace.git_cli import index_locked
from distill_es.workspace.git_objects import Entry, under

_U32 = 0xFFFFFFFF


class IndexUnsupported(Exception):
    """An index GitPython cannot rewrite (version 4, a split index): the git CLI updates it instead."""


def read_entries(index: Path) -> dict[tuple[str, int], IndexEntry]:
    """Every entry of the index by (path, stage); {} when there is no index yet."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return {}
    return _parse(data)


def _parse(data: bytes) -> dict[tuple[str, int], IndexEntry]:
    try:
        _, entries, _, _ = read_cache(BytesIO(data))
    except (AssertionError, ValueError) as exc:
        raise IndexUnsupported(str(exc)) from None
    return {(str(path), stage): entry for (path, stage), entry in entries.items()}


def managed_entries(index: Path, roots: Iterable[str]) -> dict[tuple[str, int], IndexEntry]:
    roots = tuple(roots)
    return {key: entry for key, entry in read_entries(index).items() if under(key[0], roots)}


def entry_of(indexed: IndexEntry | None) -> Entry | None:
    """(mode, sha) of an index entry (None: no entry)."""
    return None if indexed is None else (indexed.mode, indexed.hexsha)


def stat_entry(root: Path, path: str, entry: Entry) -> IndexEntry:
    """An index entry for the file at `root/path` holding `entry`, with its stat data, so git does
    not even need to re-hash it to see it is clean."""
    st = os.lstat(root / path)
    ctime = pack(">LL", int(st.st_ctime) & _U32, st.st_ctime_ns % 1_000_000_000)
    mtime = pack(">LL", int(st.st_mtime) & _U32, st.st_mtime_ns % 1_000_000_000)
    mode, sha = entry
    return IndexEntry(
        (mode, bytes.fromhex(sha), 0, path, ctime, mtime, st.st_dev & _U32, st.st_ino & _U32,
         st.st_uid & _U32, st.st_gid & _U32, st.st_size & _U32, 0)
    )  # fmt: skip


def update(index: Path, root: Path, changes: Mapping[str, Entry | None]) -> None:
    """Set each path of `changes` to its entry (stat data from the working file), or remove it for
    None; conflict stages of those paths are dropped. Nothing else in the index changes."""
    lock = index.with_name(index.name + ".lock")
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise index_locked(root) from None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                entries = read_entries(index)
            except IndexUnsupported:
                raise
            for key in [k for k in entries if k[0] in changes]:
                del entries[key]
            for path, entry in changes.items():
                if entry is not None:
                    entries[(path, 0)] = stat_entry(root, path, entry)
            ordered = sorted(entries.values(), key=lambda e: (e.path.encode(), e.flags >> CE_STAGESHIFT & 3))
            write_cache(ordered, out)  # no extensions: a cached tree would be stale now
        os.replace(lock, index)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        raise
