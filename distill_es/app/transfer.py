"""Sessions that travel: a session's complete event stream as JSON Lines, and back into any store.

One line per event, in version order (keys sorted, compact, UTF-8):

    {"digest": "…", "payload": {…}, "position": 1, "previous_digest": "…", "schema_version": 1,
     "session_id": "…", "timestamp": "2026-01-01T10:00:00.123456+00:00",
     "type": "distill_es.SessionStarted.v1"}

then one closing line per export: `{"end": {"events": N, "sessions": K}}`. Without it a file cut at a
line boundary would still be a valid chain; with it, truncation is always detected. Files may be
concatenated (each `end` closes the lines since the previous one). `{"blob": …}` lines are reserved
for referenced blobs; none exist yet (events carry their payloads inline), and this version refuses
them rather than drop data.

`payload` is the event's stored state minus the envelope (`ENVELOPE_KEYS`): exactly what its digest
covers, with its keys in *stored* order. Sorting them would make the file no more deterministic (the
same store always gives the same bytes) but would lose the order of the stored rows, so imported
rows could no longer be byte-identical to the originals.

Import verifies everything before it writes anything, then writes each session in one atomic insert
through the target store's own mapper, so imported rows are stored exactly as natively written ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from pydantic import BaseModel

from distill_es.domain import chain
from distill_es.domain import errors as domain_errors
from distill_es.domain.errors import ConcurrentSessionWrite, DistillError, SessionNotFound
from distill_es.domain.session import events as ev
from distill_es.domain.session.aggregate import Session
from distill_es.store.app import EventStore, parse_session_id

EVENT_KEYS = frozenset(
    {"position", "session_id", "type", "schema_version", "timestamp", "payload", "digest", "previous_digest"}
)
_TOPICS: dict[str, type] = {cls.TOPIC: cls for cls in ev.EVENT_TYPES}  # type: ignore[attr-defined]
_HEX64 = re.compile(r"[0-9a-f]{64}")


# --- errors and report ---------------------------------------------------------------------------


class TransferError(DistillError):
    """An export or import that cannot be done; nothing was written."""


class DamagedExport(TransferError):
    """The file is not an intact export: `line` (1-based) and `reason` say where and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}; nothing was imported")
        self.line, self.reason = line, reason


class DuplicateSessions(TransferError):
    """Sessions of the file already exist in the target store."""

    def __init__(self, session_ids: list[str], message: str) -> None:
        super().__init__(message)
        self.session_ids = session_ids


class DamagedSession(TransferError):
    """The source store's own copy of a session does not verify: exporting it would only move the damage."""


class ImportedSession(BaseModel):
    session_id: str
    events: int
    last_digest: str


class ImportReport(BaseModel):
    store: str
    sessions: list[ImportedSession]
    events: int


# --- export --------------------------------------------------------------------------------------


# Characters some line splitters (str.splitlines, JavaScript) treat as line breaks; json leaves them raw.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _dump(value: Any) -> str:
    # Nested values keep their order (see the module docstring); never NaN; UTF-8 except line breaks,
    # escaped so that a line is one line however it is split (they can only occur inside strings).
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, escape in _LINE_BREAKS.items():
        text = text.replace(char, escape)
    return text


def _line(obj: dict[str, Any]) -> str:
    """One JSON line with its top-level keys sorted and nested values dumped as they are."""
    return "{" + ",".join(f"{_dump(key)}:{_dump(obj[key])}" for key in sorted(obj)) + "}\n"


def end_line(events: int, sessions: int) -> str:
    return _line({"end": {"events": events, "sessions": sessions}})


def _session_lines(store: EventStore, session_id: str | UUID) -> Iterator[str]:
    sid = parse_session_id(session_id)
    stored = store.stored_events(sid)
    if not stored:
        raise SessionNotFound(f"no session {session_id} in store {store.url}")
    if stored[0].topic != ev.SessionStarted.TOPIC:
        raise SessionNotFound(f"{sid} in store {store.url} is not a session")
    previous = chain.genesis_digest(str(sid))
    for expected, record in enumerate(stored, start=1):
        try:
            state = store.decode_state(record)
        except domain_errors.DamagedSession as exc:  # not an event's state: it cannot travel
            raise DamagedSession(
                f"session {sid} is damaged at position {expected} ({exc.reason}); run `distill-es verify`"
            ) from None
        payload = {k: v for k, v in state.items() if k not in chain.ENVELOPE_KEYS}
        timestamp, digest = state.get("timestamp"), state.get("digest", "")
        # Checked while streaming: a file that import would refuse should fail here, where the damage is.
        if record.originator_version != expected or not isinstance(timestamp, datetime):
            raise DamagedSession(f"session {sid} is damaged at position {expected}; run `distill-es verify`")
        if chain.chain_digest(previous, record.topic, expected, timestamp, payload) != digest:
            raise DamagedSession(
                f"session {sid}: the digest of position {expected} does not recompute; "
                "run `distill-es verify`"
            )
        yield _line(
            {
                "position": expected,
                "session_id": str(sid),
                "type": record.topic,
                "schema_version": int(state.get("class_version", 1)),
                "timestamp": timestamp.isoformat(),
                "payload": payload,
                "digest": digest,
                "previous_digest": previous,
            }
        )
        previous = digest


