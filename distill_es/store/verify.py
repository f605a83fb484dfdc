"""Audit: does every stored session still chain, replay, and agree with its projections?

Digests are recomputed from the raw stored rows (before any upcasting), so they check exactly
the bytes that were written. Sessions are streamed one at a time: memory does not grow with the
size of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from distill_es.domain import events as ev
from distill_es.store.app import EventStore, parse_session_id
from distill_es.store.projections import SessionIndex


class Damage(BaseModel):
    session_id: str
    position: int  # the event's version within its session (0: the session as a whole)
    kind: str  # edited | deleted | reordered | truncated | undecodable | replay | projection
    detail: str


class SessionReport(BaseModel):
    session_id: str
    events: int
    ok: bool
    damage: list[Damage] = []


def verify_chain(store: EventStore, session_id: UUID) -> tuple[int, list[Damage], str | None]:
    """(event count, damage found, last digest) for one session's stored events."""
    sid = str(session_id)
    stored = store.stored_events(session_id)
    damage: list[Damage] = []
    previous = ev.genesis_digest(sid)
    previous_time = None
    expected_version = 1
    for record in stored:
        version = record.originator_version
        if version != expected_version:
            damage.append(
                Damage(
                    session_id=sid,
                    position=expected_version,
                    kind="deleted",
                    detail=f"versions jump from {expected_version - 1} to {version}",
                )
            )
        expected_version = version + 1
        try:
            state = store.decode_state(record)
        except Exception as exc:  # a row whose bytes no longer decode is damage, not a crash
            damage.append(Damage(session_id=sid, position=version, kind="undecodable", detail=str(exc)))
            previous_time = None
            continue
        payload = {k: v for k, v in state.items() if k not in ev.ENVELOPE_KEYS}
        timestamp = state.get("timestamp")
        recorded = state.get("digest", "")
        computed = ev.chain_digest(previous, record.topic, version, timestamp, payload)
        if computed != recorded:
            kind = "reordered" if previous_time and timestamp and timestamp < previous_time else "edited"
            detail = f"{record.topic}: stored digest {recorded[:12]} != recomputed {computed[:12]}"
            damage.append(Damage(session_id=sid, position=version, kind=kind, detail=detail))
        previous = recorded or computed  # keep checking the rest against what is stored
        previous_time = timestamp
    return len(stored), damage, (previous if stored else None)


def verify_session(
    store: EventStore,
    index: SessionIndex | None,
    session_id: str | UUID,
    index_rows: dict[str, dict[str, Any]] | None = None,
) -> SessionReport:
    sid = parse_session_id(session_id)
    count, damage, last_digest = verify_chain(store, sid)
    view = None
    if not damage:
        try:
            session = store.replay(sid)  # from events alone: a snapshot must not vouch for itself
            view = session.view()
            loaded = store.load(sid)
            if loaded.snapshot_state() != session.snapshot_state():
                detail = "the state loaded through the latest snapshot differs from the events' replay"
                damage.append(
                    Damage(session_id=str(sid), position=loaded.version, kind="snapshot", detail=detail)
                )
            if session.last_digest != last_digest:
                detail = "replayed state does not end on the stored digest"
                damage.append(
                    Damage(session_id=str(sid), position=session.version, kind="replay", detail=detail)
                )
        except Exception as exc:
            damage.append(Damage(session_id=str(sid), position=0, kind="replay", detail=str(exc)))
    if index is not None:
        row = (index_rows or {}).get(str(sid)) if index_rows is not None else _index_row(index, str(sid))
        damage.extend(_compare_projection(str(sid), row, view, count, last_digest))
    return SessionReport(session_id=str(sid), events=count, ok=not damage, damage=damage)


def _index_row(index: SessionIndex, sid: str) -> dict[str, Any] | None:
    for row in index.rows():
        if row["session_id"] == sid:
            return row
    return None


def _compare_projection(
    sid: str, row: dict[str, Any] | None, view: Any, count: int, last_digest: str | None
) -> list[Damage]:
    def damage(kind: str, detail: str, position: int = 0) -> Damage:
        return Damage(session_id=sid, position=position, kind=kind, detail=detail)

    if row is None:
        return [damage("projection", "session missing from the index")]
    found = []
    if row["version"] > count:
        found.append(
            damage("truncated", f"index saw {row['version']} events, the log holds {count}", count + 1)
        )
    if row["version"] == count and row.get("last_digest") != last_digest:
        # The whole chain may have been rewritten consistently; the index remembers the real end.
        found.append(damage("edited", "the log's last digest differs from the one the index recorded", count))
    if view is not None and row["version"] == view.version:
        if row["status"] != view.status.value:
            found.append(
                damage("projection", f"index status {row['status']} != replayed {view.status.value}")
            )
        if sorted(row["pending"]) != sorted(view.pending_edit_ids):
            found.append(damage("projection", "index review queue differs from the replayed session"))
        if abs(row["teacher_cost_usd"] - view.teacher_cost_usd) > 1e-9:
            found.append(damage("projection", "index cost differs from the replayed cost ledger"))
    return found


def verify_store(
    store: EventStore, index: SessionIndex | None, session_ids: Iterable[UUID] | None = None
) -> list[SessionReport]:
    """Verify every session (streamed), or the given ones."""
    rows = {r["session_id"]: r for r in index.rows()} if index is not None else None
    ids = session_ids if session_ids is not None else store.iter_session_ids()
    return [verify_session(store, index, sid, rows) for sid in ids]
