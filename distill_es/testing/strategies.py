"""Hypothesis strategies for distill_es values, commands and event histories.

Everything generated here is *valid* unless a name says otherwise: edits whose pillar matches their op
and whose payload parses with `parse_payload`, plans with unique edit ids that point at the plan's
clusters, triggers of every kind with plausible metadata, and histories built by driving the real
`Session` aggregate (never by assembling events by hand), so a history is always one the aggregate
itself accepts.

    from distill_es.testing import commands, event_histories, fire

    @given(event_histories())
    def test_something(session):
        events = session.pending_events          # the whole history, not yet saved
        ...

Strategies stay small on purpose (a few clusters, a few edits, short texts): they are meant to run
hundreds of times in a test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from distill_es.domain.errors import DistillError
from distill_es.domain.policy import route
from distill_es.domain.session import lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.vocabulary import (
    AutonomyMode,
    EditOp,
    SessionStatus,
    Trigger,
)
from distill_es.testing.values import (  # the building blocks are shared
    _digests,
    _fractions,
    _ids,
    _json_leaf,
    _key_names,
    _model_names,
    _money,
    _reviewers,
    _shas,
    _short_text,
    _words,
    autonomy_modes,
    benchmark_snapshots,
    clusters,
    edits,
    plans,
    started_sessions,
    triggers,
)

__all__ = [
    "BOGUS_COMMAND",
    "Command",
    "autonomy_modes",
    "benchmark_snapshots",
    "clusters",
    "commands",
    "edits",
    "event_histories",
    "fire",
    "plans",
    "started_sessions",
    "triggers",
]

BOGUS_COMMAND = "teleport"  # a command no lifecycle knows: it must be refused with UnknownCommand

# --- commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A lifecycle command and the keyword arguments its `Session` method takes."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def apply(self, session: Session) -> None:
        fire(session, self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_brief(v)}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fire(session: Session, command: Command) -> None:
    """Run a command on a session: its method for a known name, the lifecycle's refusal otherwise."""
    if command.name in lifecycle.COMMANDS:
        getattr(session, command.name)(**command.kwargs)
        return
    lifecycle.decide(session, command.name, dict(command.kwargs), session_id=str(session.id))
    raise AssertionError(f"the lifecycle accepted the unknown command {command.name!r}")


_CHOICE = st.sampled_from((0, 0, 0, 1, 2))  # shrinks toward 0: the id that makes the command meaningful


def _draw_id(draw: st.DrawFn, preferred: list[str], known: list[str], prefix: str) -> str:
    """Mostly an id that makes the command meaningful, sometimes any known id, now and then a bogus one."""
    choice = draw(_CHOICE)
    if choice == 0 and preferred:
        return draw(st.sampled_from(preferred))
    if choice <= 1 and known:
        return draw(st.sampled_from(known))
    return draw(_ids(prefix))


# Which edits a command is meaningful for (what an engine would pick next), by their lifecycle state.
_EDIT_WANTS: dict[str, Callable[[Any], Any]] = {
    "route_edit": lambda p: p.state == E.PLANNED,
    "validate_edit": lambda p: p.state in (E.ROUTED, E.APPROVED),
    "start_apply": lambda p: p.state == E.VALIDATED and p.op != EditOp.LORA_FINETUNE,
    "record_apply": lambda p: p.state == E.APPLY_STARTED,
    "record_gate": lambda p: p.state == E.APPLIED,
    "revert_edit": lambda p: p.state == E.GATE_REJECTED,
    "skip_edit": lambda p: p.outcome is None and p.state != E.PLANNED,
    "record_training": lambda p: p.state == E.VALIDATED and p.op == EditOp.LORA_FINETUNE,
}


def _draw_edit_id(draw: st.DrawFn, session: Session | None, name: str) -> str:
    edits_ = getattr(session, "edits", None) or {}
    if session is None or not edits_:
        return draw(_ids("e"))
    if name in {"approve_edit", "reject_edit"}:
        preferred = session.pending_edit_ids()
    elif name == "roll_back_edit":
        preferred = session.applied_unreverted_ids()
    else:
        wants = _EDIT_WANTS.get(name)
        preferred = [i for i, p in edits_.items() if wants and wants(p)]
    return _draw_id(draw, preferred, list(edits_), "e")


