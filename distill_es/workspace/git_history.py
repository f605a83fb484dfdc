"""A read-only look at a workspace's git history: the trailers of its commits, for the log heads
anchored there (app/checked_log.py).

Read commands (`sessions`, `show`, `history`, `review`, `verify`) need only this, so it runs one
`git log` itself instead of importing GitPython (whose import is most of a read command's start).
It reads what `GitWorkspace.commit_trailers` reads, parsed the same way, and never writes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from distill_es.domain.errors import WorkspaceError
from distill_es.workspace.commit_messages import parse_trailers

# Every commit of HEAD's history, newest first: its sha, a NUL, its message, a record separator.
_LOG = ("log", "--format=%H%x00%B%x1e", "HEAD")


class GitHistory:
    """The commit trailers of the repository at `root` (its own .git, as GitWorkspace pins it)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        git_dir = self.root / ".git"
        if not git_dir.is_file():  # a plain repo: a GIT_DIR inherited from a git hook must not redirect us
            env.update(GIT_DIR=str(git_dir), GIT_WORK_TREE=str(self.root))
            env["GIT_INDEX_FILE"] = str(git_dir / "index")
        return env

    def commit_trailers(self) -> list[tuple[str, dict[str, list[str]]]]:
        """(sha, trailers) of every commit in HEAD's history, newest first ([] without commits)."""
        try:
            run = subprocess.run(
                ["git", *_LOG], cwd=self.root, env=self._env(), capture_output=True, check=False
            )
        except OSError as exc:
            raise WorkspaceError(f"cannot run git to read {self.root}'s history: {exc}") from None
        if run.returncode != 0:
            return []  # no commits yet (as GitWorkspace reads it)
        out = run.stdout.decode("utf-8", "surrogateescape")
        pairs = (record.strip("\n").partition("\0") for record in out.split("\x1e"))
        return [(sha, parse_trailers(message)) for sha, _, message in pairs if sha]
