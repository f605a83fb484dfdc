"""Clean or dirty, in process: the managed files' blob shas on disk against the index and HEAD's
tree, as `git status` compares them, without starting git.

The in-process answer is never narrower than git's (every untracked file counts, ignored or not),
so "clean" is decided here; only a possibly dirty tree is confirmed by `git status` itself, which
also applies the user's ignore rules and content filters exactly.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from git.index.typ import IndexEntry

from distill_es.workspace.git_objects import Entry, blob_sha

SYMLINK, EXECUTABLE, REGULAR = 0o120000, 0o100755, 0o100644


def file_entry(path: Path, *, filemode: bool = True) -> Entry | None:
    """(mode, blob sha) of the file or symlink at `path` as git would stage it; None if absent."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK, blob_sha(os.fsencode(os.readlink(path)))
    if not stat.S_ISREG(st.st_mode):
        return None
    mode = EXECUTABLE if filemode and st.st_mode & stat.S_IXUSR else REGULAR
    return mode, blob_sha(path.read_bytes())


def working_files(root: Path, roots: Iterable[str]) -> list[str]:
    """Paths of every file and symlink under `roots` (top-level names) on disk, ignored ones too."""
    found: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for entry in entries:
            path = prefix + entry.name
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                found.append(path)
            elif entry.is_dir(follow_symlinks=False) and not (Path(entry.path) / ".git").exists():
                walk(Path(entry.path), path + "/")

    for top in roots:
        target = root / top
        if target.is_symlink() or target.is_file():
            found.append(top)
        elif target.is_dir():
            walk(target, top + "/")
    return found


def possibly_dirty(
    root: Path,
    roots: Iterable[str],
    head_files: dict[str, Entry],
    index: dict[tuple[str, int], IndexEntry],
    *,
    filemode: bool = True,
) -> set[str]:
    """Managed paths that may differ between HEAD, the index and the disk (a superset of git's)."""
    suspects: set[str] = set()
    staged: dict[str, Entry] = {}
    for (path, stage), entry in index.items():
        if stage != 0 or entry.intent_to_add:
            suspects.add(path)
            continue
        staged[path] = (entry.mode, entry.hexsha)
        if head_files.get(path) != staged[path]:
            suspects.add(path)  # staged: the index differs from HEAD
            continue
        if entry.skip_worktree:
            continue
        on_disk = file_entry(root / path, filemode=filemode)
        if on_disk is None or on_disk[1] != entry.hexsha or not _same_mode(on_disk[0], entry.mode, filemode):
            suspects.add(path)  # unstaged: the disk differs from the index
    suspects.update(path for path in head_files if path not in staged and path not in suspects)
    suspects.update(path for path in working_files(root, roots) if path not in staged)  # untracked
    return suspects


def _same_mode(disk: int, indexed: int, filemode: bool) -> bool:
    if filemode:
        return disk == indexed
    return (disk == SYMLINK) == (indexed == SYMLINK)
