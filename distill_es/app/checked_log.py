"""A session's log as the engine reads it: checked to chain, against the index, and against the log
heads anchored in the workspace's git history. A log that fails any check is a `DamagedSession`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_es.domain.anchors import Anchor, anchor_problem, anchors_by_session
from distill_es.domain.errors import DamagedSession, SessionNotFound
from distill_es.domain.session.aggregate import Session
from distill_es.store.app import EventStore
from distill_es.store.projections import SessionIndex
from distill_es.store.urls import DEFAULT_STORE_ID, store_identity
from distill_es.store.verify import log_behind_index
from distill_es.workspace.ownership import recorded_owner

Anchors = dict[str, list[Anchor]]
_UNREAD: Any = object()  # `load` reads the index row itself


def _check_against_index(seen: dict[str, Any] | None, sid: str, version: int, digest: str | None) -> None:
    """`DamagedSession` when the log ends before, or differs at, the last event the index saw (`seen`
    was read before the log: another writer can only add to it meanwhile)."""
    if seen is None or seen.get("status") == "damaged":
        return
    behind = log_behind_index(seen, version, digest, row_without_digest_is_edited=False)
    if behind is not None:
        kind, detail, _ = behind
        raise DamagedSession(sid, detail, kind=kind)


class CheckedLog:
    """Loads sessions and their events, refusing damaged ones. `workspace` gives the workspace whose
    commits carry the anchors (or None: no git history, no anchors); `home`, the workspace whose
    owner store they were anchored for (None: the store is taken to be the owner)."""

    def __init__(
        self, store: EventStore, index: SessionIndex, workspace: Callable[[], Any], home: Path | None = None
    ) -> None:
        self.store = store
        self.index = index
        self._workspace = workspace
        self._home = home

    def anchors(self) -> Anchors:
        """The log heads anchored in the workspace's git history, per session (read, never created:
        a read command must not make a repository). They were anchored for the sessions of the
        workspace's owner store: in another store only the sessions it holds a copy of (an import)
        are held to them; the others are not its sessions at all, not a truncated log."""
        trailers = getattr(self._workspace(), "commit_trailers", None)
        found = anchors_by_session(trailers()) if trailers is not None else {}
        if not found or self._is_owner():
            return found
        return {sid: anchors for sid, anchors in found.items() if self._holds(sid)}

    def _holds(self, sid: str) -> bool:
        try:
            return self.store.has_events(sid)
        except SessionNotFound:  # a trailer naming no session id at all
            return False

    def _is_owner(self) -> bool:
        if self._home is None:
            return True
        owner = recorded_owner(self._home) or DEFAULT_STORE_ID  # none yet: the first write claims it
        return owner == store_identity(self.store.url, self._home)

    def load(self, session_id: str, anchors: Anchors | None = None, seen: Any = _UNREAD) -> Session:
        """The session, refused (`DamagedSession`) when its events do not chain (checked by the
        store on the way in), the log disagrees with the newest head anchored in git, or it ends
        before the last event the index saw (read before loading: another writer only adds).
        `seen`: the session's index row when the caller has just read it (a listing of many)."""
        if seen is _UNREAD:
            seen = self.index.row(str(session_id))
        session = self.store.load(session_id)
        _check_against_index(seen, str(session.id), session.version, session.last_digest)
        found = (self.anchors() if anchors is None else anchors).get(str(session.id), [])
        if found:
            newest = found[0]
            at = session.last_digest if newest.version == session.version else None
            if at is None and newest.version < session.version:
                at = self.store.head_digest(session.id, newest.version)
            problem = anchor_problem(newest, session.version, at)
            if problem is not None:
                raise DamagedSession(str(session.id), problem[1], kind=problem[0])
        return session

    def events(self, session_id: str) -> list[Any]:
        """The session's events, each checked to chain, and checked against every anchor in git."""
        seen = self.index.row(str(session_id))
        events = self.store.domain_events(session_id, checked=True)
        sid = str(events[0].originator_id)
        _check_against_index(seen, sid, len(events), events[-1].digest)
        for anchor in self.anchors().get(sid, []):
            at = events[anchor.version - 1].digest if anchor.version <= len(events) else None
            problem = anchor_problem(anchor, len(events), at)
            if problem is not None:
                raise DamagedSession(sid, problem[1], kind=problem[0])
        return events
