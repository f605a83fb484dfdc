"""Log heads anchored outside the store: the `Distill-Log-Head` trailer of the engine's git commits.

Every commit the engine makes for a session (an edit, a revert) carries the session's log head at that
moment — `Distill-Log-Head: <version>:<digest>` — the version and digest of the last event already
saved. The store cannot rewrite git history, so a log that no longer holds that event with that digest
was truncated or rewritten. See docs/operations.md, "Tamper evidence".
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

ANCHOR_TRAILER = "Distill-Log-Head"
SESSION_TRAILER = "Session-ID"
_VALUE = re.compile(r"^([1-9][0-9]{0,9}):([0-9a-f]{64})$")


@dataclass(frozen=True)
class Anchor:
    session_id: str
    version: int
    digest: str
    commit: str


def anchor_value(version: int, digest: str) -> str:
    return f"{version}:{digest}"


def anchors_by_session(commits: Iterable[tuple[str, dict[str, list[str]]]]) -> dict[str, list[Anchor]]:
    """Anchors found in (commit sha, trailers) pairs, per session, highest version first.

    A trailer that does not parse is ignored: it anchors nothing (git history is not ours to judge).
    """
    found: dict[str, list[Anchor]] = {}
    for sha, trailers in commits:
        sessions = trailers.get(SESSION_TRAILER, [])
        if len(sessions) != 1:
            continue
        for value in trailers.get(ANCHOR_TRAILER, []):
            match = _VALUE.match(value)
            if match:
                anchor = Anchor(sessions[0], int(match.group(1)), match.group(2), sha)
                found.setdefault(anchor.session_id, []).append(anchor)
    for anchors in found.values():
        anchors.sort(key=lambda a: a.version, reverse=True)
    return found


def anchor_problem(anchor: Anchor, head_version: int, digest_at_anchor: str | None) -> tuple[str, str] | None:
    """(kind, detail) when the log disagrees with `anchor`, else None.

    `head_version`: the log's last version; `digest_at_anchor`: the digest the log records at the
    anchor's version (None when it has no such event).
    """
    where = f"commit {anchor.commit[:12]} anchors version {anchor.version}"
    if head_version < anchor.version:
        return "truncated", f"{where}, but the log ends at version {head_version}"
    if digest_at_anchor is None:
        return "deleted", f"{where}, but the log has no event {anchor.version}"
    if not hmac.compare_digest(digest_at_anchor, anchor.digest):
        recorded = digest_at_anchor[:12]
        return "rewritten", f"{where} with digest {anchor.digest[:12]}, the log records {recorded}"
    return None