_TOOL_USES = st.lists(
    st.builds(
        lambda n, name: {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": {}},
        st.integers(0, 999),
        st.sampled_from(["list_traces", "get_trace", "run_student_on_task", "submit_diagnosis"]),
    ),
    max_size=2,
    unique_by=lambda block: block["id"],
)
_USAGE = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 20_000), "output_tokens": st.integers(0, 4_000)}
)
_DUPLICATE = st.integers(0, 3).map(lambda k: k == 0)
_STUDENT_RESULT = st.one_of(
    st.none(), st.fixed_dictionaries({"task_id": _ids("task-"), "output": _short_text})
)
_DIAG_TOOLS = st.sampled_from(["list_traces", "get_trace", "search_traces", "run_student_on_task"])
_GIT = st.one_of(st.none(), _shas)
_SEEDS = st.integers(0, 2**32 - 1)
_DELTA = st.floats(-1.0, 1.0, allow_nan=False)
_CLUSTER_LISTS = st.lists(clusters(), min_size=1, max_size=3, unique_by=lambda c: c.id)
_CHANGED = st.lists(
    st.sampled_from(["config.toml", "agents/a/system_prompt.md", "tools/descriptions.toml"]),
    max_size=2,
    unique=True,
)
_SCORES = st.lists(
    st.fixed_dictionaries({"task_id": _ids("task-"), "score": _fractions, "output": _short_text}), max_size=3
)
_REASON_CODES = st.sampled_from(["cold_start", "no_clusters", "budget_exhausted", "turns_exhausted", "error"])
_ROUTES = st.sampled_from(["apply", "review"])
_LABELS = st.sampled_from(["before", "after"])
_BOGUS_KWARGS = st.dictionaries(_key_names, _json_leaf, max_size=2)
_NONBLANK = _words.filter(str.strip)


def _teacher_call(draw: st.DrawFn, session: Session | None) -> dict[str, Any]:
    status = getattr(session, "status", None)
    taken = list(getattr(session, "teacher_calls", None) or {})
    if status == SessionStatus.DIAGNOSING:
        purpose, key = "diagnose", f"diagnose/{len(session.diagnose_turns) + 1}"  # type: ignore[union-attr]
    elif status == SessionStatus.PLANNING:
        purpose, key = "plan", "plan"
    else:
        purpose, key = "judge", f"judge/{len(taken) + 1}"
    if key in taken:
        key = draw(_ids(f"{purpose}/"))
    if taken and draw(_DUPLICATE):  # a key already recorded: the aggregate must refuse it
        key = draw(st.sampled_from(taken))
    uses = draw(_TOOL_USES)
    return {
        "call_key": key,
        "purpose": purpose,
        "model": "claude-opus-4-6",
        "request_digest": draw(_digests),
        "response": {
            "content": [{"type": "text", "text": draw(_short_text)}, *uses],
            "stop_reason": "tool_use" if uses else "end_turn",
        },
        "usage": draw(_USAGE),
        "cost_usd": draw(_money),
    }


def _tool_result(draw: st.DrawFn, session: Session | None) -> dict[str, Any]:
    turns = list(getattr(session, "diagnose_turns", None) or [])
    if turns:
        call_key = _draw_id(draw, [turns[-1].call_key], [t.call_key for t in turns], "diagnose/")
        unanswered = [u["id"] for u in turns[-1].tool_uses() if u.get("id") not in turns[-1].results]
        tool_use_id = _draw_id(draw, unanswered, [], "toolu_")
    else:
        call_key, tool_use_id = draw(_ids("diagnose/")), draw(_ids("toolu_"))
    return {
        "call_key": call_key,
        "tool_use_id": tool_use_id,
        "tool": draw(_DIAG_TOOLS),
        "content": draw(_short_text),
        "is_error": draw(st.booleans()),
        "student_result": draw(_STUDENT_RESULT),
    }


def _cluster_ids(session: Session | None) -> list[str] | None:
    found = [c.id for c in getattr(session, "clusters", None) or []]
    return found or None


def _route(draw: st.DrawFn, session: Session | None, edit_id: str) -> str:
    progress = (getattr(session, "edits", None) or {}).get(edit_id)
    if progress is None or draw(_DUPLICATE):
        return draw(_ROUTES)
    return route(session.autonomy_mode, progress.risk_tier).value  # type: ignore[union-attr]


