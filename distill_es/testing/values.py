"""Hypothesis strategies for distill_es values: edits, clusters, plans, triggers, benchmark snapshots
and freshly started sessions. Everything generated is valid (see strategies.py for the rules)."""

from __future__ import annotations

import functools
import string
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

from distill_es.config.settings import Settings
from distill_es.domain.payloads import parse_payload
from distill_es.domain.policy import assign_tier
from distill_es.domain.session.aggregate import Session
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
    Trigger,
)

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
