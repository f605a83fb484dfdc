"""The cross-session read model rebuilt from the log (per-session folds are `store.timeline`).

Persisted: the `SessionIndex` (filter by status, trigger, date; newest first) and the pending review
queue it carries. It catches up from the notification log in batches and commits its rows together
with its tracked log position, so a crash can never apply a batch twice or skip one. It is a cache:
deleting its file only costs a rebuild.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

from distill_es.domain.session import events as ev
from distill_es.store.app import EventStore
from distill_es.store.faults import store_fault
from distill_es.store.timeline import describe

# --- the cross-session index --------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session_index (
    session_id TEXT PRIMARY KEY,
    started_epoch REAL NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    workspace TEXT NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS session_index_started ON session_index (started_epoch);
CREATE INDEX IF NOT EXISTS session_index_listing ON session_index (workspace, status, started_epoch);
-- newest first within a workspace, or within a status across the store: a page is read off the index
-- (without them a page of 20 sorted every row of the workspace: 16 ms at 10,000 sessions)
CREATE INDEX IF NOT EXISTS session_index_workspace_newest
    ON session_index (workspace, started_epoch DESC, session_id);
CREATE INDEX IF NOT EXISTS session_index_status_newest
    ON session_index (status, started_epoch DESC, session_id);
CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
"""
_TRACKING_NAME = "session_index"
SESSION_TOPICS = frozenset(cls.TOPIC for cls in ev.EVENT_TYPES)
# Events that change an index row beyond its version, digest and time (the cases of fold_index_row).
ROW_CHANGING_TOPICS = frozenset(
    cls.TOPIC
    for cls in (
        ev.SessionStarted,
        ev.PhaseEntered,
        ev.TeacherCallCompleted,
        ev.PlanFrozen,
        ev.EditQueuedForReview,
        ev.EditApprovedByReviewer,
        ev.EditRejectedByReviewer,
        ev.SessionAwaitingReview,
        ev.SessionCompleted,
        ev.SessionFailed,
        ev.SessionCancelled,
        ev.SessionRolledBack,
        ev.StepInterrupted,
    )
)


def fold_index_row(row: dict[str, Any] | None, event: Any) -> dict[str, Any]:
    """One event into one session's index row (a plain dict, JSON-safe)."""
    if isinstance(event, ev.SessionStarted):
        row = {
            "session_id": str(event.originator_id),
            "status": "initiated",
            "trigger": event.trigger.get("kind"),
            "trigger_metadata": event.trigger.get("metadata", {}),
            "autonomy_mode": event.autonomy_mode,
            "workspace": event.workspace,
            "parent_session_id": event.parent_session_id,
            "started_at": event.timestamp.isoformat(),
            "ended_at": None,
            "error": None,
            "teacher_cost_usd": 0.0,
            "edits": {},
            "pending": {},
        }
    if row is None:
        raise ValueError(f"event {type(event).__name__} for unknown session {event.originator_id}")
    row["version"] = event.originator_version
    row["last_digest"] = event.digest
    row["updated_at"] = event.timestamp.isoformat()
    match event:
        case ev.PhaseEntered():
            row["status"] = event.phase
        case ev.TeacherCallCompleted():
            row["teacher_cost_usd"] = round(row["teacher_cost_usd"] + event.cost_usd, 10)
        case ev.PlanFrozen():
            row["edits"] = {
                e["id"]: {
                    k: e.get(k) for k in ("op", "target", "rationale", "expected_improvement", "risk_tier")
                }
                for e in event.plan.get("edits", [])
            }
        case ev.EditQueuedForReview():
            row["pending"][event.edit_id] = {
                "preview": event.preview,
                "queued_at": event.timestamp.isoformat(),
            }
        case ev.EditApprovedByReviewer() | ev.EditRejectedByReviewer():
            row["pending"].pop(event.edit_id, None)
        case ev.SessionAwaitingReview():
            row["status"], row["ended_at"] = "awaiting_review", event.timestamp.isoformat()
        case ev.SessionCompleted():
            row["status"], row["ended_at"] = "completed", event.timestamp.isoformat()
        case ev.SessionFailed():
            row["status"], row["ended_at"], row["error"] = "failed", event.timestamp.isoformat(), event.error
        case ev.SessionCancelled():
            row["status"], row["ended_at"] = "failed", event.timestamp.isoformat()
            row["error"] = f"cancelled by {event.cancelled_by}: {event.reason}"
        case ev.SessionRolledBack():
            row["status"], row["ended_at"] = "rolled_back", event.timestamp.isoformat()
            row["pending"] = {}
        case ev.StepInterrupted():
            fold_interruption(row, event)
    return row


def fold_interruption(row: dict[str, Any], event: ev.StepInterrupted) -> None:
    """Interruptions in a row: contiguous versions. A session is interrupted *now* when its row's
    `interrupted_version` is its `version` (workers back off by these, see distill_es.app.worker); any
    later event of the session, folded or skipped as moot, moves `version` past it."""
    follows = row.get("interrupted_version") == event.originator_version - 1
    row["interruptions"] = row.get("interruptions", 0) + 1 if follows else 1
    row["interrupted_version"] = event.originator_version
    row["interrupted_at"] = event.timestamp.isoformat()
    row["interruption"] = describe(event)[1]