def _draw_payload(draw: st.DrawFn, name: str, session: Session | None) -> dict[str, Any]:
    """Keyword arguments for `Session.<name>`, shaped by the session's state when one is given."""
    edit_id = lambda: _draw_edit_id(draw, session, name)  # noqa: E731 - drawn only where needed
    snapshot = lambda: draw(benchmark_snapshots(cluster_ids=_cluster_ids(session)))  # noqa: E731
    match name:
        case "begin_diagnosis":
            return {}
        case "check_readiness":
            need = draw(st.integers(1, 40))
            cold = draw(st.integers(0, 4)) == 0  # one in five: a cold start
            count = max(0, need - 1) if cold else need + draw(st.integers(0, 100))
            return {"trace_count": count, "min_traces": need, "git_head": draw(_GIT), "git_tree": draw(_GIT)}
        case "record_teacher_call":
            return _teacher_call(draw, session)
        case "record_tool_result":
            return _tool_result(draw, session)
        case "submit_diagnosis":
            # Now and then a diagnosis without clusters: the guard must refuse it.
            found = [] if draw(st.integers(0, 9)) == 0 else draw(_CLUSTER_LISTS)
            return {"markdown": f"# Diagnosis\n{draw(_short_text)}", "clusters": found}
        case "freeze_plan":
            sid = str(session.id) if session is not None else None
            own = list(getattr(session, "clusters", None) or []) or None
            return {
                "plan": draw(plans(session_id=sid, clusters_=own)),
                "rejected": [{"id": draw(_ids("e")), "reason": draw(_short_text)}]
                if draw(_DUPLICATE)
                else [],
                "tier_changes": [],
                "downgrades": [],
            }
        case "route_edit":
            chosen = edit_id()
            return {"edit_id": chosen, "route": _route(draw, session, chosen), "preview": draw(_short_text)}
        case "validate_edit":
            return {"edit_id": edit_id(), "ok": draw(st.integers(0, 5)) != 0, "reason": draw(_short_text)}
        case "start_apply":
            return {"edit_id": edit_id(), "pre_sha": draw(_shas), "pre_tree": draw(_shas)}
        case "record_apply":
            return {
                "edit_id": edit_id(),
                "commit_sha": draw(_shas),
                "tree_sha": draw(_shas),
                "changed_files": draw(_CHANGED),
                "reconciled": draw(st.booleans()),
            }
        case "skip_edit":
            return {"edit_id": edit_id(), "reason": draw(_words)}
        case "record_training":
            state = draw(st.sampled_from(["completed", "failed", "dry_run"]))
            deployable = draw(st.booleans()) if state == "completed" else None
            return {
                "edit_id": edit_id(),
                "run_id": draw(_ids("run-")),
                "state": state,
                "deployable": deployable,
                "summary": draw(_words),
            }
        case "choose_gate_tasks":
            return {"seed": draw(_SEEDS), "task_ids": draw(st.lists(_ids("task-"), max_size=4, unique=True))}
        case "record_scores":
            return {
                "tree_sha": draw(_shas),
                "seed": draw(_SEEDS),
                "student_model": draw(_model_names),
                "scores": draw(_SCORES),
            }
        case "capture_benchmark":
            return {"label": draw(_LABELS), "snapshot": snapshot()}
        case "record_gate":
            keys = st.sampled_from(_cluster_ids(session) or ["c1"])
            return {
                "edit_id": edit_id(),
                "before": snapshot(),
                "after": snapshot(),
                "delta": draw(_DELTA),
                "cluster_deltas": draw(st.dictionaries(keys, _DELTA, max_size=2)),
                "accepted": draw(st.integers(0, 3)) != 0,
                "reason": draw(_words),
            }
        case "revert_edit":
            return {"edit_id": edit_id(), "revert_sha": draw(_shas), "tree_sha": draw(_shas)}
        case "approve_edit":
            return {"edit_id": edit_id(), "reviewer": draw(_reviewers), "note": draw(_short_text)}
        case "reject_edit":
            return {"edit_id": edit_id(), "reviewer": draw(_reviewers), "reason": draw(_words)}
        case "await_review" | "complete" | "roll_back":
            return {"git_post": draw(_GIT)}
        case "fail":
            return {"error": draw(_words), "reason_code": draw(_REASON_CODES)}
        case "cancel":
            return {"cancelled_by": draw(_reviewers), "reason": draw(_NONBLANK)}  # blank: refused
        case "request_rollback":
            return {"requested_by": draw(_reviewers)}
        case "roll_back_edit":
            return {"edit_id": edit_id(), "revert_sha": draw(_shas)}
        case "record_interruption":
            return {
                "step": draw(st.sampled_from(["CallTeacher", "RunTool", "ScoreTree"])),
                "role": draw(st.sampled_from(["student", "judge", "teacher", ""])),
                "endpoint": "http://127.0.0.1:11434/v1/chat/completions",
                "error_class": draw(st.sampled_from(["APIConnectionError", "InternalServerError"])),
                "error": draw(_words),
                "attempts": draw(st.integers(1, 5)),
            }
    # An unknown command: arbitrary keyword arguments, which must not matter.
    return draw(_BOGUS_KWARGS)


