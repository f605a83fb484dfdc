"""Audit: does every stored session still chain, replay, and agree with its projections?

`verify_chain` serves every chained aggregate; the rest is about sessions. Digests are recomputed
from the raw stored rows (before any upcasting), so they check exactly
the bytes that were written. Sessions are streamed one at a time: memory does not grow with the
size of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from distill_es.domain import chain
from distill_es.domain.anchors import Anchor, anchor_problem
from distill_es.domain.errors import DamagedSession
from distill_es.ports import AggregateStore
from distill_es.store.app import EventStore, parse_session_id
from distill_es.store.chained import genesis_for
from distill_es.store.projections import SessionIndex
from distill_es.store.snapshots import snapshot_state


class Damage(BaseModel):
    session_id: str
    position: int  # the event's version within its session (0: the session as a whole)
    # edited | deleted | reordered | truncated | rewritten | undecodable | replay | snapshot | projection
    kind: str
    detail: str


class SessionReport(BaseModel):
    session_id: str
    events: int
    ok: bool
    damage: list[Damage] = []


def verify_chain(store: AggregateStore, session_id: UUID) -> tuple[int, list[Damage], str | None]:
    """(event count, damage found, last digest) for one aggregate's stored events: a session's, or a
    training run's, loop's or trigger log's (each chains from the genesis of its own class)."""
    count, damage, last_digest, _ = _verify_chain(store, session_id)
    return count, damage, last_digest


def _verify_chain(store: AggregateStore, session_id: UUID) -> tuple[int, list[Damage], str | None, int]:
    """`verify_chain`, plus the last stored version.

    Each row is checked against the digest recorded by the row stored before it. When some row does
    not chain, the original order is rebuilt by following the digests from the session's genesis, so
    a row that merely sits in another row's place is reported as `reordered` (at both places), an
    intact row after a moved one is not reported at all, and only content no digest vouches for is
    `edited`. The row after a gap is not checked: its predecessor is the `deleted` one.
    """
    sid = str(session_id)
    stored = store.stored_events(session_id)
    damage: list[Damage] = []
    rows: dict[int, tuple[str, dict[str, Any]]] = {}  # stored version -> (topic, raw state)
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
            rows[version] = (record.topic, store.decode_state(record))
        except Exception as exc:  # a row that is no longer an event's state is damage, not a crash
            detail = exc.reason if isinstance(exc, DamagedSession) else str(exc)
            damage.append(Damage(session_id=sid, position=version, kind="undecodable", detail=detail))

    first = rows.get(1)
    genesis = genesis_for(first[1].get("originator_topic") if first else None)(sid)  # per aggregate class
    unchained: list[int] = []
    for version, (topic, state) in rows.items():
        previous = genesis if version == 1 else _recorded(rows.get(version - 1))
        if previous is not None and _digest(previous, version, topic, state) != state.get("digest"):
            unchained.append(version)
    if unchained:
        written_as = _original_versions(rows, genesis, max(rows))
        for version in unchained:
            topic, state = rows[version]
            original = written_as.get(version)
            if original == version:
                continue  # intact: it only follows a row that was moved (reported at that row)
            if original is not None:
                detail = f"{topic}: this row was written as version {original}"
                damage.append(Damage(session_id=sid, position=version, kind="reordered", detail=detail))
            else:
                recorded = str(state.get("digest", ""))
                detail = f"{topic}: no digest in the chain vouches for this content (stored {recorded[:12]})"
                damage.append(Damage(session_id=sid, position=version, kind="edited", detail=detail))
    damage.sort(key=lambda d: d.position)
    last_version = stored[-1].originator_version if stored else 0
    return len(stored), damage, _recorded(rows.get(last_version)), last_version


def _recorded(row: tuple[str, dict[str, Any]] | None) -> str | None:
    return str(row[1].get("digest", "")) if row is not None else None


def _digest(previous: str, version: int, topic: str, state: dict[str, Any]) -> str:
    payload = {k: v for k, v in state.items() if k not in chain.ENVELOPE_KEYS}
    try:
        return chain.chain_digest(previous, topic, version, state.get("timestamp"), payload)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):  # a payload no JSON digest covers: vouched for by none
        return ""


def _original_versions(
    rows: dict[int, tuple[str, dict[str, Any]]], genesis: str, last: int
) -> dict[int, int]:
    """Stored version -> the version its content was written as, following digests from genesis.

    Where no row continues the chain (edited or deleted content), the walk carries on from whatever
    is stored at that version. Quadratic in the worst case, and only run on a damaged session.
    """
    written_as: dict[int, int] = {}
    previous: str | None = genesis
    for version in range(1, last + 1):
        found = None
        if previous is not None:
            candidates = [version, *(v for v in rows if v != version and v not in written_as)]
            for stored_at in candidates:
                if stored_at in rows and stored_at not in written_as:
                    topic, state = rows[stored_at]
                    if _digest(previous, version, topic, state) == state.get("digest"):
                        found = stored_at
                        break
        if found is not None:
            written_as[found] = version
            previous = _recorded(rows[found])
        else:
            previous = _recorded(rows.get(version))
    return written_as