def damaged_row(row: dict[str, Any] | None, sid: str, version: int, reason: str) -> dict[str, Any]:
    """The index row of a session whose events stopped folding: status `damaged`, and why. A session
    whose first event does not fold has no known workspace or start time (verify still names it)."""
    base = row or {
        "session_id": sid,
        "trigger": "unknown",
        "trigger_metadata": {},
        "autonomy_mode": "unknown",
        "workspace": "",
        "parent_session_id": None,
        "started_at": datetime.fromtimestamp(0).astimezone().isoformat(),
        "ended_at": None,
        "error": None,
        "teacher_cost_usd": 0.0,
        "edits": {},
        "pending": {},
        "last_digest": None,
        "updated_at": None,
    }
    return {**base, "status": "damaged", "damage": reason, "version": version, "pending": {}}


def _worth_decoding(page: list[Any]) -> list[Any]:
    """The page's session events minus those a later event of the same session in the page makes
    moot: an event that changes nothing in a row but its version, digest and time (a tool result, a
    score) is overwritten by the next one. Decoding is most of catch-up's cost."""
    kept: list[Any] = []
    later: set[Any] = set()
    for notification in reversed(page):
        if notification.topic not in SESSION_TOPICS:  # training runs, loops: other aggregates
            continue
        sid = notification.originator_id
        if notification.topic in ROW_CHANGING_TOPICS or sid not in later:
            kept.append(notification)
        later.add(sid)
    kept.reverse()
    return kept


Result = TypeVar("Result")


def _filters(
    *,
    status: str | None = None,
    trigger: str | None = None,
    workspace: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or empty) and parameters of the row filters."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("trigger", trigger), ("workspace", workspace)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    if since is not None:
        clauses.append("started_epoch >= ?")
        params.append(since.timestamp())
    if until is not None:
        clauses.append("started_epoch <= ?")
        params.append(until.timestamp())
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _index_faults(method: Callable[..., Result]) -> Callable[..., Result]:
    """A SessionIndex method whose disk failures (read-only, full) name the index file."""

    @functools.wraps(method)
    def call(self: SessionIndex, *args: Any, **kwargs: Any) -> Result:
        try:
            return method(self, *args, **kwargs)
        except (OSError, sqlite3.Error) as exc:
            fault = store_fault(exc, f"the session index {self.path}", self.path)
            if fault is None:
                raise
            raise fault from exc

    return call


