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

import functools
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

from distill_es.config.settings import Settings
from distill_es.domain.errors import DistillError
from distill_es.domain.payloads import parse_payload
from distill_es.domain.policy import assign_tier, route
from distill_es.domain.session import lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.triggers import ClusterTrigger, OnDemandTrigger, ScheduledTrigger, UserFlagTrigger
from distill_es.domain.vocabulary import (
    OP_PILLAR,
    AutonomyMode,
    BenchmarkSnapshot,
    Edit,
    EditOp,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    SessionStatus,
    Trigger,
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

# --- small building blocks ----------------------------------------------------------------------

_ALNUM = string.ascii_lowercase + string.digits
_short_text = st.text(max_size=20)
_words = st.text(alphabet=string.ascii_letters + string.digits + " .,:-_", min_size=1, max_size=30)
_safe_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,11}", fullmatch=True)
_key_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,11}", fullmatch=True)
_model_names = st.one_of(
    st.sampled_from(["qwen3:8b", "llama3.1:8b", "gpt-4o-mini", "mistral-small", "claude-haiku-4-5"]),
    st.from_regex(r"[a-z][a-z0-9.:-]{0,15}", fullmatch=True),
)
_shas = st.integers(min_value=0, max_value=2**160 - 1).map(lambda n: f"{n:040x}")
_digests = st.integers(min_value=0, max_value=2**256 - 1).map(lambda n: f"{n:064x}")
_fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)
_money = st.integers(min_value=0, max_value=50_000).map(lambda cents: cents / 10_000)
_reviewers = st.sampled_from(["alice", "bob", "carol@example.com", "ops-bot"])
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-1000, max_value=100_000),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    _words,
)
_param_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), _short_text)


@functools.cache
def _ids(prefix: str) -> st.SearchStrategy[str]:
    return st.text(alphabet=_ALNUM, min_size=1, max_size=6).map(lambda s: f"{prefix}{s}")


def autonomy_modes() -> st.SearchStrategy[AutonomyMode]:
    return st.sampled_from(list(AutonomyMode))


def _diff(old: str, new: str) -> str:
    return f"--- a/system_prompt.md\n+++ b/system_prompt.md\n@@ -1 +1 @@\n-{old}\n+{new}\n"


_few_shot = st.lists(st.fixed_dictionaries({"user": _words, "assistant": _words}), min_size=1, max_size=3)

# One payload strategy per op; every one of them parses with `parse_payload`.
_AGENT_CLASSES = st.sampled_from(["simple", "react", "orchestrator", "native_openhands"])
_HYPERPARAMETERS = st.dictionaries(
    st.sampled_from(["lr", "epochs", "rank"]), st.one_of(st.integers(1, 64), _fractions), max_size=2
)
_dicts = st.fixed_dictionaries
_PAYLOADS: dict[EditOp, st.SearchStrategy[dict[str, Any]]] = {
    EditOp.SET_MODEL_FOR_QUERY_CLASS: _dicts({"query_class": _key_names, "model": _model_names}),
    EditOp.SET_MODEL_PARAM: _dicts(
        {
            "model": _model_names,
            "param": st.sampled_from(["temperature", "max_tokens", "top_p"]),
            "value": _param_values,
        }
    ),
    EditOp.PATCH_SYSTEM_PROMPT: _dicts({"agent": _safe_names, "diff": st.builds(_diff, _words, _words)}),
    EditOp.REPLACE_SYSTEM_PROMPT: _dicts({"agent": _safe_names, "new_content": _short_text}),
    EditOp.SET_AGENT_CLASS: _dicts({"agent": _safe_names, "new_class": _AGENT_CLASSES}),
    EditOp.SET_AGENT_PARAM: _dicts(
        {
            "agent": _safe_names,
            "param": st.sampled_from(["max_turns", "temperature", "verbose"]),
            "value": _param_values,
        }
    ),
    EditOp.EDIT_FEW_SHOT_EXEMPLARS: _dicts({"agent": _safe_names, "exemplars": _few_shot}),
    EditOp.ADD_TOOL_TO_AGENT: _dicts({"agent": _safe_names, "tool_name": _safe_names}),
    EditOp.REMOVE_TOOL_FROM_AGENT: _dicts({"agent": _safe_names, "tool_name": _safe_names}),
    EditOp.EDIT_TOOL_DESCRIPTION: _dicts({"tool_name": _safe_names, "new_description": _words}),
    EditOp.LORA_FINETUNE: _dicts(
        {
            "target_model": _model_names,
            "backend": st.sampled_from(["dry-run", "peft-trl-orpo", "unsloth-orpo"]),
        },
        optional={"training_mode": st.just("orpo"), "hyperparameters": _HYPERPARAMETERS},
    ),
}


def _target(op: EditOp, payload: dict[str, Any]) -> str:
    if "agent" in payload:
        return f"agents.{payload['agent']}"
    if "tool_name" in payload:
        return f"tools.{payload['tool_name']}"
    if op == EditOp.SET_MODEL_FOR_QUERY_CLASS:
        return f"routing.policy_map.{payload['query_class']}"
    if "model" in payload:
        return f"models.{payload['model']}"
    return str(payload.get("target_model", ""))


# --- values --------------------------------------------------------------------------------------


