"""The student's workspace under git: one commit per edit, exact reverts, crash-safe restore.

Fixes the reference's checkpoint store (spec search §7.3, §11.1, 2, 11): every applied edit is its
own commit carrying `Edit-ID` / `Session-ID` trailers, commits are found by parsing trailers (never by
`--grep`, where `sess-1` matched `sess-10`), shas are full, engine files are git-ignored so they never
make the tree dirty, untracked files created by an edit are removed on restore, an edit that changes
nothing makes no commit, and a revert that does not apply is aborted with the repo left clean.

A session's per-step work starts no git process (issue 15): HEAD, trees and trailers are read from
the object database (`git_objects`, `git_refs`, `trailer_search`), clean or dirty is decided by
hashing the managed files (`git_status`), and commits are written in process (`git_commit`, with the
user's hooks and identity). The git command line (`git_cli`) is left for what is not per-step: the
first baseline (`baseline`), putting files back after a failure and 3-way reverts (`reconcile`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from git import GitCommandError

from distill_es.domain.errors import InvalidEdit, WorkspaceConflict, WorkspaceError
from distill_es.domain.layout import TRACKED_PATHS, prompt_path
from distill_es.domain.vocabulary import Edit, EditRiskTier
from distill_es.ports import AppliedEdit, EditCheck
from distill_es.workspace import (
    baseline,
    git_commit,
    git_index,
    git_refs,
    reconcile,
    trailer_log,
    worktree_files,
)
from distill_es.workspace.appliers import applier_for
from distill_es.workspace.commit_messages import (
    edit_message,
    log_head_trailer,
    revert_message,
    trailer_value,
)
from distill_es.workspace.files import atomic_write_text, read_inside, read_text
from distill_es.workspace.git_cli import GIT_EMAIL, GIT_NAME, GitCli
from distill_es.workspace.git_config import read_config
from distill_es.workspace.git_objects import Entry, ObjectStore
from distill_es.workspace.git_status import SYMLINK, possibly_dirty
from distill_es.workspace.gitignore import merged_gitignore
from distill_es.workspace.trailer_search import TrailerFinder, Trailers

__all__ = ["GIT_EMAIL", "GIT_NAME", "GitWorkspace"]

_SHA = re.compile(r"^[0-9a-f]{40}$")


@contextlib.contextmanager
def _directory_lock(root: Path) -> Iterator[None]:
    """An exclusive `flock` on the workspace directory itself, released by the kernel if we die: two
    first runs in one workspace create the repo and the baseline one after the other."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class GitWorkspace:
    """`ports.Workspace` over a git repository at `root` (created by `init`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._git = GitCli(self.root)
        self._store: ObjectStore | None = None
        self._finder: TrailerFinder | None = None

    # --- the repository, opened in process -----------------------------------------------------

    def _dirs(self) -> git_refs.GitDirs:
        return git_refs.git_dirs(self.root)

    def _objects(self) -> TrailerFinder:
        if self._finder is None:
            self._store = ObjectStore(self._dirs().objects)
            self._finder = TrailerFinder(self._store)
        return self._finder

    @property
    def _odb(self) -> ObjectStore:
        return self._objects().store

    def _head(self) -> str | None:
        return git_refs.head(self._dirs())[1]

    # --- setup --------------------------------------------------------------------------------

    def init(self) -> str:
        """Create the repo if needed and the baseline commit once; returns the baseline's full sha.

        Never commits a change the engine did not make: in a repo that already has commits, tracked
        files under the managed paths with uncommitted (or staged) changes refuse the baseline
        (`WorkspaceConflict` naming them). The baseline is built in the engine's own index, so the
        user's staged files never ride along. Concurrent first runs wait for each other.
        """
        if not self.root.is_dir():
            raise WorkspaceError(f"{self.root} does not exist or is not a directory")
        with _directory_lock(self.root):
            return self._init_locked()

    def _init_locked(self) -> str:
        if not (self.root / ".git").exists():
            baseline.create_repo(self._git)
        dirs = self._dirs()
        head = self._head()
        found = baseline.find(dirs, self._objects(), head)
        if found is not None:
            self._write_gitignore()
            return found
        if head is not None:
            baseline.refuse_user_changes(self._git, self.root)
        self._write_gitignore()
        return baseline.commit_baseline(self._git, dirs, head)

    # --- reading ------------------------------------------------------------------------------

    def head_sha(self) -> str:
        head = self._head()
        if head is None:
            raise WorkspaceError(f"{self.root} has no commit 'HEAD'; run init() first")
        return head

    def tree_sha(self) -> str:
        return self._odb.commit(self.head_sha()).tree

    def tree_of(self, ref: str) -> str | None:
        """The full tree sha a git ref (branch, tag, sha, `HEAD~2`) names; None when it names none."""
        if not ref or ref.startswith("-"):
            return None
        try:
            return self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{tree}}")
        except GitCommandError:
            return None

    def working_tree_sha(self) -> str:
        """The tree sha of HEAD's tree with the managed paths as they are on disk now (uncommitted
        changes included): equal to `tree_sha()` when they are clean, so the score cache applies."""
        if not self.dirty_paths():
            return self.tree_sha()
        git_dir = self._dirs().git_dir
        fd, name = tempfile.mkstemp(prefix="distill_es-worktree-", suffix=".index", dir=git_dir)
        os.close(fd)
        index = Path(name)
        index.unlink()
        try:
            self._git("read-tree", "HEAD", index_file=index)
            managed = baseline.known(self._git, TRACKED_PATHS)
            if managed:
                self._git("add", "-A", "--", *managed, index_file=index)
            return self._git("write-tree", index_file=index)
        finally:
            index.unlink(missing_ok=True)

    def export_tree(self, tree_sha: str, dest: Path) -> None:
        """Write the managed files of `tree_sha` under `dest` (a directory outside the workspace),
        through a private index: the workspace, its index and HEAD are untouched."""
        fd, name = tempfile.mkstemp(prefix="distill_es-export-", suffix=".index")
        os.close(fd)
        index = Path(name)
        index.unlink()
        try:
            self._git("read-tree", tree_sha, index_file=index)
            listed = self._git("ls-files", "-z", "--", *TRACKED_PATHS, index_file=index)
            paths = [p for p in listed.split("\0") if p]
            if paths:
                prefix = str(Path(dest).resolve()) + os.sep
                self._git("checkout-index", "-f", f"--prefix={prefix}", "--", *paths, index_file=index)
        finally:
            index.unlink(missing_ok=True)

    def dirty_paths(self) -> list[str]:
        """Uncommitted changes (staged, unstaged, untracked) under the tracked paths, sorted.

        Decided in process; only when something may be dirty does `git status` name the paths (it
        knows the user's ignore rules), so a clean tree costs no git process."""
        dirs = self._dirs()
        head = self._head()
        head_files = self._odb.files(self._odb.commit(head).tree if head else None, TRACKED_PATHS)
        try:
            index = git_index.managed_entries(dirs.index, TRACKED_PATHS)
        except git_index.IndexUnsupported:
            return reconcile.dirty_paths(self._git)
        filemode = read_config(dirs.common_dir).flag("core", "filemode", True)
        if not possibly_dirty(self.root, TRACKED_PATHS, head_files, index, filemode=filemode):
            return []
        return reconcile.dirty_paths(self._git)

    def read_prompt(self, agent: str) -> str | None:
        """The agent's current system prompt; None when it has no prompt file (an empty file is "")."""
        return read_inside(self.root, prompt_path(agent))

    def find_edit_commit(self, session_id: str, edit_id: str, *, since: str | None = None) -> str | None:
        """The newest commit whose trailers say exactly this `Edit-ID` and `Session-ID`; with `since`
        (the pre-apply sha the log recorded), only commits made after it are read."""
        return self._objects().find(
            self._head(),
            lambda t: edit_id in t.get("Edit-ID", []) and session_id in t.get("Session-ID", []),
            since=since,
        )

    def commit_trailers(self) -> list[tuple[str, Trailers]]:
        """(sha, trailers) of every commit in HEAD's history, newest first ([] without commits);
        only the commits made since the last call (in any process) are read."""
        return trailer_log.commit_trailers(self._objects(), self._dirs().git_dir, self._head())

    def find_revert_commit(self, session_id: str, edit_id: str, *, since: str | None = None) -> str | None:
        """The newest commit whose trailers say exactly this `Reverts-Edit-ID` and `Session-ID`; with
        `since` (the edit's commit), only commits made after it are read."""
        return self._objects().find(
            self._head(),
            lambda t: edit_id in t.get("Reverts-Edit-ID", []) and session_id in t.get("Session-ID", []),
            since=since,
        )

    # --- edits --------------------------------------------------------------------------------

    def validate(self, edit: Edit) -> EditCheck:
        return applier_for(edit).validate(edit, self.root)

    def preview(self, edit: Edit) -> str:
        return applier_for(edit).preview(edit, self.root)

    def apply(
        self, edit: Edit, *, session_id: str, risk_tier: EditRiskTier, log_head: str | None = None
    ) -> AppliedEdit:
        """Apply `edit` and commit it with its trailers; on any failure the tracked files are as before.

        `log_head` (`<version>:<digest>` of the session's last saved event) is anchored in the commit."""
        trailer_value("edit id", edit.id)
        trailer_value("session id", session_id)
        anchor = log_head_trailer(log_head)
        pre_sha = self.head_sha()
        self._require_clean(f"apply edit {edit.id!r}")
        applier = applier_for(edit)
        try:
            written = applier.apply(edit, self.root)
            for path in written:
                if path.split("/", 1)[0] not in TRACKED_PATHS:
                    raise InvalidEdit(
                        f"edit {edit.id!r} wrote {path}, outside the tracked paths {TRACKED_PATHS}"
                    )
            head_files = self._odb.files(self._odb.commit(pre_sha).tree, TRACKED_PATHS)
            filemode = read_config(self._dirs().common_dir).flag("core", "filemode", True)
            changes: dict[str, Entry | None] = {}
            for path in written:
                old = head_files.get(path)
                entry = _with_mode(worktree_files.store_file(self.root, self._odb, path), old, filemode)
                if entry != old:
                    changes[path] = entry
            if not changes:
                raise InvalidEdit(f"edit {edit.id!r} changes nothing")
            tier = EditRiskTier(risk_tier).value
            message = edit_message(edit, session_id=session_id, tier=tier, anchor=anchor)
            self._clear_sequencer()
            self._commit(message, head=pre_sha, changes=changes)
        except BaseException as exc:
            self._undo_uncommitted(pre_sha, exc)
            raise
        sha = self.head_sha()
        return AppliedEdit(commit_sha=sha, tree_sha=self.tree_sha(), changed_files=sorted(changes))

    def revert(self, commit_sha: str, *, session_id: str, edit_id: str, log_head: str | None = None) -> str:
        """Undo exactly `commit_sha` as a new commit; `WorkspaceConflict` (repo left clean) if it cannot.

        The revert writes the parent's blobs back when nothing since touched those files; otherwise
        git's 3-way merge decides. `log_head` as for `apply`."""
        trailer_value("edit id", edit_id)
        trailer_value("session id", session_id)
        anchor = log_head_trailer(log_head)
        sha = self._own_commit(commit_sha)
        finder = self._objects()
        found = finder.trailers(sha).get("Edit-ID", [])
        if edit_id not in found:
            raise WorkspaceConflict(
                f"commit {sha} is not the commit of edit {edit_id!r} "
                f"(its Edit-ID: {', '.join(found) or 'none'})"
            )
        previous = self.find_revert_commit(session_id, edit_id, since=sha)
        if previous is not None and sha in finder.trailers(previous).get("Reverted-Commit", []):
            return previous  # already reverted (e.g. a retry after a crash): no second revert
        self._require_clean(f"revert edit {edit_id!r}")
        head = self.head_sha()
        commit = self._odb.commit(sha)
        parent_tree = self._odb.commit(commit.parents[0]).tree if commit.parents else None
        head_tree = self._odb.commit(head).tree
        changes = worktree_files.parent_entries(self._odb, parent_tree, commit.tree, head_tree, TRACKED_PATHS)
        dirs = self._dirs()
        if changes is None:  # later edits touched the same files: git merges
            reconcile.merge_revert(self._git, dirs, sha=sha, head=head, edit_id=edit_id)
            paths = self._odb.diff(parent_tree, commit.tree)
            staged = git_index.read_entries(dirs.index)
            changes = {p: git_index.entry_of(staged.get((p, 0))) for p in paths}
        else:
            self._clear_sequencer()
            for path, entry in changes.items():
                worktree_files.write_file(self.root, self._odb, path, entry)
        message = revert_message(
            edit_id=edit_id, subject=commit.subject, sha=sha, session_id=session_id, anchor=anchor
        )
        try:
            # Empty when the change was already undone by hand: the revert is still recorded.
            self._commit(message, head=head, changes=changes)
        except BaseException:
            if self.head_sha() == head:
                reconcile.abandon_revert(self._git, self.root, head)
            raise
        return self.head_sha()

    def restore(self, sha: str) -> None:
        """Make the tracked paths exactly as at `sha` (index too); HEAD does not move.

        Files under the tracked paths that `sha` lacks are deleted, untracked ones included.
        """
        sha = self._own_commit(sha, require_ancestor=False)
        self._clear_sequencer()
        reconcile.restore(self._git, self.root, sha)

    # --- internals ----------------------------------------------------------------------------

    def _own_commit(self, sha: str, *, require_ancestor: bool = True) -> str:
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise WorkspaceError(f"{sha!r} is not a full 40-hex commit sha")
        if self._odb.kind(sha) != b"commit":
            raise WorkspaceError(f"commit {sha} does not exist in {self.root}")
        if require_ancestor and not self._objects().is_ancestor(sha, self._head()):
            raise WorkspaceConflict(f"commit {sha} is not in the workspace's history (HEAD)")
        return sha

    def _require_clean(self, action: str) -> None:
        dirty = self.dirty_paths()
        if dirty:
            raise WorkspaceConflict(
                f"cannot {action}: tracked files have uncommitted changes: {', '.join(dirty)} "
                "(commit or discard them first)"
            )

    def _commit(self, message: str, *, head: str, changes: dict[str, Entry | None]) -> str:
        """One commit of `changes` on `head` (the seam a crash test kills right after)."""
        return git_commit.commit(
            self._dirs(), self._odb, self._git, head=head, changes=changes, message=message
        )

    def _undo_uncommitted(self, pre_sha: str, exc: BaseException) -> None:
        """After a failed apply: put the files back, unless the commit was made after all."""
        try:
            if self.head_sha() == pre_sha:
                self.restore(pre_sha)
        except Exception as restore_error:  # keep the original error; say the tree may be dirty
            exc.add_note(f"restoring {pre_sha} also failed: {restore_error}")

    def _clear_sequencer(self) -> None:
        reconcile.clear_sequencer(self._git, self._dirs())

    def _write_gitignore(self) -> None:
        path = self.root / ".gitignore"
        current = read_text(path) or ""
        merged = merged_gitignore(current)
        if merged != current:
            atomic_write_text(path, merged)


def _with_mode(entry: Entry | None, old: Entry | None, filemode: bool) -> Entry | None:
    """With `core.filemode = false` the executable bit is the one git has, not the disk's."""
    if filemode or entry is None or old is None or SYMLINK in (entry[0], old[0]):
        return entry
    return old[0], entry[1]
