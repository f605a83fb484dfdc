"""What the pages show, read from the engine: plain JSON-mode dicts (the same values `show --json`,
`history --json` and `review --json` print), so what a page shows is what the CLI prints.

Every call goes through one lock: the engine's SQLite connections are not shared across the server's
worker threads at once. Nothing here records an event.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from distill_es.domain.errors import SessionNotFound
from distill_es.domain.session.events import SessionStarted
from distill_es.store.chained import NOT_PAYLOAD

if TYPE_CHECKING:
    from distill_es.api import Engine

T = TypeVar("T")


class AmbiguousSession(ValueError):
    """A session id prefix that several sessions share (a 400 page, as the CLI's exit 2)."""


class AuditReader:
    """Read-only queries the pages need, over one open engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()

    def _locked(self, read: Callable[[], T]) -> T:
        with self._lock:
            return read()

    # --- sessions ---------------------------------------------------------------------------
    def sessions(self, status: str | None = None, trigger: str | None = None) -> list[dict[str, Any]]:
        """Sessions newest first (as `sessions --json`), each with its `verify` verdict added as
        `verified` (true, false) and damaged ones listed with status `damaged`."""

        def read() -> list[dict[str, Any]]:
            filters = {"trigger": trigger} if trigger else {}
            views, damaged = self.engine.sessions_and_damage(status=status or None, **filters)
            rows = [view.model_dump(mode="json") for view in views]
            verdicts = {report.session_id: report.ok for report in self.engine.verify()}
            for row in rows:
                row["verified"] = verdicts.get(row["id"])
            rows += [
                {"id": d.session_id, "status": "damaged", "error": str(d), "verified": False}
                for d in damaged
                if not status or status == "damaged"
            ]
            return rows

        return self._locked(read)

    def regate(self, sid: str | None, max_regression: float | None, min_improvement: float | None) -> Any:
        """`regate --json` (of one session, else of all). A damaged session is a DamagedSession (a
        409 page) when named, and listed in `skipped_sessions` with every session, as `regate --all`
        lists it: the store reads any stored event that is not an event as damage."""
        report = self._locked(
            lambda: self.engine.regate(sid, max_regression=max_regression, min_improvement=min_improvement)
        )
        return dict(report.model_dump(mode="json"))

    def session(self, session_id: str, version: int | None = None) -> dict[str, Any]:
        """The session as `show --json` prints it (at `version` when given)."""
        return self._locked(lambda: self.engine.get(session_id, version=version).model_dump(mode="json"))

    def history(self, session_id: str) -> list[dict[str, Any]]:
        """`history --json`, each entry with its event's payload as pretty JSON (`payload`)."""

        def read() -> list[dict[str, Any]]:
            entries = self.engine.history(session_id)
            payloads = {
                event.originator_version: payload_json(event)
                for event in self.engine.queries.log.events(session_id)
            }
            for entry in entries:
                entry["payload"] = payloads.get(entry["version"], "{}")
            return entries

        return self._locked(read)

    def events(self, session_id: str) -> list[Any]:
        return self._locked(lambda: list(self.engine.queries.log.events(session_id)))

    def cost_ledger(self, session_id: str) -> list[dict[str, Any]]:
        return self._locked(lambda: self.engine.cost_ledger(session_id))

    def pending_reviews(self) -> list[dict[str, Any]]:
        return self._locked(self.engine.pending_reviews)

    def resolve(self, ref: str) -> str:
        """The full session id for an id or a unique prefix, as `show` resolves it: a full id is looked
        up in the log itself (found even when the index lists it under another workspace path, e.g.
        a moved workspace); a prefix among this workspace's sessions. SessionNotFound when none,
        AmbiguousSession when several."""
        ref = ref.strip().lower()
        if not ref:
            raise SessionNotFound("no session id was given")
        try:
            full = str(UUID(ref))
        except ValueError:
            full = None
        if full is not None:
            if self._locked(lambda: self._is_session(full)):
                return full
            raise SessionNotFound(f"no session {ref!r} in this store")
        matches = [sid for sid in self._locked(self.engine.session_ids) if sid.startswith(ref)]
        if not matches:
            raise SessionNotFound(f"no session of this workspace has an id starting with {ref!r}")
        if len(matches) > 1:
            raise AmbiguousSession(f"session prefix {ref!r} is ambiguous: it matches {len(matches)} sessions")
        return matches[0]

    def _is_session(self, sid: str) -> bool:
        """Whether the log holds a session (not a training run or a loop) with this id."""
        first = self.engine.store.app.recorder.select_events(UUID(sid), limit=1)
        return bool(first) and first[0].topic == SessionStarted.TOPIC

    def commit_diff(self, sha: str | None) -> str:
        """The diff a commit of the workspace made (read from git; empty when it cannot be read)."""
        if not sha:
            return ""

        def read() -> str:
            from git import Repo
            from git.exc import GitError

            try:
                with Repo(self.engine.home) as repo:
                    return str(repo.git.show(sha, format="", no_color=True, no_ext_diff=True))
            except (GitError, ValueError, OSError):
                return ""

        return self._locked(read)

    def call(self, read: Callable[[], T]) -> T:
        """Any other engine read (explain, regate), under the same lock."""
        return self._locked(read)


def payload_json(event: Any) -> str:
    """An event's recorded payload (its state minus the envelope) as indented JSON text."""
    state = {k: v for k, v in vars(event).items() if k not in NOT_PAYLOAD and not k.startswith("_")}
    return json.dumps(state, indent=2, sort_keys=True, default=str, ensure_ascii=False)
