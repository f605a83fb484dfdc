"""The user's commit hooks, run as `git commit -m MESSAGE` runs them: pre-commit, prepare-commit-msg,
commit-msg (which may edit the message) and post-commit. A repository without hooks starts no
process at all; a hook that is not executable is skipped, as git skips it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from distill_es.domain.errors import WorkspaceConflict

_TIMEOUT_S = 600  # a hook that hangs must not hang an unattended engine forever


def hooks_dir(git_dir: Path, root: Path, hooks_path: str | None) -> Path:
    """`core.hooksPath` (relative to the working tree, as git reads it), else `<git dir>/hooks`."""
    if hooks_path:
        return (root / os.path.expanduser(hooks_path)).resolve()
    return git_dir / "hooks"


def find(directory: Path, name: str) -> Path | None:
    hook = directory / name
    return hook if hook.is_file() and os.access(hook, os.X_OK) else None


def run(hook: Path, args: list[str], *, root: Path, env: Mapping[str, str], check: bool = True) -> None:
    """Run `hook` in the working tree's top directory; `WorkspaceConflict` if it fails and `check`."""
    try:
        done = subprocess.run(
            [str(hook), *args], cwd=root, env=dict(env), capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if not check:
            return
        raise WorkspaceConflict(f"the {hook.name} hook ({hook}) could not run: {exc}") from None
    if check and done.returncode != 0:
        said = (
            done.stderr.decode("utf-8", "replace").strip() or done.stdout.decode("utf-8", "replace").strip()
        )
        tail = said[-500:] if said else "(no output)"
        raise WorkspaceConflict(
            f"the repository's {hook.name} hook refused the commit (exit {done.returncode}): {tail}; "
            "nothing was committed"
        )
