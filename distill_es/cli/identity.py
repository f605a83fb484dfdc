"""Who a reviewer's command is done by when `--by` is not given: git's `user.name` (of the workspace,
then global), then $USER, as git itself would name the author."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from distill_es.cli.errors import CliFailure


def git_user_name(home: Path | None) -> str:
    command = ["git", *(["-C", str(home)] if home else []), "config", "user.name"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def who(by: str | None, home: Path | None) -> str:
    """`--by` as given; else git's user.name; else $USER; else a usage error saying what to pass."""
    if by is not None:
        return by
    name = git_user_name(home) or os.environ.get("USER", "").strip()
    if not name:
        raise CliFailure(2, "who is this? pass --by NAME (no git user.name and no $USER to default to)")
    return name
