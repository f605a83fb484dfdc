"""Who the person at the keyboard is, as git knows them: the name reviewers' decisions default to."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


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


# --- who an engine commit is made by, as `git commit` decides it --------------------------------------
FALLBACK_NAME, FALLBACK_EMAIL = "distill_es", "distill_es@localhost"


def _git_date(raw: str | None, now: float) -> str:
    """`<unix seconds> <+hhmm>` from a GIT_*_DATE value (`@1700000000 +0100`, `1700000000 +0100`,
    ISO 8601); the current local time when unset or unreadable."""
    if raw:
        parts = raw.strip().lstrip("@").split()
        if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 5 and parts[1][0] in "+-":
            return f"{parts[0]} {parts[1]}"
        try:
            when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.astimezone()
            return f"{int(when.timestamp())} {_offset(when)}"
    minutes = time.localtime(now).tm_gmtoff // 60
    sign = "-" if minutes < 0 else "+"
    return f"{int(now)} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _offset(when: datetime) -> str:
    minutes = int((when.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


@dataclass(frozen=True)
class CommitIdentity:
    author: str  # `Name <email> <unix seconds> <+hhmm>`, as a commit object's header holds it
    committer: str
    env: dict[str, str]  # GIT_AUTHOR_* as `git commit` exports them to its hooks


def commit_identity(get: Callable[[str, str], str | None], now: float | None = None) -> CommitIdentity:
    """Author and committer as `git commit` picks them: GIT_AUTHOR_* / GIT_COMMITTER_* from the
    environment, then `author.*` / `committer.*`, then `user.*` from git config (`get(section, key)`),
    then $EMAIL; where git would give up ("please tell me who you are"), distill_es's own identity,
    so an unattended run never stops for it."""
    env = os.environ
    now = time.time() if now is None else now

    def pick(role: str) -> tuple[str, str]:
        name = (
            env.get(f"GIT_{role.upper()}_NAME") or get(role, "name") or get("user", "name") or FALLBACK_NAME
        )
        email = (
            env.get(f"GIT_{role.upper()}_EMAIL") or get(role, "email") or get("user", "email")
            or env.get("EMAIL") or FALLBACK_EMAIL
        )  # fmt: skip
        return _clean(name), _clean(email)

    (a_name, a_email), (c_name, c_email) = pick("author"), pick("committer")
    a_date = _git_date(env.get("GIT_AUTHOR_DATE"), now)
    c_date = _git_date(env.get("GIT_COMMITTER_DATE"), now)
    return CommitIdentity(
        author=f"{a_name} <{a_email}> {a_date}",
        committer=f"{c_name} <{c_email}> {c_date}",
        env={"GIT_AUTHOR_NAME": a_name, "GIT_AUTHOR_EMAIL": a_email, "GIT_AUTHOR_DATE": f"@{a_date}"},
    )


def _clean(value: object) -> str:
    # git strips the characters that would break the header line
    text = str(value).strip()
    return "".join(ch for ch in text if ch not in "<>\n\r\0").strip() or "unknown"