_MOSTLY_USEFUL = st.integers(0, 7).map(lambda k: k != 7)
_ALL_NAMES = [*sorted(lifecycle.COMMANDS), BOGUS_COMMAND]


def _useful(session: Session) -> list[str]:
    """Legal commands that move this session along (what an engine would plausibly do next)."""
    status = session.status
    if status == SessionStatus.INITIATED:
        return ["begin_diagnosis"] if session.ready else ["check_readiness"]
    if status == SessionStatus.DIAGNOSING:
        names = ["record_teacher_call", "submit_diagnosis"]
        if session.diagnose_turns and any(
            u.get("id") not in session.diagnose_turns[-1].results
            for u in session.diagnose_turns[-1].tool_uses()
        ):
            names.append("record_tool_result")
        return names
    if status == SessionStatus.PLANNING:
        return ["freeze_plan"]
    if status == SessionStatus.EXECUTING:
        names = [
            n
            for n in (
                "route_edit",
                "validate_edit",
                "start_apply",
                "record_apply",
                "record_gate",
                "revert_edit",
                "record_training",
            )
            if _has_preferred(session, n)
        ]
        if not names:  # nothing left to do for any edit: rest
            names.append("await_review" if session.pending_edit_ids() else "complete")
        return names
    if status in {SessionStatus.AWAITING_REVIEW, SessionStatus.COMPLETED, SessionStatus.FAILED}:
        if session.rollback_requested:
            return ["roll_back_edit"] if session.applied_unreverted_ids() else ["roll_back"]
        if status == SessionStatus.AWAITING_REVIEW:
            return ["approve_edit", "reject_edit"]  # a reviewer decides; rollback stays possible
        return ["request_rollback"]
    return []


def _has_preferred(session: Session, name: str) -> bool:
    return any(_EDIT_WANTS[name](p) for p in session.edits.values())


@st.composite
def commands(
    draw: st.DrawFn,
    session: Session | None = None,
    *,
    legal_only: bool = False,
    names: list[str] | None = None,
) -> Command:
    """A lifecycle command with the keyword arguments its `Session` method needs.

    Without a session: any name from `lifecycle.COMMANDS` or `BOGUS_COMMAND`, with generic payloads.
    With a session: payloads refer to that session (its edits, its diagnose turns) so guards can hold.
    `legal_only=True` draws only commands the lifecycle allows from the session's state, mostly ones
    that move it along; their guards may still refuse, and some payloads are deliberately wrong (an
    unknown edit id, a call key already recorded, an empty cluster list). `names` fixes the choice.
    """
    if names is None:
        names = _ALL_NAMES
        if session is not None and legal_only:
            legal = lifecycle.legal_commands(session.status)
            useful = [n for n in _useful(session) if n in legal]
            names = useful if useful and draw(_MOSTLY_USEFUL) else (legal or _ALL_NAMES)
    name = draw(st.sampled_from(names))
    return Command(name, _draw_payload(draw, name, session))


@st.composite
def event_histories(
    draw: st.DrawFn,
    *,
    min_steps: int = 0,
    max_steps: int = 20,
    trigger: st.SearchStrategy[Trigger] | None = None,
    autonomy: st.SearchStrategy[AutonomyMode] | None = None,
) -> Session:
    """A session driven by the real aggregate through random legal commands.

    Returns the `Session` with its whole history still pending (`session.pending_events`; save it with
    an `EventStore`, or `session.collect_events()` to take the events). Commands the aggregate refuses
    are simply not part of the history, exactly as in production.
    """
    session = draw(started_sessions(trigger=trigger, autonomy=autonomy))
    steps = draw(st.integers(min_value=min_steps, max_value=max_steps))
    for _ in range(steps):
        if not lifecycle.legal_commands(session.status):
            break  # terminal
        command = draw(commands(session, legal_only=True))
        try:
            fire(session, command)
        except DistillError:
            continue
    return session
