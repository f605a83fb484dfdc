"""The repository's object database, read and written in process (GitPython's pure-Python `GitDB`,
never a `git cat-file` process): blobs, trees, commits, and trees rewritten at a few paths.

Objects are immutable, so a commit's parsed form is cached by its sha for the life of the reader.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from git.objects.fun import tree_entries_from_data, tree_to_stream

with warnings.catch_warnings():  # GitDB is deprecated as a Repo backend, not as an object reader
    warnings.simplefilter("ignore", DeprecationWarning)
    from git.db import GitDB
from gitdb.base import IStream
from gitdb.exc import BadObject

from distill_es.domain.errors import WorkspaceError

TREE_MODE = 0o040000
# (mode, hex sha) of a file in a tree or the index: 0o100644, 0o100755 or 0o120000 (a symlink).
Entry = tuple[int, str]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    committed_at: int
    message: str

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]


def blob_sha(data: bytes) -> str:
    """The sha git gives `data` as a blob (what `git hash-object` prints), without writing it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


class ObjectStore:
    """Objects of the repository whose object directory is `objects_dir`."""

    def __init__(self, objects_dir: Path) -> None:
        self._db = GitDB(str(objects_dir))
        self._commits: dict[str, CommitInfo] = {}
        self._trees: dict[str, list[tuple[str, int, str]]] = {}

    # --- raw ------------------------------------------------------------------------------------
    def read(self, sha: str, expected: bytes | None = None) -> bytes:
        try:
            stream = self._db.stream(bytes.fromhex(sha))
        except (BadObject, ValueError):
            self._db.update_cache(force=True)  # a repack since we looked: the pack list changed
            try:
                stream = self._db.stream(bytes.fromhex(sha))
            except (BadObject, ValueError):
                raise WorkspaceError(f"object {sha} is missing from the repository") from None
        if expected is not None and stream.type != expected:
            raise WorkspaceError(f"object {sha} is a {stream.type.decode()}, not a {expected.decode()}")
        return stream.read()

    def has(self, sha: str) -> bool:
        try:
            return self._db.has_object(bytes.fromhex(sha))
        except ValueError:
            return False

    def kind(self, sha: str) -> bytes | None:
        for attempt in range(2):
            try:
                return self._db.info(bytes.fromhex(sha)).type
            except ValueError:
                return None
            except BadObject:
                if attempt == 0:
                    self._db.update_cache(force=True)  # packed by a `git gc` since we looked?
        return None

    def write(self, kind: bytes, data: bytes) -> str:
        """Store an object (a loose object, written to a temp file and renamed: never torn)."""
        stored = self._db.store(IStream(kind, len(data), BytesIO(data)))
        return stored.binsha.hex()

    # --- commits --------------------------------------------------------------------------------
    def commit(self, sha: str) -> CommitInfo:
        found = self._commits.get(sha)
        if found is None:
            found = self._commits[sha] = parse_commit(sha, self.read(sha, b"commit"))
        return found

    # --- trees ----------------------------------------------------------------------------------
    def tree(self, sha: str) -> list[tuple[str, int, str]]:
        """(name, mode, sha) of a tree's entries, in git's order (parsed once per sha)."""
        found = self._trees.get(sha)
        if found is None:
            data = self.read(sha, b"tree")
            found = [(name, mode, binsha.hex()) for binsha, mode, name in tree_entries_from_data(data)]
            if len(self._trees) > 4096:  # a bound for long-lived processes; trees never change
                self._trees.clear()
            self._trees[sha] = found
        return found

    def write_tree(self, entries: Iterable[tuple[str, int, str]]) -> str:
        ordered = sorted(entries, key=lambda e: e[0] + "/" if e[1] == TREE_MODE else e[0])
        out = BytesIO()
        tree_to_stream([(bytes.fromhex(sha), mode, name) for name, mode, sha in ordered], out.write)
        return self.write(b"tree", out.getvalue())

    def files(self, tree: str | None, roots: Iterable[str], prefix: str = "") -> dict[str, Entry]:
        """Every file under `roots` (top-level names) in `tree`, by path: {path: (mode, sha)}."""
        found: dict[str, Entry] = {}
        if tree is None:
            return found
        wanted = set(roots)
        for name, mode, sha in self.tree(tree):
            if prefix == "" and name not in wanted:
                continue
            path = prefix + name
            if mode == TREE_MODE:
                found.update(self.files(sha, (), path + "/"))
            elif mode != 0o160000:  # a submodule is not a file of ours
                found[path] = (mode, sha)
        return found

    def entry(self, tree: str, path: str) -> tuple[int, str] | None:
        """(mode, sha) at `path` in `tree` (a file or a tree), or None."""
        current = (TREE_MODE, tree)
        for part in path.split("/"):
            if current[0] != TREE_MODE:
                return None
            match = [(mode, sha) for name, mode, sha in self.tree(current[1]) if name == part]
            if not match:
                return None
            current = match[0]
        return current

    def with_files(self, tree: str | None, changes: Mapping[str, Entry | None]) -> str:
        """`tree` with each path of `changes` set to its (mode, sha), or removed for None; empty
        directories vanish. Untouched subtrees are reused as they are."""
        entries = {name: (mode, sha) for name, mode, sha in (self.tree(tree) if tree else [])}
        here: dict[str, Entry | None] = {}
        below: dict[str, dict[str, Entry | None]] = {}
        for path, change in changes.items():
            head, sep, rest = path.partition("/")
            if sep:
                below.setdefault(head, {})[rest] = change
            else:
                here[head] = change
        for name, change in here.items():
            if change is None:
                entries.pop(name, None)
            else:
                entries[name] = change
        for name, sub in below.items():
            old = entries.get(name)
            base = old[1] if old is not None and old[0] == TREE_MODE else None
            new = self.with_files(base, sub)
            if new == EMPTY_TREE:
                entries.pop(name, None)
            else:
                entries[name] = (TREE_MODE, new)
        return self.write_tree((name, mode, sha) for name, (mode, sha) in entries.items())

    def diff(
        self, a: str | None, b: str | None, prefix: str = ""
    ) -> dict[str, tuple[Entry | None, Entry | None]]:
        """Files that differ between trees `a` and `b`: {path: (entry in a, entry in b)}."""
        if a == b:
            return {}
        left = {name: (mode, sha) for name, mode, sha in (self.tree(a) if a else [])}
        right = {name: (mode, sha) for name, mode, sha in (self.tree(b) if b else [])}
        out: dict[str, tuple[Entry | None, Entry | None]] = {}
        for name in sorted(left.keys() | right.keys()):
            one, two = left.get(name), right.get(name)
            if one == two:
                continue
            path = prefix + name
            one_tree = one[1] if one is not None and one[0] == TREE_MODE else None
            two_tree = two[1] if two is not None and two[0] == TREE_MODE else None
            if one_tree is not None or two_tree is not None:
                out.update(self.diff(one_tree, two_tree, path + "/"))
            if (one is not None and one_tree is None) or (two is not None and two_tree is None):
                out[path] = (one if one_tree is None else None, two if two_tree is None else None)
        return out


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def parse_commit(sha: str, data: bytes) -> CommitInfo:
    header, _, body = data.partition(b"\n\n")
    tree, parents, committed_at = "", [], 0
    for line in header.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode()
        elif key == b"parent":
            parents.append(value.decode())
        elif key == b"committer":
            try:
                committed_at = int(value.rsplit(b" ", 2)[-2])
            except (ValueError, IndexError):
                committed_at = 0
    return CommitInfo(sha, tree, tuple(parents), committed_at, body.decode("utf-8", "replace"))