@st.composite
def edits(
    draw: st.DrawFn,
    *,
    ids: st.SearchStrategy[str] | None = None,
    ops: list[EditOp] | None = None,
    cluster_ids: list[str] | None = None,
    engine_tier: bool = False,
) -> Edit:
    """A valid `Edit`: pillar agrees with op, payload parses with `parse_payload`.

    `cluster_ids` limits `expected_improvement` to those clusters; `engine_tier=True` gives the tier
    the engine would assign (`policy.assign_tier`) instead of a teacher's advisory guess.
    """
    op = draw(st.sampled_from(ops or list(EditOp)))
    payload = draw(_PAYLOADS[op])
    edit = Edit(
        id=draw(ids if ids is not None else _ids("e")),
        pillar=OP_PILLAR[op],
        op=op,
        target=_target(op, payload),
        payload=payload,
        rationale=draw(_short_text),
        expected_improvement=draw(st.sampled_from(cluster_ids)) if cluster_ids else "",
        risk_tier=assign_tier(op) if engine_tier else draw(st.sampled_from(list(EditRiskTier))),
        references=draw(st.lists(_ids("trace-"), max_size=2)),
    )
    parse_payload(edit)  # the contract of this strategy: never yields an edit the engine would refuse
    return edit


@st.composite
def clusters(
    draw: st.DrawFn, *, ids: st.SearchStrategy[str] | None = None, evidence: bool | None = None
) -> FailureCluster:
    """A `FailureCluster`. `evidence=True` guarantees a measured rate, `False` guarantees none."""
    if evidence is False:
        failure = success = 0.0
    else:
        failure, success = draw(_fractions), draw(_fractions)
        if evidence and failure == 0.0 and success == 0.0:
            failure = 0.5
    return FailureCluster(
        id=draw(ids if ids is not None else _ids("c")),
        description=draw(_short_text),
        sample_trace_ids=draw(st.lists(_ids("trace-"), max_size=3)),
        task_ids=draw(st.lists(_ids("task-"), max_size=3, unique=True)),
        student_failure_rate=failure,
        teacher_success_rate=success,
        skill_gap=draw(_short_text),
    )


@st.composite
def plans(
    draw: st.DrawFn,
    *,
    session_id: str | None = None,
    clusters_: list[FailureCluster] | None = None,
    min_edits: int = 0,
    max_edits: int = 4,
) -> LearningPlan:
    """A `LearningPlan` with unique edit ids whose `expected_improvement` names one of its clusters.

    Tiers are the engine's (the plan as `freeze_plan` records it). Pass the session's clusters as
    `clusters_` to build a plan for that session's diagnosis.
    """
    if clusters_ is None:
        clusters_ = draw(st.lists(clusters(), min_size=1, max_size=3, unique_by=lambda c: c.id))
    cluster_ids = [c.id for c in clusters_] or None
    plan_edits = draw(
        st.lists(
            edits(cluster_ids=cluster_ids, engine_tier=True),
            min_size=min_edits,
            max_size=max_edits,
            unique_by=lambda e: e.id,
        )
    )
    return LearningPlan(
        session_id=session_id or str(draw(st.uuids())),
        diagnosis_summary=draw(_short_text),
        failure_clusters=list(clusters_),
        edits=plan_edits,
        teacher_model="claude-opus-4-6",
        estimated_cost_usd=draw(_money),
    )


@functools.cache
def triggers() -> st.SearchStrategy[Trigger]:
    """`Trigger` values of every kind, built by the public constructors with plausible metadata."""
    return st.one_of(
        st.builds(OnDemandTrigger, st.one_of(st.none(), st.fixed_dictionaries({"requested_by": _reviewers}))),
        st.builds(UserFlagTrigger, _ids("trace-")),
        st.builds(
            ScheduledTrigger,
            st.sampled_from(["0 3 * * *", "*/30 * * * *", "15 2 * * 1"]),
            st.integers(min_value=0, max_value=5000),
        ),
        st.builds(ClusterTrigger, _words, st.lists(_ids("trace-"), max_size=3), _fractions),
    )


@st.composite
def benchmark_snapshots(draw: st.DrawFn, *, cluster_ids: list[str] | None = None) -> BenchmarkSnapshot:
    keys = st.sampled_from(cluster_ids) if cluster_ids else _ids("c")
    return BenchmarkSnapshot(
        benchmark_version="personal_v1",
        overall_score=draw(_fractions),
        cluster_scores=draw(st.dictionaries(keys, _fractions, max_size=3)),
        task_count=draw(st.integers(min_value=0, max_value=50)),
        elapsed_seconds=draw(st.floats(min_value=0.0, max_value=600.0, allow_nan=False)),
        tree_sha=draw(st.one_of(st.none(), _shas)),
    )


@st.composite
def started_sessions(
    draw: st.DrawFn,
    *,
    trigger: st.SearchStrategy[Trigger] | None = None,
    autonomy: st.SearchStrategy[AutonomyMode] | None = None,
    session_id: UUID | None = None,
) -> Session:
    """A brand-new `Session` (one pending `SessionStarted` event) under default settings."""
    return Session.start(
        trigger=draw(trigger if trigger is not None else triggers()),
        autonomy_mode=draw(autonomy if autonomy is not None else autonomy_modes()),
        settings=Settings().model_dump(mode="json"),
        workspace=draw(st.sampled_from(["/home/me/agent", "/srv/agents/support", "C:/work/bot"])),
        session_id=session_id,
    )


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
