"""Reading a workspace's sessions: views at any version, their history and costs, the review queue,
and the audit. Every read goes through the checked log: a damaged session is never shown as sound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_es.app.checked_log import CheckedLog
from distill_es.domain.errors import DamagedSession, InvalidVersion, VersionNotFound
from distill_es.domain.vocabulary import LearningSession, SessionStatus
from distill_es.store.app import EventStore
from distill_es.store.projections import SessionIndex
from distill_es.store.timeline import cost_ledger, timeline
from distill_es.store.verify import SessionReport, verify_session, verify_store


class SessionQueries:
    def __init__(self, home: Path, store: EventStore, index: SessionIndex, log: CheckedLog) -> None:
        self.home = home
        self.store = store
        self.index = index
        self.log = log

    def get(self, session_id: str, version: int | None = None) -> LearningSession:
        session = self.log.load(session_id)  # the whole session must be sound before any version is shown
        if version is None:
            return session.view()
        if version < 1:
            raise InvalidVersion(f"version {version} of session {session_id}: versions start at 1")
        if version > session.version:
            raise VersionNotFound(
                f"session {session_id} has no version {version}: its last version is {session.version}"
            )
        return self.store.load(session_id, version=version).view()

    def get_at(self, session_id: str, at: Any) -> LearningSession:
        self.log.load(session_id)
        return self.store.load_at(session_id, at).view()

    def history(self, session_id: str) -> list[dict[str, Any]]:
        return timeline(self.log.events(session_id))

    def cost_ledger(self, session_id: str) -> list[dict[str, Any]]:
        return cost_ledger(self.log.events(session_id))

    def sessions_and_damage(
        self, status: SessionStatus | str | None = None, **filters: Any
    ) -> tuple[list[LearningSession], list[DamagedSession]]:
        """(the sound sessions, the damaged ones) of this workspace, newest first: one damaged
        session never hides the others."""
        rows = self.index.rows(
            status=SessionStatus(status).value if status else None, workspace=str(self.home), **filters
        )
        anchors = self.log.anchors()
        views: list[LearningSession] = []
        damaged: list[DamagedSession] = []
        for row in rows:
            try:
                if row.get("damage"):
                    raise DamagedSession(row["session_id"], row["damage"])
                views.append(self.log.load(row["session_id"], anchors, seen=row).view())  # row read first
            except DamagedSession as exc:
                damaged.append(exc)
        return views, damaged

    def session_ids(self, prefix: str = "") -> list[str]:
        """Every session id of this workspace the index knows (starting with `prefix`), damaged ones
        included, newest first."""
        return self.index.session_ids(workspace=str(self.home), prefix=prefix)

    def count(self, status: SessionStatus | str | None = None, **filters: Any) -> int:
        """How many sessions `sessions_and_damage` lists without a limit (damaged ones included)."""
        filters = {k: v for k, v in filters.items() if k not in ("limit", "offset")}
        status_value = SessionStatus(status).value if status else None
        return self.index.count(status=status_value, workspace=str(self.home), **filters)

    def pending_reviews(self) -> list[dict[str, Any]]:
        """Edits waiting for a reviewer, oldest first; never those of a damaged session (approving
        one would be refused: see `sessions_and_damage` to name them)."""
        items = self.index.review_queue(workspace=str(self.home))
        anchors = self.log.anchors()
        sound: dict[str, bool] = {}
        for sid in {item["session_id"] for item in items}:
            try:
                self.log.load(sid, anchors)
                sound[sid] = True
            except DamagedSession:
                sound[sid] = False
        return [item for item in items if sound[item["session_id"]]]

    def verify(self, session_id: str | None = None) -> list[SessionReport]:
        """Audit the log: chains, replays, the index, and the log heads anchored in this workspace's
        git history (which do not depend on the index: they hold with the views deleted)."""
        self.index.catch_up()
        anchors = self.log.anchors()
        if session_id is not None:
            sid = str(session_id)
            return [verify_session(self.store, self.index, sid, anchors=anchors.get(sid, []))]
        return verify_store(self.store, self.index, anchors=anchors)
