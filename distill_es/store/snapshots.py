"""Session snapshots as one JSON document (never pickled objects), and how they load fast.

`SessionSnapshot` (topic "distill_es.SessionSnapshot.v1": stored data, never renamed) holds the folded
session as plain JSON values. A snapshot's finished diagnose turns are split into an archive that is
decoded only when something reads them. Rebuilding a long session creates tens of thousands of
objects, so the cyclic garbage collector is paused meanwhile.

The format predates the edit lifecycle table: an edit is stored as its recorded fields, without its
state, which `_edit_state` recovers from those fields on load.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.domain import Snapshot
from eventsourcing.utils import register_topic

from distill_es.domain.errors import DistillError
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.session.records import DiagnoseTurn, EditProgress, GateRecord, TeacherCall, ToolResult
from distill_es.domain.vocabulary import (
    AutonomyMode,
    BenchmarkSnapshot,
    Edit,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    Trigger,
)

# Attributes that are JSON values already and go into a snapshot as they are.
_PLAIN_STATE = (
    "status",
    "settings",
    "workspace",
    "parent_session_id",
    "started_at",
    "ended_at",
    "last_digest",
    "error",
    "reason_code",
    "ready",
    "trace_count",
    "git_pre",
    "git_post",
    "current_head",
    "current_tree",
    "teacher_cost_usd",
    "diagnosis_markdown",
    "plan_rejections",
    "gate_seed",
    "gate_task_ids",
    "student_calls_made",
    "snapshots_needed",
    "rollback_requested",
)


# --- the folded state as plain JSON values (datetimes are transcoded by the store) -----------------
def snapshot_state(session: Session) -> dict[str, Any]:
    def dump(model: Any) -> Any:
        return model.model_dump(mode="json") if model is not None else None

    return {
        **{name: getattr(session, name) for name in _PLAIN_STATE},
        "trigger": dump(session.trigger),
        "autonomy_mode": session.autonomy_mode.value,
        "teacher_calls": [vars(call) for call in session.teacher_calls.values()],
        "diagnose_turns": [
            # The response is the teacher call's own: stored once, under teacher_calls.
            {"call_key": t.call_key, "results": {k: list(r) for k, r in t.results.items()}}
            for t in session.diagnose_turns
        ],
        "clusters": [dump(c) for c in session.clusters],
        "plan": dump(session.plan),
        "edits": [_edit_fields(p, dump(p.edit)) for p in session.edits.values()],
        "scores": [[*key, value] for key, value in session.scores.items()],
        "benchmark_before": dump(session.benchmark_before),
        "benchmark_after": dump(session.benchmark_after),
        "interruptions_in_a_row": session.interruptions_in_a_row,
        "last_interruption": session.last_interruption,
    }


def _edit_fields(p: EditProgress, edit: Any) -> dict[str, Any]:
    fields = {
        **vars(p),
        "edit": edit,
        "risk_tier": p.risk_tier.value,
        "gate": vars(p.gate) if p.gate else None,
    }
    del fields["state"]  # not part of the format: recovered from the fields on load
    return fields


def session_from_state(state: dict[str, Any], archive: str | None = None) -> Session:
    """The session from `snapshot_state()`, or from a snapshot's split form: finished diagnose
    turns in `archive` (JSON text, decoded on first read), their calls named by key only."""
    session = Session.__new__(Session)
    for name in _PLAIN_STATE:
        setattr(session, name, state[name])
    session.trigger = Trigger.model_validate(state["trigger"])
    session.autonomy_mode = AutonomyMode(state["autonomy_mode"])
    session.started_at, session.ended_at = _dt(state["started_at"]), _dt(state["ended_at"])
    order, archived = [], set()
    calls = session._calls = {}
    for data in state["teacher_calls"]:  # by the thousand in a long session: no per-call copies
        if isinstance(data, str):  # a finished diagnose turn's call, kept in the archive
            order.append(data)
            archived.add(data)
            continue
        order.append(data["call_key"])
        calls[data["call_key"]] = _revive_call(data)
    session._turns = [_revive_turn(t, calls) for t in state["diagnose_turns"]]
    session._archive = TurnArchive(archive, order, archived) if archive else None
    session.clusters = [FailureCluster.model_validate(c) for c in state["clusters"]]
    session.plan = LearningPlan.model_validate(state["plan"]) if state["plan"] else None
    session.edits = {}
    for data in state["edits"]:
        gate = GateRecord(**data["gate"]) if data["gate"] else None
        edit = Edit.model_validate(data["edit"])
        tier = EditRiskTier(data["risk_tier"])
        progress = EditProgress(
            **{**data, "edit": edit, "risk_tier": tier, "gate": gate, "applied_at": _dt(data["applied_at"])}
        )
        progress.state = _edit_state(progress)
        session.edits[edit.id] = progress
    session.scores = {(tree, seed, model, task): score for tree, seed, model, task, score in state["scores"]}
    for name in ("benchmark_before", "benchmark_after"):
        value = state[name]
        setattr(session, name, BenchmarkSnapshot.model_validate(value) if value else None)
    # Snapshots taken before interruptions were recorded have neither key.
    session.interruptions_in_a_row = int(state.get("interruptions_in_a_row", 0))
    session.last_interruption = state.get("last_interruption")
    return session


def _edit_state(p: EditProgress) -> str:
    """The lifecycle state an edit's recorded fields put it in: the last fact recorded wins (each
    move of the edit table records one more of them). The state machine's snapshot rule checks that
    this agrees with the state `evolve` assigned."""
    if p.rolled_back_sha:
        return E.ROLLED_BACK
    if p.rejected_by:
        return E.REJECTED
    if p.skipped_reason is not None:
        return E.SKIPPED
    if p.training is not None:
        if p.training["deployable"]:
            return E.TRAINED
        return E.TRAINING_REJECTED if p.training["state"] == "completed" else E.TRAINING_FAILED
    if p.check_ok is False:
        return E.APPLY_FAILED if p.pre_sha else E.INVALID
    if p.gate is not None:
        return E.GATED if p.gate.accepted else (E.REVERTED if p.revert_sha else E.GATE_REJECTED)
    if p.revert_sha:
        return E.WITHDRAWN
    if p.commit_sha:
        return E.APPLIED
    if p.pre_sha:
        return E.APPLY_STARTED
    if p.check_ok:
        return E.VALIDATED
    if p.route == "review":
        return E.APPROVED if p.approved_by else E.QUEUED_FOR_REVIEW
    return E.ROUTED if p.route else E.PLANNED


# --- the archive of finished diagnose turns ------------------------------------------------------
class TurnArchive:
    """A snapshot's finished diagnose turns, as the JSON text they were stored in. Loading a long
    session (`show`, `approve`, a resume that is about to score) never needs them; the next diagnose
    request or an audit does, and decodes them then, once."""

    def __init__(self, text: str, order: list[str], keys: set[str]) -> None:
        self.text, self.order, self.keys = text, order, keys  # order: every call key, as recorded

    def decode(self) -> tuple[dict[str, TeacherCall], list[DiagnoseTurn]]:
        with _cyclic_gc_paused():
            data = json.loads(self.text)
            calls = {call["call_key"]: _revive_call(call) for call in data["calls"]}
            turns = [_revive_turn(t, calls) for t in data["turns"]]
        if set(calls) != self.keys:
            raise DistillError("a session snapshot's turn archive does not hold the turns it names")
        return calls, turns


def _split_archive(state: dict[str, Any]) -> dict[str, Any] | None:
    """Move every diagnose turn but the last (which may still get tool results) and its teacher call
    out of `state` into an archive; `state["teacher_calls"]` keeps their keys, in order, in their place."""
    finished = state["diagnose_turns"][:-1]
    if not finished:
        return None
    keys = {t["call_key"] for t in finished}
    by_key = {c["call_key"]: c for c in state["teacher_calls"] if c["call_key"] in keys}
    state["teacher_calls"] = [c["call_key"] if c["call_key"] in keys else c for c in state["teacher_calls"]]
    state["diagnose_turns"] = state["diagnose_turns"][-1:]
    return {"calls": [by_key[t["call_key"]] for t in finished], "turns": finished}


_T = TypeVar("_T")


def _revive_call(data: dict[str, Any]) -> TeacherCall:
    data["at"] = _dt(data["at"])
    return _revive(TeacherCall, data)


def _revive_turn(data: dict[str, Any], calls: dict[str, TeacherCall]) -> DiagnoseTurn:
    """A turn from its snapshot form; its response is its teacher call's own (stored once)."""
    make = ToolResult._make
    results = {use_id: make(result) for use_id, result in data["results"].items()}
    fields = {"call_key": data["call_key"], "response": calls[data["call_key"]].response, "results": results}
    return _revive(DiagnoseTurn, fields)


