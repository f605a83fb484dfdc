"""The git command line, for the operations that are not on a session's hot path (the first
baseline, `restore`, a revert that needs a 3-way merge, exports for the benchmark command).

Every command is pinned to the workspace's own repository (an inherited `GIT_DIR` or
`GIT_INDEX_FILE` from a git hook cannot redirect it), runs unsigned and never opens an editor.
"""

from __future__ import annotations

from pathlib import Path

from git import Git, GitCommandError

from distill_es.domain.errors import WorkspaceConflict, WorkspaceError

GIT_NAME, GIT_EMAIL = "distill_es", "distill_es@localhost"
# Signing prompts and editors must never block an unattended engine; commits made through the CLI
# (the baseline, a 3-way revert) never start `git maintenance` / `gc --auto` on the user's behalf.
_GIT_OPTS = ("-c", "commit.gpgsign=false", "-c", "core.editor=true", "-c", "maintenance.auto=false",
             "-c", "gc.auto=0")  # fmt: skip


class GitCli:
    """`git` commands run in the repository at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cmd = Git(root)

    def env(self, index_file: Path | None = None, identity: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(identity or {})
        if not (self.root / ".git").is_file():  # a plain repo (not a linked worktree or submodule)
            git_dir = self.root / ".git"
            env.update(
                GIT_DIR=str(git_dir), GIT_WORK_TREE=str(self.root), GIT_INDEX_FILE=str(git_dir / "index")
            )
        if index_file is not None:
            env["GIT_INDEX_FILE"] = str(index_file)
        return env

    def __call__(
        self,
        *args: str,
        index_file: Path | None = None,
        identity: dict[str, str] | None = None,
        strip_newline_in_stdout: bool = True,
    ) -> str:
        if args[0] != "init" and not (self.root / ".git").exists():
            raise WorkspaceError(f"{self.root} is not a git workspace yet; run init() first")
        try:
            return self._cmd.execute(
                ["git", *_GIT_OPTS, *args],
                env=self.env(index_file, identity),
                strip_newline_in_stdout=strip_newline_in_stdout,
            )
        except GitCommandError as exc:
            if "index.lock" in str(exc.stderr):
                raise index_locked(self.root) from None
            raise


def index_locked(root: Path) -> WorkspaceConflict:
    return WorkspaceConflict(
        f"another git process is working in {root} (its .git/index.lock is taken); "
        "wait for it to finish, or remove .git/index.lock if no git process is running"
    )