def export_session(store: EventStore, session_id: str | UUID) -> Iterator[str]:
    """The session's events as JSON lines (each ending in a newline), then the closing `end` line."""
    count = 0
    for line in _session_lines(store, session_id):
        count += 1
        yield line
    yield end_line(count, 1)


def export_all(store: EventStore) -> Iterator[str]:
    """Every session of the store, session by session in first-event order: one session in memory
    at a time. An empty store exports just the `end` line."""
    events = sessions = 0
    for sid in store.iter_session_ids():
        sessions += 1
        for line in _session_lines(store, sid):
            events += 1
            yield line
    yield end_line(events, sessions)


# --- import --------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A session read from the file, verified so far, its rows ready to insert."""

    session_id: UUID
    first_line: int
    rows: list[StoredEvent] = field(default_factory=list)
    last_digest: str = ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(text: str, number: int) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise DamagedExport(number, f"not valid JSON ({exc})") from None


def _timestamp(value: Any, number: int) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or parsed.isoformat() != value:
        raise DamagedExport(number, f"timestamp {value!r} is not an ISO 8601 time with its zone")
    return parsed


class _Reader:
    """Checks the lines one by one and keeps each session's rows, encoded for the target store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.sessions: dict[UUID, _Pending] = {}
        self.segment_events = self.segment_sessions = 0
        self.open_segment = False
        self.last_line = 0

    def feed(self, number: int, text: str) -> None:
        self.last_line = number
        obj = _parse(text, number)
        if not isinstance(obj, dict):
            raise DamagedExport(number, "a line must be a JSON object")
        if "blob" in obj:
            raise DamagedExport(number, "blob lines are reserved for a later format; this version has none")
        if "end" in obj:
            self._end(number, obj)
            return
        self.open_segment = True
        self._event(number, obj)

    def _end(self, number: int, obj: dict[str, Any]) -> None:
        end = obj["end"]
        if len(obj) != 1 or not isinstance(end, dict) or set(end) != {"events", "sessions"}:
            raise DamagedExport(number, 'an end line is {"end": {"events": N, "sessions": K}}')
        found = (self.segment_events, self.segment_sessions)
        if (end["events"], end["sessions"]) != found:
            raise DamagedExport(
                number,
                f"the end line counts {end['events']} events in {end['sessions']} sessions, the lines "
                f"before it hold {found[0]} in {found[1]}: lines are missing",
            )
        self.segment_events = self.segment_sessions = 0
        self.open_segment = False

    def _event(self, number: int, obj: dict[str, Any]) -> None:
        if set(obj) != EVENT_KEYS:
            missing, extra = sorted(EVENT_KEYS - set(obj)), sorted(set(obj) - EVENT_KEYS)
            raise DamagedExport(number, f"not an event line (missing {missing}, unknown {extra})")
        position, topic, payload = obj["position"], obj["type"], obj["payload"]
        try:
            sid = UUID(obj["session_id"]) if isinstance(obj["session_id"], str) else None
        except ValueError:
            sid = None
        if sid is None or str(sid) != obj["session_id"]:
            raise DamagedExport(number, f"session_id {obj['session_id']!r} is not a session id")
        if type(position) is not int or position < 1:
            raise DamagedExport(number, f"position {position!r} is not a positive integer")
        cls = _TOPICS.get(topic) if isinstance(topic, str) else None
        if cls is None:
            raise DamagedExport(number, f"unknown event type {topic!r}")
        if (position == 1) != (cls is ev.SessionStarted):
            raise DamagedExport(number, f"position {position} cannot be a {topic}")
        schema, known = obj["schema_version"], getattr(cls, "class_version", 1)
        if type(schema) is not int or not 1 <= schema <= known:
            raise DamagedExport(number, f"schema_version {schema!r} of {topic} is not one this version reads")
        if not isinstance(payload, dict) or chain.ENVELOPE_KEYS & set(payload):
            raise DamagedExport(number, "payload must be an object without envelope keys")
        timestamp = _timestamp(obj["timestamp"], number)

        pending = self.sessions.get(sid)
        if pending is None:
            if position != 1:
                raise DamagedExport(number, f"session {sid} starts at position {position}, not 1")
            pending = self.sessions[sid] = _Pending(sid, number, last_digest=chain.genesis_digest(str(sid)))
            self.segment_sessions += 1
        elif position == 1:
            raise DamagedExport(
                number, f"session {sid} appears twice (it started on line {pending.first_line})"
            )
        expected = len(pending.rows) + 1
        if position != expected:
            raise DamagedExport(
                number, f"session {sid} jumps from position {expected - 1} to {position}: lines are "
                "missing or out of order",
            )  # fmt: skip
        if obj["previous_digest"] != pending.last_digest:
            raise DamagedExport(number, "previous_digest is not the digest of the event before it")
        digest = obj["digest"]
        try:
            computed = chain.chain_digest(pending.last_digest, topic, position, timestamp, payload)
        except ValueError as exc:
            raise DamagedExport(number, f"payload cannot be digested ({exc})") from None
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest) or computed != digest:
            raise DamagedExport(
                number, f"digest does not recompute: the event was edited (recorded {str(digest)[:12]}, "
                f"recomputed {computed[:12]})",
            )  # fmt: skip
        pending.rows.append(self._row(number, sid, position, cls, timestamp, payload, digest, schema))
        pending.last_digest = digest
        self.segment_events += 1

    def _row(
        self, number: int, sid: UUID, position: int, cls: type, timestamp: datetime,
        payload: dict[str, Any], digest: str, schema: int,
    ) -> StoredEvent:  # fmt: skip
        """The row the target store's mapper writes for this event natively (same key order, too:
        envelope fields first as the event classes declare them, payload as stored, class_version last)."""
        state: dict[str, Any] = {"timestamp": timestamp}
        if cls is ev.SessionStarted:
            state["originator_topic"] = Session.TOPIC  # type: ignore[attr-defined]
        state["digest"] = digest
        state.update(payload)
        if schema > 1:
            state["class_version"] = schema
        try:
            data = self.store.encode_state(state)
        except ValueError as exc:
            raise DamagedExport(number, str(exc)) from None
        return StoredEvent(originator_id=sid, originator_version=position, topic=cls.TOPIC, state=data)  # type: ignore[attr-defined]

    def finish(self) -> list[_Pending]:
        if self.open_segment or self.last_line == 0:
            where = self.last_line + 1
            raise DamagedExport(where, "the file ends without its end line: it is truncated")
        return list(self.sessions.values())


def import_events(store: EventStore, lines: Iterable[str]) -> ImportReport:
    """Import an export into `store`. Every line is parsed and every chain verified, and no session
    may already exist in the store, before anything is written; then each session is written in one
    atomic insert. Raises `DamagedExport` (line, reason) or `DuplicateSessions`.

    The verified rows are held in memory (compressed, as they will be stored) until written."""
    reader = _Reader(store)
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if number == 1:
            text = text.removeprefix("\ufeff")  # an editor's byte-order mark is not damage
        if text.strip():
            reader.feed(number, text)
        else:
            reader.last_line = number
    sessions = reader.finish()

    present = [p for p in sessions if store.has_events(p.session_id)]
    if present:
        ids = [str(p.session_id) for p in present]
        raise DuplicateSessions(
            ids, f"{len(ids)} session(s) of the file already exist in {store.url}: {', '.join(ids)} "
            f"(first on line {present[0].first_line}); nothing was imported",
        )  # fmt: skip

    done: list[ImportedSession] = []
    for pending in sessions:
        try:
            store.insert_rows(pending.rows)
        except ConcurrentSessionWrite:
            written = ", ".join(d.session_id for d in done) or "none"
            raise DuplicateSessions(
                [str(pending.session_id)],
                f"session {pending.session_id} was written to {store.url} by someone else during the import; "
                f"it was not imported (already imported: {written})",
            ) from None
        done.append(ImportedSession(session_id=str(pending.session_id), events=len(pending.rows),
                                    last_digest=pending.last_digest))  # fmt: skip
    return ImportReport(store=store.url, sessions=done, events=sum(d.events for d in done))


__all__ = [
    "DamagedExport",
    "DamagedSession",
    "DuplicateSessions",
    "ImportReport",
    "ImportedSession",
    "TransferError",
    "end_line",
    "export_all",
    "export_session",
    "import_events",
]
