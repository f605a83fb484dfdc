"""Commits found by their trailers, walking HEAD's history in process from the newest commit, and
never past a commit the event log already recorded (`since`): a session's commits all come after
its recorded pre-apply sha, so the walk reads a handful of commits, not the whole log.

Without `since` the walk reads all of HEAD's history, as `git log` would; it is what reconciliation
falls back on when the log has no sha to stop at.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from distill_es.workspace.commit_messages import parse_trailers
from distill_es.workspace.git_objects import CommitInfo, ObjectStore

Trailers = dict[str, list[str]]


def history(store: ObjectStore, head: str | None, stop: frozenset[str] = frozenset()) -> Iterator[CommitInfo]:
    """HEAD's ancestors newest first (by committer date, as `git log`), each once; a commit in `stop`
    is neither yielded nor walked past."""
    if head is None or head in stop:
        return
    seen = {head}
    queue: list[tuple[int, int, str]] = []
    order = 0

    def push(sha: str) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (-store.commit(sha).committed_at, order, sha))

    push(head)
    while queue:
        _, _, sha = heapq.heappop(queue)
        commit = store.commit(sha)
        yield commit
        for parent in commit.parents:
            if parent not in seen and parent not in stop:
                seen.add(parent)
                push(parent)


class TrailerFinder:
    """Trailers of commits, parsed once per sha (commits never change)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._parsed: dict[str, Trailers] = {}

    def trailers(self, sha: str) -> Trailers:
        found = self._parsed.get(sha)
        if found is None:
            found = self._parsed[sha] = parse_trailers(self.store.commit(sha).message)
        return found

    def find(
        self, head: str | None, predicate: Callable[[Trailers], bool], *, since: str | None = None
    ) -> str | None:
        """The newest commit reachable from `head` whose trailers satisfy `predicate`, not looking at
        `since` or its ancestors (when `since` is not an ancestor of `head`, the whole history)."""
        stop = frozenset({since}) if since else frozenset()
        for commit in history(self.store, head, stop):
            if predicate(self.trailers(commit.sha)):
                return commit.sha
        return None

    def is_ancestor(self, sha: str, head: str | None) -> bool:
        """Whether `sha` is `head` or one of its ancestors."""
        return any(commit.sha == sha for commit in history(self.store, head))

    def all(self, head: str | None) -> list[tuple[str, Trailers]]:
        return [(commit.sha, self.trailers(commit.sha)) for commit in history(self.store, head)]
