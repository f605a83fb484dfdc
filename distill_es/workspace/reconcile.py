"""Putting the managed files back after a crash or a failed step, and reverts that need git's
3-way merge. These are off a session's hot path (they run only when something went wrong, or when
a later edit touched the same files), so they use the git command line, whose behaviour is the
reference: `restore` is `git restore --source --staged --worktree` plus `git clean`."""

from __future__ import annotations

import contextlib
from pathlib import Path

from git import GitCommandError

from distill_es.domain.errors import WorkspaceConflict
from distill_es.domain.layout import TRACKED_PATHS
from distill_es.workspace.git_cli import GitCli
from distill_es.workspace.git_refs import GitDirs


def restore(cli: GitCli, root: Path, sha: str) -> None:
    """Make the tracked paths exactly as at `sha` (index too); HEAD does not move. Files under the
    tracked paths that `sha` lacks are deleted, untracked ones included (ignored ones are kept)."""
    in_source = set(cli("ls-tree", "--name-only", sha, "--", *TRACKED_PATHS).split("\n"))
    in_index = {p.split("/", 1)[0] for p in cli("ls-files", "-z", "--", *TRACKED_PATHS).split("\0") if p}
    known = [p for p in TRACKED_PATHS if p in in_source or p in in_index]
    if known:
        # `restore` runs in no-overlay mode: tracked files that `sha` lacks are removed.
        cli("restore", f"--source={sha}", "--staged", "--worktree", "--", *known)
    present = [p for p in TRACKED_PATHS if (root / p).exists() or (root / p).is_symlink()]
    if present:
        cli("clean", "-f", "-d", "-q", "--", *present)


def dirty_paths(cli: GitCli) -> list[str]:
    """`git status`'s uncommitted changes (staged, unstaged, untracked) under the tracked paths."""
    out = cli("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", *TRACKED_PATHS)
    return sorted({entry[3:] for entry in out.split("\0") if len(entry) > 3})


def clear_sequencer(cli: GitCli, dirs: GitDirs) -> None:
    """Forget a revert left half-done (by a crash): the files are then restored or checked. Only a
    file check when there is nothing to forget."""
    if (dirs.git_dir / "REVERT_HEAD").exists() or (dirs.git_dir / "sequencer").exists():
        with contextlib.suppress(GitCommandError):
            cli("revert", "--quit")


def merge_revert(cli: GitCli, dirs: GitDirs, *, sha: str, head: str, edit_id: str) -> None:
    """`git revert --no-commit sha` (a 3-way merge: later edits to other lines are kept), leaving the
    result in the index and the files; `WorkspaceConflict` with the repo left as at `head` if the
    merge conflicts or a user's staged files are in the way."""
    staged = [p for p in cli("diff", "--cached", "--name-only", "HEAD").split("\n") if p]
    if staged:  # git cannot revert over a dirty index, even outside the tracked paths
        raise WorkspaceConflict(
            f"cannot revert edit {edit_id!r}: files are staged but not committed: {', '.join(staged)}"
        )
    clear_sequencer(cli, dirs)
    try:
        cli("revert", "--no-commit", sha)
    except GitCommandError:
        conflicted = cli("diff", "--name-only", "--diff-filter=U").split()
        abandon_revert(cli, dirs.root, head)
        files = ", ".join(conflicted) or "the files it touched"
        raise WorkspaceConflict(
            f"cannot revert edit {edit_id!r} (commit {sha}): later changes to {files} conflict with it; "
            "the workspace was left unchanged"
        ) from None
    clear_sequencer(cli, dirs)  # the commit is ours to make; git's revert state must not linger


def abandon_revert(cli: GitCli, root: Path, head: str) -> None:
    # Nothing to abort, or the abort failed: the restore below makes the files right anyway.
    with contextlib.suppress(GitCommandError):
        cli("revert", "--abort")
    restore(cli, root, head)
