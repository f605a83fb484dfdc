"""Who the person at the keyboard is, as git knows them: the name reviewers' decisions default to."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class GitIdentity:
    git_version: str | None  # None: no `git` on the PATH
    name: str  # git's user.name (global), else $USER; "" when neither is set
    source: str  # "git user.name" | "$USER" | ""


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_identity() -> GitIdentity:
    """git's version and the user's name. The global config, not a workspace's: a workspace's own
    repository names distill_es itself, the author of every commit the engine makes."""
    if shutil.which("git") is None:
        return GitIdentity(None, "", "")
    version = (_git("--version") or "git").removeprefix("git version ").strip()
    name = _git("config", "--global", "--get", "user.name") or ""
    if name:
        return GitIdentity(version, name, "git user.name")
    user = os.environ.get("USER", "")
    return GitIdentity(version, user, "$USER" if user else "")
