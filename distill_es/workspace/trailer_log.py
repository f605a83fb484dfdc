"""The trailers of every commit in HEAD's history (what the log's anchors are checked against on
every session load), kept in a cache file in the git directory so that a process reads only the
commits made since the cache was written, not the whole history again.

The cache is only a shortcut: it names the tip it was taken at, and it is used only when the walk
from HEAD reaches that tip (so the cached commits are HEAD's ancestors); otherwise, or when it is
missing or unreadable, the whole history is read and the cache written again.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from distill_es.workspace.trailer_search import TrailerFinder, Trailers, history

CACHE_NAME = "distill_es-trailers.json"
Pairs = list[tuple[str, Trailers]]


def commit_trailers(finder: TrailerFinder, git_dir: Path, head: str | None) -> Pairs:
    """(sha, trailers) of every commit reachable from `head`, newest first."""
    if head is None:
        return []
    path = git_dir / CACHE_NAME
    tip, cached = _read(path)
    if tip == head:
        return cached
    new: Pairs = []
    reached = False
    for commit in history(finder.store, head, frozenset({tip}) if tip else frozenset()):
        new.append((commit.sha, finder.trailers(commit.sha)))
        reached = reached or tip in commit.parents
    if reached:
        seen = {sha for sha, _ in new}
        new += [(sha, trailers) for sha, trailers in cached if sha not in seen]
    _write(path, head, new)
    return new


def _read(path: Path) -> tuple[str | None, Pairs]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tip = data["tip"]
        pairs = [(str(sha), {str(k): [str(v) for v in vs] for k, vs in trailers.items()})
                 for sha, trailers in data["commits"]]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, []
    return (tip if isinstance(tip, str) and len(tip) == 40 else None), pairs


def _write(path: Path, tip: str, pairs: Pairs) -> None:
    with contextlib.suppress(OSError):  # only a cache: a read-only git dir reads the history again
        replace_text(path, json.dumps({"tip": tip, "commits": pairs}, separators=(",", ":")))


def replace_text(path: Path, text: str) -> None:
    """Readers see the old file or the new one (temp file, rename); no fsync: a cache lost in a
    power cut is read again from git."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
