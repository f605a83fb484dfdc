"""The student's workspace under git: one commit per edit, exact reverts, crash-safe restore.

Fixes the reference's checkpoint store (spec search §7.3, §11.1, 2, 11): every applied edit is its
own commit carrying `Edit-ID` / `Session-ID` trailers, commits are found by parsing trailers (never by
`--grep`, where `sess-1` matched `sess-10`), shas are full, engine files are git-ignored so they never
make the tree dirty, untracked files created by an edit are removed on restore, an edit that changes
nothing makes no commit, and a revert that does not apply is aborted with the repo left clean.
Commit messages and their trailers are written and parsed in `commit_messages.py`, the .gitignore lines
in `gitignore.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from git import Git, GitCommandError

from distill_es.domain.errors import InvalidEdit, WorkspaceConflict, WorkspaceError
from distill_es.domain.layout import TRACKED_PATHS, prompt_path
from distill_es.domain.vocabulary import Edit, EditRiskTier
from distill_es.ports import AppliedEdit, EditCheck
from distill_es.workspace.appliers import applier_for
from distill_es.workspace.commit_messages import (
    BASELINE_MESSAGE,
    BASELINE_TRAILER,
    edit_message,
    log_head_trailer,
    parse_trailers,
    revert_message,
    trailer_value,
)
from distill_es.workspace.files import atomic_write_text, read_inside, read_text
from distill_es.workspace.gitignore import merged_gitignore

GIT_NAME, GIT_EMAIL = "distill_es", "distill_es@localhost"
# Commits are always made as distill_es, whatever identity the user's repo or environment has.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": GIT_NAME,
    "GIT_AUTHOR_EMAIL": GIT_EMAIL,
    "GIT_COMMITTER_NAME": GIT_NAME,
    "GIT_COMMITTER_EMAIL": GIT_EMAIL,
}
# Signing prompts and editors must never block an unattended engine.
_GIT_OPTS = ("-c", "commit.gpgsign=false", "-c", "core.editor=true")

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
        self._cmd = Git(self.root)

    # --- setup --------------------------------------------------------------------------------

    def init(self) -> str:
        """Create the repo if needed and the baseline commit once; returns the baseline's full sha.

        Never commits a change the engine did not make: in a repo that already has commits, tracked
        files under the managed paths with uncommitted (or staged) changes refuse the baseline
        (`WorkspaceConflict` naming them). The baseline is built in the engine's own index, so the
        user's staged files never ride along. Concurrent first runs wait for each other.
        """
        if not self.root.is_dir():
            raise WorkspaceError(f"workspace {self.root} does not exist or is not a directory")
        with _directory_lock(self.root):
            return self._init_locked()

    def _init_locked(self) -> str:
        if not (self.root / ".git").exists():
            self._git("init", "-q")
            self._git("config", "user.name", GIT_NAME)
            self._git("config", "user.email", GIT_EMAIL)
            self._git("config", "core.autocrlf", "false")  # files must stay byte-identical
        baseline = self._find_commit(lambda t: BASELINE_TRAILER[1] in t.get(BASELINE_TRAILER[0], []))
        if baseline is not None:
            self._write_gitignore()
            return baseline
        head = self._optional_head()
        if head is not None:
            self._refuse_user_changes()
        self._write_gitignore()
        return self._commit_baseline(head)

    def _staged_paths(self, head: str | None) -> set[str]:
        """Paths (top-level parts and full paths) the user has staged relative to `head`."""
        if head is None:
            out = self._git("ls-files", "-z", "--cached")
        else:
            out = self._git("diff", "--cached", "--name-only", "-z", head)
        staged = {p for p in out.split("\0") if p}
        return staged | {p.split("/", 1)[0] for p in staged}

    def _optional_head(self) -> str | None:
        """HEAD's sha, or None in a repo without commits."""
        try:
            return self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        except GitCommandError:
            return None

    def _refuse_user_changes(self) -> None:
        """Tracked managed files the user changed and did not commit: the baseline must not take them."""
        out = self._git("status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", "--",
                        *TRACKED_PATHS)  # fmt: skip
        changed = sorted({entry[3:] for entry in out.split("\0") if len(entry) > 3})
        if changed:
            raise WorkspaceConflict(
                f"{self.root} has uncommitted changes to files distill_es manages: {', '.join(changed)}; "
                "commit or discard them first (the baseline commit never includes your uncommitted work)"
            )

    def _commit_baseline(self, head: str | None) -> str:
        """The baseline commit, made from the engine's own index: HEAD's tree plus the managed paths
        (only untracked files can differ from HEAD there) and the engine's .gitignore patterns merged
        into HEAD's .gitignore. HEAD moves; the user's index is updated for exactly those paths."""
        git_dir = Path(self._git("rev-parse", "--absolute-git-dir"))
        index = git_dir / "distill_es-baseline.index"
        index.unlink(missing_ok=True)
        try:
            if head is not None:
                self._git_with_index(index, "read-tree", head)
            managed = self._known(TRACKED_PATHS)
            if managed:
                self._git_with_index(index, "add", "-A", "--", *managed)
            # HEAD's own .gitignore plus our patterns: the user's uncommitted lines stay uncommitted.
            blob = self._hash_blob(merged_gitignore(self._show(head, ".gitignore")))
            self._git_with_index(index, "update-index", "--add", "--cacheinfo", f"100644,{blob},.gitignore")
            tree = self._git_with_index(index, "write-tree")
        finally:
            index.unlink(missing_ok=True)
        message = BASELINE_MESSAGE
        staged_before = self._staged_paths(head)
        parents = ["-p", head] if head is not None else []
        sha = self._git("commit-tree", tree, *parents, "-m", message)
        self._git("update-ref", "-m", "distill_es: baseline", "HEAD", sha, head or "")
        self._sync_user_index(staged_before, [*managed, ".gitignore"])
        return sha

    def _show(self, head: str | None, path: str) -> str:
        """The file's text at `head` ("" without a head or without the file)."""
        if head is None:
            return ""
        try:
            return self._git("show", f"{head}:{path}", strip_newline_in_stdout=False)
        except GitCommandError:
            return ""

    def _hash_blob(self, text: str) -> str:
        with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
            handle.write(text.encode("utf-8"))
        try:
            return self._git("hash-object", "-w", "--no-filters", handle.name)
        finally:
            os.unlink(handle.name)

    def _git_with_index(self, index: Path, *args: str) -> str:
        """A git command on the engine's own index file, never the user's."""
        return self._git(*args, index_file=index)

    def _sync_user_index(self, staged_before: set[str], paths: list[str]) -> None:
        """After HEAD moved to the baseline, the user's index entries for `paths` follow it (or git would
        show our files as staged deletions), except entries the user had staged themselves."""
        ours = [p for p in paths if p not in staged_before]
        if ours:
            self._git("reset", "-q", "HEAD", "--", *ours)

    # --- reading ------------------------------------------------------------------------------

    def head_sha(self) -> str:
        return self._rev_parse("HEAD")

    def tree_sha(self) -> str:
        return self._rev_parse("HEAD^{tree}")

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
        git_dir = Path(self._git("rev-parse", "--absolute-git-dir"))
        fd, name = tempfile.mkstemp(prefix="distill_es-worktree-", suffix=".index", dir=git_dir)
        os.close(fd)
        index = Path(name)
        index.unlink()
        try:
            self._git_with_index(index, "read-tree", "HEAD")
            managed = self._known(TRACKED_PATHS)
            if managed:
                self._git_with_index(index, "add", "-A", "--", *managed)
            return self._git_with_index(index, "write-tree")
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
            self._git_with_index(index, "read-tree", tree_sha)
            listed = self._git_with_index(index, "ls-files", "-z", "--", *TRACKED_PATHS)
            paths = [p for p in listed.split("\0") if p]
            if paths:
                prefix = str(Path(dest).resolve()) + os.sep
                self._git_with_index(index, "checkout-index", "-f", f"--prefix={prefix}", "--", *paths)
        finally:
            index.unlink(missing_ok=True)

    def dirty_paths(self) -> list[str]:
        """Uncommitted changes (staged, unstaged, untracked) under the tracked paths, sorted."""
        out = self._git(
            "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", *TRACKED_PATHS
        )
        paths = {entry[3:] for entry in out.split("\0") if len(entry) > 3}
        return sorted(paths)

    def read_prompt(self, agent: str) -> str | None:
        """The agent's current system prompt; None when it has no prompt file (an empty file is "")."""
        return read_inside(self.root, prompt_path(agent))

    def find_edit_commit(self, session_id: str, edit_id: str) -> str | None:
        """The newest commit whose trailers say exactly this `Edit-ID` and `Session-ID`."""
        return self._find_commit(
            lambda t: edit_id in t.get("Edit-ID", []) and session_id in t.get("Session-ID", [])
        )

    def commit_trailers(self) -> list[tuple[str, dict[str, list[str]]]]:
        """(sha, trailers) of every commit in HEAD's history, newest first ([] without commits)."""
        try:
            out = self._git("log", "--format=%H%x00%B%x1e", "HEAD")
        except GitCommandError:
            return []
        pairs = (record.strip("\n").partition("\0") for record in out.split("\x1e"))
        return [(sha, parse_trailers(message)) for sha, _, message in pairs if sha]

    def find_revert_commit(self, session_id: str, edit_id: str) -> str | None:
        """The newest commit whose trailers say exactly this `Reverts-Edit-ID` and `Session-ID`."""
        return self._find_commit(
            lambda t: edit_id in t.get("Reverts-Edit-ID", []) and session_id in t.get("Session-ID", [])
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
            for path in applier.apply(edit, self.root):
                if path.split("/", 1)[0] not in TRACKED_PATHS:
                    raise InvalidEdit(
                        f"edit {edit.id!r} wrote {path}, outside the tracked paths {TRACKED_PATHS}"
                    )
            paths = self._stage()
            if not self._git("diff", "--cached", "--name-only", "HEAD", "--", *TRACKED_PATHS):
                raise InvalidEdit(f"edit {edit.id!r} changes nothing")
            tier = EditRiskTier(risk_tier).value
            message = edit_message(edit, session_id=session_id, tier=tier, anchor=anchor)
            self._commit(message, only=paths)
        except BaseException as exc:
            self._undo_uncommitted(pre_sha, exc)
            raise
        sha = self.head_sha()
        return AppliedEdit(commit_sha=sha, tree_sha=self.tree_sha(), changed_files=self._changed_files(sha))

    def revert(self, commit_sha: str, *, session_id: str, edit_id: str, log_head: str | None = None) -> str:
        """Undo exactly `commit_sha` as a new commit; `WorkspaceConflict` (repo left clean) if it cannot.

        `log_head` as for `apply`."""
        trailer_value("edit id", edit_id)
        trailer_value("session id", session_id)
        anchor = log_head_trailer(log_head)
        sha = self._own_commit(commit_sha)
        trailers = parse_trailers(self._git("log", "-1", "--format=%B", sha))
        if edit_id not in trailers.get("Edit-ID", []):
            found = ", ".join(trailers.get("Edit-ID", [])) or "none"
            raise WorkspaceConflict(
                f"commit {sha} is not the commit of edit {edit_id!r} (its Edit-ID: {found})"
            )
        previous = self.find_revert_commit(session_id, edit_id)
        if previous is not None and sha in self._trailers_of(previous).get("Reverted-Commit", []):
            return previous  # already reverted (e.g. a retry after a crash): no second revert
        self._require_clean(f"revert edit {edit_id!r}")
        staged = self._git("diff", "--cached", "--name-only", "HEAD").split("\n")
        if any(staged):  # git cannot revert over a dirty index, even outside the tracked paths
            raise WorkspaceConflict(
                f"cannot revert edit {edit_id!r}: files are staged but not committed: {', '.join(staged)}"
            )
        head = self.head_sha()
        self._clear_sequencer()
        try:
            self._git("revert", "--no-commit", sha)
        except GitCommandError:
            conflicted = self._git("diff", "--name-only", "--diff-filter=U").split()
            self._abandon_revert(head)
            files = ", ".join(conflicted) or "the files it touched"
            raise WorkspaceConflict(
                f"cannot revert edit {edit_id!r} (commit {sha}): later changes to {files} conflict with it; "
                "the workspace was left unchanged"
            ) from None
        subject = self._git("log", "-1", "--format=%s", sha)
        message = revert_message(
            edit_id=edit_id, subject=subject, sha=sha, session_id=session_id, anchor=anchor
        )
        try:
            # Empty when the change was already undone by hand: the revert is still recorded.
            self._commit(message, allow_empty=True)
        except BaseException:
            if self.head_sha() == head:
                self._abandon_revert(head)
            raise
        return self.head_sha()

    def restore(self, sha: str) -> None:
        """Make the tracked paths exactly as at `sha` (index too); HEAD does not move.

        Files under the tracked paths that `sha` lacks are deleted, untracked ones included.
        """
        sha = self._own_commit(sha, require_ancestor=False)
        self._clear_sequencer()
        in_source = set(self._git("ls-tree", "--name-only", sha, "--", *TRACKED_PATHS).split("\n"))
        in_index = {
            p.split("/", 1)[0] for p in self._git("ls-files", "-z", "--", *TRACKED_PATHS).split("\0") if p
        }
        known = [p for p in TRACKED_PATHS if p in in_source or p in in_index]
        if known:
            # `restore` runs in no-overlay mode: tracked files that `sha` lacks are removed.
            self._git("restore", f"--source={sha}", "--staged", "--worktree", "--", *known)
        present = [p for p in TRACKED_PATHS if (self.root / p).exists() or (self.root / p).is_symlink()]
        if present:
            self._git("clean", "-f", "-d", "-q", "--", *present)

    # --- internals ----------------------------------------------------------------------------

    def _env(self, index_file: Path | None = None) -> dict[str, str]:
        env = dict(_GIT_ENV)
        if not (self.root / ".git").is_file():  # a plain repo (not a linked worktree or submodule)
            # Pin the repo: a GIT_DIR / GIT_INDEX_FILE inherited from a git hook must not redirect us.
            git_dir = self.root / ".git"
            env.update(
                GIT_DIR=str(git_dir), GIT_WORK_TREE=str(self.root), GIT_INDEX_FILE=str(git_dir / "index")
            )
        if index_file is not None:
            env["GIT_INDEX_FILE"] = str(index_file)
        return env

    def _git(self, *args: str, index_file: Path | None = None, strip_newline_in_stdout: bool = True) -> str:
        if args[0] != "init" and not (self.root / ".git").exists():
            raise WorkspaceError(f"{self.root} is not a git workspace yet; run init() first")
        try:
            return self._cmd.execute(
                ["git", *_GIT_OPTS, *args],
                env=self._env(index_file),
                strip_newline_in_stdout=strip_newline_in_stdout,
            )
        except GitCommandError as exc:
            if "index.lock" in str(exc.stderr):
                raise WorkspaceConflict(
                    f"another git process is working in {self.root} (its .git/index.lock is taken); "
                    "wait for it to finish, or remove .git/index.lock if no git process is running"
                ) from None
            raise

    def _rev_parse(self, rev: str) -> str:
        try:
            return self._git("rev-parse", "--verify", "--quiet", rev)
        except GitCommandError:
            raise WorkspaceError(f"{self.root} has no commit {rev!r}; run init() first") from None

    def _own_commit(self, sha: str, *, require_ancestor: bool = True) -> str:
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise WorkspaceError(f"{sha!r} is not a full 40-hex commit sha")
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}")
        except GitCommandError:
            raise WorkspaceError(f"commit {sha} does not exist in {self.root}") from None
        if require_ancestor:
            try:
                self._git("merge-base", "--is-ancestor", sha, "HEAD")
            except GitCommandError:
                raise WorkspaceConflict(f"commit {sha} is not in the workspace's history (HEAD)") from None
        return sha

    def _require_clean(self, action: str) -> None:
        dirty = self.dirty_paths()
        if dirty:
            raise WorkspaceConflict(
                f"cannot {action}: tracked files have uncommitted changes: {', '.join(dirty)} "
                "(commit or discard them first)"
            )

    def _known(self, paths: tuple[str, ...]) -> list[str]:
        """Those of `paths` git knows: in HEAD, in the index, or untracked and not ignored."""
        listed = self._git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths)
        found = {p.split("/", 1)[0] for p in listed.split("\0") if p}
        with contextlib.suppress(GitCommandError):  # no HEAD yet
            found.update(self._git("ls-tree", "--name-only", "HEAD", "--", *paths).splitlines())
        return [p for p in paths if p in found]

    def _stage(self, extra: tuple[str, ...] = ()) -> list[str]:
        """`git add -A` the tracked paths (and `extra`); returns the pathspecs that were used."""
        paths = self._known((*TRACKED_PATHS, *extra))
        if paths:
            self._git("add", "-A", "--", *paths)
        return paths

    def _commit(self, message: str, *, only: list[str] | None = None, allow_empty: bool = False) -> None:
        """Commit; with `only`, just those paths, so a user's staged files elsewhere stay out of it."""
        args = ["commit", "-q", "--no-verify", "--cleanup=verbatim", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        if only:
            args += ["--only", "--", *only]
        self._git(*args)

    def _changed_files(self, sha: str) -> list[str]:
        out = self._git("diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", sha)
        return sorted(p for p in out.split("\0") if p)

    def _trailers_of(self, sha: str) -> dict[str, list[str]]:
        return parse_trailers(self._git("log", "-1", "--format=%B", sha))

    def _find_commit(self, predicate: Callable[[dict[str, list[str]]], bool]) -> str | None:
        try:
            out = self._git("log", "--format=%H%x00%B%x1e", "HEAD")
        except GitCommandError:
            return None  # no commits yet
        for record in out.split("\x1e"):
            sha, _, message = record.strip("\n").partition("\0")
            if sha and predicate(parse_trailers(message)):
                return sha
        return None

    def _undo_uncommitted(self, pre_sha: str, exc: BaseException) -> None:
        """After a failed apply: put the files back, unless the commit was made after all."""
        try:
            if self.head_sha() == pre_sha:
                self.restore(pre_sha)
        except Exception as restore_error:  # keep the original error; say the tree may be dirty
            exc.add_note(f"restoring {pre_sha} also failed: {restore_error}")

    def _clear_sequencer(self) -> None:
        """Forget a revert left half-done (by a crash): the files are then restored or checked."""
        git_dir = Path(self._git("rev-parse", "--absolute-git-dir"))
        if (git_dir / "REVERT_HEAD").exists() or (git_dir / "sequencer").exists():
            with contextlib.suppress(GitCommandError):
                self._git("revert", "--quit")

    def _abandon_revert(self, head: str) -> None:
        # Nothing to abort, or the abort failed: the restore below makes the files right anyway.
        with contextlib.suppress(GitCommandError):
            self._git("revert", "--abort")
        self.restore(head)

    def _write_gitignore(self) -> None:
        path = self.root / ".gitignore"
        current = read_text(path) or ""
        merged = merged_gitignore(current)
        if merged != current:
            atomic_write_text(path, merged)