def _revive(cls: type[_T], fields: dict[str, Any]) -> _T:
    """A plain dataclass instance from its own field values (snapshot data), without calling __init__:
    the values were validated when their events were recorded, and this runs by the thousand."""
    obj = cls.__new__(cls)
    obj.__dict__.update(fields)
    return obj


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _dt(value: Any) -> Any:
    """A datetime back from its ISO text (snapshots are one JSON document)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


class SessionSnapshot(Snapshot):
    """A snapshot of the folded session state, as JSON values (never pickled objects)."""

    TOPIC = "distill_es.SessionSnapshot.v1"

    @classmethod
    def take(cls, aggregate: Any) -> SessionSnapshot:
        # One JSON document, so loading is a single C-level json.loads rather than the store's
        # per-object decoding hooks over thousands of nested dicts.
        full = snapshot_state(aggregate)
        archive = _split_archive(full)
        state = {
            "_created_on": aggregate.created_on,
            "_modified_on": aggregate.modified_on,
            "session": _json(full),
            "archive": _json(archive) if archive else None,
        }
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=cls.create_timestamp(),
            topic=Session.TOPIC,
            state=state,
        )

    def mutate(self, _: None) -> Session:
        # Rebuilding a long session creates tens of thousands of acyclic objects; pausing the cyclic
        # collector meanwhile spares the full-heap collections those allocations would trigger
        # (reference counting still frees everything as usual).
        with _cyclic_gc_paused():
            session = session_from_state(json.loads(self.state["session"]), archive=self.state.get("archive"))
        session._id = self.originator_id
        session._version = self.originator_version
        session._created_on = self.state["_created_on"]
        session._modified_on = self.state["_modified_on"]
        session._pending_events = []
        return session


register_topic(SessionSnapshot.TOPIC, SessionSnapshot)
# The store snapshots sessions in this form (`EventStore` takes `type(session).Snapshot`).
Session.Snapshot = SessionSnapshot  # type: ignore[attr-defined]
