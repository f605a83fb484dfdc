"""File contents between the working tree and the object database: a working file stored as a blob
(for a commit), a blob written back as a working file (for a revert), atomically either way."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from distill_es.domain.errors import WorkspaceConflict
from distill_es.workspace.files import TEMP_SUFFIX
from distill_es.workspace.git_objects import Entry, ObjectStore, under
from distill_es.workspace.git_status import EXECUTABLE, SYMLINK, file_entry


def store_file(root: Path, store: ObjectStore, path: str) -> Entry | None:
    """The working file's blob written to the object database; its (mode, sha), None if absent."""
    full = root / path
    entry = file_entry(full)
    if entry is not None and not store.has(entry[1]):
        data = os.fsencode(os.readlink(full)) if entry[0] == SYMLINK else full.read_bytes()
        if store.write(b"blob", data) != entry[1]:  # the file changed between the hash and the read
            raise WorkspaceConflict(f"{path} changed while distill_es was committing it")
    return entry


def write_file(root: Path, store: ObjectStore, path: str, entry: Entry | None) -> None:
    """The working file at `path` set to `entry`'s blob (or removed, with the directories it leaves
    empty, as git removes them)."""
    full = root / path
    if entry is None:
        with contextlib.suppress(FileNotFoundError):
            full.unlink()
        parent = full.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
        return
    mode, sha = entry
    data = store.read(sha, b"blob")
    if full.is_symlink() or mode == SYMLINK:
        with contextlib.suppress(FileNotFoundError):
            full.unlink()
    if mode == SYMLINK:
        full.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.fsdecode(data), full)
        return
    _atomic_write_bytes(full, data, 0o755 if mode == EXECUTABLE else 0o644)


def _atomic_write_bytes(path: Path, data: bytes, mode: int) -> None:
    # Temp file + rename: a crash leaves the old file or the new one (and a temp file that
    # `dirty_paths` reports and `restore` removes), never half of one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def parent_entries(
    store: ObjectStore, parent_tree: str | None, tree: str, head_tree: str, roots: tuple[str, ...]
) -> dict[str, Entry | None] | None:
    """What reverting the commit (`parent_tree` → `tree`) writes: the parent's entry for each file it
    changed, when HEAD still holds the commit's version (a file HEAD already has at the parent's
    version needs nothing); None when a later commit changed one of them (a 3-way merge decides)."""
    changes: dict[str, Entry | None] = {}
    for path, (before, after) in store.diff(parent_tree, tree).items():
        if not under(path, roots):
            return None
        current = store.entry(head_tree, path)
        if current == after:
            changes[path] = before
        elif current != before:
            return None
    return changes
