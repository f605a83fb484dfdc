"""Who a reviewer's command is done by when `--by` is not given: the person's git identity
($GIT_AUTHOR_NAME, then the global `user.name`), then $USER.

Not the workspace repository's own `user.name`: that is the engine's committer (`distill_es`), set
when the workspace was created, and never a person.
"""

from __future__ import annotations

import os
import subprocess

from distill_es.cli.errors import CliFailure


def git_user_name() -> str:
    """The person's git name (environment, then global config); "" when git has none."""
    if name := os.environ.get("GIT_AUTHOR_NAME", "").strip():
        return name
    command = ["git", "config", "--global", "--get", "user.name"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def who(by: str | None) -> str:
    """`--by` as given; else the git identity; else $USER; else a usage error saying what to pass."""
    if by is not None:
        return by
    name = git_user_name() or os.environ.get("USER", "").strip()
    if not name:
        raise CliFailure(2, "who is this? pass --by NAME (git has no user.name and $USER is not set)")
    return name