class SessionIndex:
    """The persisted session index and review queue, caught up from an EventStore."""

    def __init__(
        self,
        path: Path,
        store: EventStore,
        *,
        create: bool = True,
        memory: bool = False,
        own_store: bool = False,
    ) -> None:
        """`create=False` (a command that only reads): no folder is made, and where the file cannot
        be made or opened the index lives in memory for this process (a cache: only time is lost).
        `memory`: it lives in memory without touching `path` at all (a read-only open). `own_store`:
        the store is the workspace's own `.distill_es/events.sqlite`, which holds only that
        workspace's sessions whatever path they recorded (a moved or copied workspace keeps them): a
        `workspace` filter then selects every row (see `_scope`)."""
        self.path = Path(path)
        self.store = store
        self.own_store = own_store
        self._memory: sqlite3.Connection | None = None  # holds an in-memory index open while we live
        self._memory_uri = f"file:views-{uuid4().hex}?mode=memory&cache=shared"
        try:
            if memory:
                raise FileNotFoundError(f"{path}: read-only, kept in memory")
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create_schema()
        except (OSError, sqlite3.Error) as exc:
            if create and not memory:
                raise store_fault(exc, f"the session index {self.path}", self.path) or exc from exc
            self._memory = sqlite3.connect(self._memory_uri, uri=True)
            self._create_schema()

    def _create_schema(self) -> None:
        with closing(self._connect()) as db, db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        if self._memory is not None:
            return sqlite3.connect(self._memory_uri, uri=True, timeout=30, isolation_level=None)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def position(self) -> int:
        with closing(self._connect()) as db:
            found = db.execute("SELECT position FROM tracking WHERE name = ?", (_TRACKING_NAME,)).fetchone()
        return found[0] if found else 0

    @_index_faults
    def catch_up(self, batch_size: int = 1000) -> int:
        """Apply every new event; return how many were applied. Safe to run from several processes."""
        applied = 0
        with closing(self._connect()) as db:
            while True:
                db.execute("BEGIN IMMEDIATE")  # one writer: the position read below stays true
                try:
                    found = db.execute(
                        "SELECT position FROM tracking WHERE name = ?", (_TRACKING_NAME,)
                    ).fetchone()
                    start = found[0] if found else 0
                    page = self.store.notifications(start, batch_size)
                    if not page:
                        db.execute("ROLLBACK")
                        return applied
                    self._apply_page(db, page)
                    db.execute(
                        "INSERT INTO tracking (name, position) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET position = excluded.position",
                        (_TRACKING_NAME, page[-1].id),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                applied += len(page)

    def _apply_page(self, db: sqlite3.Connection, page: list[Any]) -> None:
        rows: dict[str, dict[str, Any] | None] = {}
        for notification in _worth_decoding(page):
            sid = str(notification.originator_id)
            if sid not in rows:
                found = db.execute("SELECT row FROM session_index WHERE session_id = ?", (sid,)).fetchone()
                rows[sid] = json.loads(found[0]) if found else None
            rows[sid] = self._folded(rows[sid], notification)
        db.executemany(
            "INSERT INTO session_index (session_id, started_epoch, status, trigger, workspace, row) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET "
            "status = excluded.status, row = excluded.row",
            [
                (
                    sid,
                    datetime.fromisoformat(row["started_at"]).timestamp(),
                    row["status"],
                    row["trigger"],
                    row["workspace"],
                    json.dumps(row, sort_keys=True),
                )
                for sid, row in rows.items()
                if row is not None
            ],
        )

    def _folded(self, row: dict[str, Any] | None, notification: Any) -> dict[str, Any]:
        """`fold_index_row`, except that an event which does not decode or fold marks the row damaged
        (and keeps it so) instead of stopping the catch-up of every other session."""
        if row is not None and row.get("damage"):
            row["version"] = notification.originator_version
            return row
        try:
            return fold_index_row(row, self.store.to_domain_event(notification))
        except Exception as exc:  # hostile stored bytes: one session's damage, not the index's
            reason = f"event {notification.originator_version} cannot be read back: {type(exc).__name__}"
            return damaged_row(row, str(notification.originator_id), notification.originator_version, reason)

    def _scope(self, workspace: str | None) -> str | None:
        """The `workspace` filter to apply: none in the workspace's own store (every session there is
        the workspace's, recorded at whatever path it had then); elsewhere the recorded path."""
        return None if self.own_store else workspace

    def belongs(self, recorded: str, workspace: str) -> bool:
        """Whether a record (a loop, a run) made at path `recorded` is `workspace`'s: always in the
        workspace's own store, else when the paths are the same (as `_scope` filters rows)."""
        return self.own_store or recorded == workspace

    @_index_faults
    def rows(
        self,
        *,
        status: str | None = None,
        trigger: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        workspace: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Index rows, newest first (by start time as a number, never by text); `offset` rows skipped."""
        self.catch_up()
        where, params = _filters(
            status=status, trigger=trigger, workspace=self._scope(workspace), since=since, until=until
        )
        sql = "SELECT row FROM session_index" + where + " ORDER BY started_epoch DESC, session_id"
        if limit is not None or offset:
            sql += f" LIMIT {-1 if limit is None else int(limit)} OFFSET {max(0, int(offset))}"
        with closing(self._connect()) as db:
            return [json.loads(r[0]) for r in db.execute(sql, params)]

    @_index_faults
    def count(self, **filters: Any) -> int:
        """How many rows `rows(**filters)` gives without a limit (its filters but limit and offset)."""
        self.catch_up()
        where, params = _filters(**{**filters, "workspace": self._scope(filters.get("workspace"))})
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COUNT(*) FROM session_index" + where, params).fetchone()[0])

    @_index_faults
    def session_ids(self, *, workspace: str | None = None, prefix: str = "") -> list[str]:
        """The ids (damaged sessions' too) starting with `prefix`, newest first, without decoding rows."""
        self.catch_up()
        where, params = _filters(workspace=self._scope(workspace))
        if prefix:
            where += (" AND" if where else " WHERE") + " substr(session_id, 1, ?) = ?"
            params += [len(prefix), prefix]
        sql = "SELECT session_id FROM session_index" + where + " ORDER BY started_epoch DESC, session_id"
        with closing(self._connect()) as db:
            return [r[0] for r in db.execute(sql, params)]

    @_index_faults
    def row(self, session_id: str) -> dict[str, Any] | None:
        """The session's row as the index last saw it, without catching up: what the log held at
        some earlier moment, so a log that now ends before it was cut."""
        with closing(self._connect()) as db:
            found = db.execute("SELECT row FROM session_index WHERE session_id = ?", (session_id,)).fetchone()
        return json.loads(found[0]) if found else None

    def review_queue(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Pending edits across sessions, oldest queued first."""
        items = []
        for row in self.rows(workspace=workspace, status="awaiting_review"):  # only those rows decoded
            for edit_id, pending in row["pending"].items():
                meta = row["edits"].get(edit_id, {})
                items.append(
                    {
                        "session_id": row["session_id"],
                        "edit_id": edit_id,
                        "op": meta.get("op"),
                        "target": meta.get("target"),
                        "risk_tier": meta.get("risk_tier"),
                        "target_cluster": meta.get("expected_improvement"),
                        "rationale": meta.get("rationale"),
                        "preview": pending["preview"],
                        "queued_at": pending["queued_at"],
                    }
                )
        return sorted(items, key=lambda item: (item["queued_at"], item["session_id"], item["edit_id"]))