def verify_session(
    store: EventStore,
    index: SessionIndex | None,
    session_id: str | UUID,
    index_rows: dict[str, dict[str, Any]] | None = None,
    anchors: Iterable[Anchor] = (),
) -> SessionReport:
    """One session's report. `anchors`: its log heads anchored in git (see store/anchors.py), which
    catch a truncated or consistently rewritten log without any help from the index."""
    sid = parse_session_id(session_id)
    count, damage, last_digest, last_version = _verify_chain(store, sid)
    damage.extend(_check_anchors(store, sid, anchors, last_version))
    damage.sort(key=lambda d: d.position)
    view = None
    if not damage:
        try:
            session = store.replay(sid)  # from events alone: a snapshot must not vouch for itself
            view = session.view()
            loaded = store.load(sid)
            if snapshot_state(loaded) != snapshot_state(session):
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
        damage.extend(_compare_projection(str(sid), row, view, last_version, last_digest))
    return SessionReport(session_id=str(sid), events=count, ok=not damage, damage=damage)


def _check_anchors(
    store: EventStore, sid: UUID, anchors: Iterable[Anchor], last_version: int
) -> list[Damage]:
    found = []
    for anchor in anchors:
        try:
            at = store.head_digest(sid, anchor.version)
        except DamagedSession:
            continue  # an undecodable row: reported by the chain check already
        problem = anchor_problem(anchor, last_version, at)
        if problem is not None:
            kind, detail = problem
            found.append(Damage(session_id=str(sid), position=anchor.version, kind=kind, detail=detail))
    return found


def _index_row(index: SessionIndex, sid: str) -> dict[str, Any] | None:
    for row in index.rows():
        if row["session_id"] == sid:
            return row
    return None


def log_behind_index(
    row: dict[str, Any], last_version: int, last_digest: str | None, *, row_without_digest_is_edited: bool
) -> tuple[str, str, int] | None:
    """(kind, detail, position) when a session's log ends before the last event its index row saw
    (`truncated`), or differs at it (`edited`: the whole chain may have been rewritten consistently, and
    only the index remembers the real end); None when they agree. `verify` counts a row that recorded
    no digest as edited; loads skip that check (the row may predate digests in the index)."""
    if row["version"] > last_version:
        detail = f"the index saw {row['version']} events, the log ends at version {last_version}"
        return "truncated", detail, last_version + 1
    recorded = row.get("last_digest")
    differs = recorded != last_digest and (recorded is not None or row_without_digest_is_edited)
    if row["version"] == last_version and differs:
        detail = f"event {last_version}'s digest differs from the one the index recorded"
        return "edited", detail, last_version
    return None


def _compare_projection(
    sid: str, row: dict[str, Any] | None, view: Any, last_version: int, last_digest: str | None
) -> list[Damage]:
    def damage(kind: str, detail: str, position: int = 0) -> Damage:
        return Damage(session_id=sid, position=position, kind=kind, detail=detail)

    if row is None:
        return [damage("projection", "session missing from the index")]
    found = []
    behind = log_behind_index(row, last_version, last_digest, row_without_digest_is_edited=True)
    if behind is not None:
        found.append(damage(*behind))
    if view is not None and row["version"] == view.version:
        if row["status"] != view.status.value:
            found.append(
                damage("projection", f"index status {row['status']} != replayed {view.status.value}")
            )
        # A rolled-back session has nothing left to review: its index row clears the queue, while
        # the session still lists the edits no reviewer decided.
        queue_matters = view.status.value != "rolled_back"
        if queue_matters and sorted(row["pending"]) != sorted(view.pending_edit_ids):
            found.append(damage("projection", "index review queue differs from the replayed session"))
        if abs(row["teacher_cost_usd"] - view.teacher_cost_usd) > 1e-9:
            found.append(damage("projection", "index cost differs from the replayed cost ledger"))
    return found


def verify_store(
    store: EventStore,
    index: SessionIndex | None,
    session_ids: Iterable[UUID] | None = None,
    anchors: dict[str, list[Anchor]] | None = None,
) -> list[SessionReport]:
    """Verify every session (streamed), or the given ones.

    Sessions the index knows, or git anchors, but the log no longer starts (their first event was
    deleted, or all of them) are verified too: the log alone cannot name them.
    """
    rows = {r["session_id"]: r for r in index.rows()} if index is not None else None
    anchors = anchors or {}

    def one(sid: str | UUID) -> SessionReport:
        return verify_session(store, index, sid, rows, anchors.get(str(sid), []))

    if session_ids is not None:
        return [one(sid) for sid in session_ids]
    reports = [one(sid) for sid in store.iter_session_ids()]
    seen = {report.session_id for report in reports}
    for sid in [*(rows or {}), *anchors]:
        if sid not in seen:
            seen.add(sid)
            reports.append(one(sid))
    return reports
