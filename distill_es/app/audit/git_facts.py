"""What git says of an edit's commit, read only: its trailers and its diff (for `explain`).

Never creates a repository or writes to one: a workspace without `.git`, or a commit that is not in it
(the store was copied, history rewritten), gives None and the lineage says the trailers were not found.
"""

from __future__ import annotations

import re
from pathlib import Path

from git import Git
from git.exc import GitCommandError

from distill_es.app.audit.links import CommitFacts
from distill_es.workspace.commit_messages import parse_trailers

_SHA = re.compile(r"[0-9a-f]{7,64}")


def commit_facts(root: Path, sha: str) -> CommitFacts | None:
    """The commit's trailers and diff, or None when `root` has no git repository or no such commit."""
    if not _SHA.fullmatch(sha) or not (Path(root) / ".git").exists():
        return None
    git = Git(str(root))
    try:
        message = git.execute(["git", "log", "-1", "--format=%B", sha, "--"])
        diff = git.execute(["git", "show", "--no-color", "--no-ext-diff", "--format=", sha, "--"])
    except GitCommandError:
        return None
    return CommitFacts(trailers=parse_trailers(str(message).strip("\n")), diff=str(diff))
