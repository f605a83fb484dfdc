from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.domain.vocabulary import EditOp, EditRiskTier, FailureCluster
from distill_es.phases.clusters import DROPPED_PREFIX
from distill_es.phases.plan import MAX_EDITS, RAW_EXCERPT_CHARS, FrozenPlan, freeze_plan

PROMPT = "".join(f"line{i}\n" for i in range(1, 11))
CLUSTERS = [
    FailureCluster(id="math", task_ids=["t1"], student_failure_rate=0.6, teacher_success_rate=1.0),
    FailureCluster(id="geo", task_ids=["t2"], student_failure_rate=0.5, teacher_success_rate=0.5),
    FailureCluster(id="ghost", skill_gap="unclear", student_failure_rate=0.0, teacher_success_rate=0.0),
]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def read_prompt(agent: str) -> str | None:
    return PROMPT if agent == "simple" else None


def edit(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "edit_001",
        "pillar": "intelligence",
        "op": "set_model_for_query_class",
        "target": "routing.math",
        "payload": {"query_class": "math", "model": "qwen3:14b"},
        "rationale": "bigger model for math",
        "expected_improvement": "math",
        "risk_tier": "auto",
        "references": ["tr-1"],
    }
    return {**base, **overrides}


def patch_edit(diff: str, **overrides: Any) -> dict[str, Any]:
    item = edit(
        id="edit_p",
        pillar="agent",
        op="patch_system_prompt",
        target="agent.simple",
        payload={"agent": "simple", "diff": diff},
        risk_tier="review",
    )
    return {**item, **overrides}


def replace_edit(payload: dict[str, Any]) -> dict[str, Any]:
    return edit(pillar="agent", op="replace_system_prompt", target="agent.simple", payload=payload)


def freeze(tool_input: Any, clusters: list[FailureCluster] = CLUSTERS) -> FrozenPlan:
    return freeze_plan(
        session_id="s-1",
        tool_input=tool_input,
        clusters=clusters,
        diagnosis_markdown="# Diagnosis",
        teacher_model="claude-x",
        cost_usd=0.25,
        read_prompt=read_prompt,
        created_at=NOW,
    )


def only_rejection(frozen: FrozenPlan) -> str:
    assert frozen.plan.edits == []
    assert len(frozen.rejected) == 1
    return frozen.rejected[0].reason


# --- freezing: the happy path -------------------------------------------------------------------


def test_valid_edits_are_frozen_with_engine_tiers_and_links() -> None:
    frozen = freeze(
        {
            "edits": [
                edit(risk_tier="review"),
                edit(
                    id="edit_002",
                    pillar="tools",
                    op="add_tool_to_agent",
                    target="agent.simple",
                    payload={"tool_name": "calc"},
                    expected_improvement="geo",
                    risk_tier="yolo",
                ),
            ]
        }
    )
    assert frozen.rejected == []
    plan = frozen.plan
    assert [e.id for e in plan.edits] == ["edit_001", "edit_002"]
    assert all(e.risk_tier == EditRiskTier.AUTO for e in plan.edits)
    # the agent came from the target and is now in the payload the appliers will see
    assert plan.edits[1].payload == {"agent": "simple", "tool_name": "calc"}
    assert [(t.edit_id, t.proposed, t.assigned) for t in frozen.tier_changes] == [
        ("edit_001", "review", EditRiskTier.AUTO),
        ("edit_002", "yolo", EditRiskTier.AUTO),
    ]
    by_id = {c.id: c for c in plan.failure_clusters}
    assert [c.id for c in plan.failure_clusters] == ["math", "geo", "ghost"]
    assert by_id["math"].addressed_by_edit_ids == ["edit_001"]
    assert by_id["geo"].addressed_by_edit_ids == ["edit_002"]
    assert by_id["ghost"].skill_gap.startswith(DROPPED_PREFIX)
    assert plan.session_id == "s-1" and plan.estimated_cost_usd == 0.25 and plan.created_at == NOW
    assert plan.diagnosis_summary == "# Diagnosis" and plan.teacher_model == "claude-x"


def test_json_string_input_is_accepted() -> None:
    assert len(freeze(json.dumps({"edits": [edit()]})).plan.edits) == 1


def test_small_patch_stays_a_patch() -> None:
    frozen = freeze({"edits": [patch_edit("@@ -2,1 +2,1 @@\n-line2\n+better line2\n")]})
    assert frozen.rejected == [] and frozen.downgrades == []
    assert frozen.plan.edits[0].op == EditOp.PATCH_SYSTEM_PROMPT
    assert frozen.plan.edits[0].risk_tier == EditRiskTier.REVIEW


def test_large_patch_is_downgraded_to_replace_with_the_patched_text() -> None:
    removed = "".join(f"-line{i}\n" for i in range(1, 11))
    diff = f"@@ -1,10 +1,2 @@\n{removed}+short\n+prompt\n"
    frozen = freeze({"edits": [patch_edit(diff)]})
    assert frozen.downgrades == ["edit_p"]
    (replaced,) = frozen.plan.edits
    assert replaced.op == EditOp.REPLACE_SYSTEM_PROMPT
    assert replaced.payload == {"agent": "simple", "new_content": "short\nprompt\n"}
    assert replaced.risk_tier == EditRiskTier.REVIEW


# --- freezing: rejections -------------------------------------------------------------------------


def test_reference_off_by_one_patch_is_rejected_naming_the_hunk() -> None:
    diff = "--- a/prompt.md\n+++ b/prompt.md\n@@ -2,1 +2,1 @@\n line1\n-line2\n+changed\n line3\n"
    reason = only_rejection(freeze({"edits": [patch_edit(diff)]}))
    assert "agents/simple/system_prompt.md" in reason and "@@ -2,1 +2,1 @@" in reason


def test_unparseable_diff_is_rejected_not_turned_into_a_prompt() -> None:
    frozen = freeze({"edits": [patch_edit("please make it better")]})
    assert "no hunk header" in only_rejection(frozen)
    assert frozen.downgrades == []


def test_patch_of_a_missing_prompt_is_rejected() -> None:
    bad = patch_edit("@@ -1 +1 @@\n-a\n+b\n", target="agent.other", payload={"agent": "other", "diff": "x"})
    assert "replace_system_prompt" in only_rejection(freeze({"edits": [bad]}))


def test_noop_patch_is_rejected() -> None:
    assert "does not change" in only_rejection(
        freeze({"edits": [patch_edit("@@ -1 +1 @@\n-line1\n+line1\n")]})
    )


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("edit_001", "must be a JSON object, got str"),
        ([edit()], "got list"),
        (None, "got NoneType"),
        (7, "got int"),
        (edit(op="make_it_better"), "op"),
        (edit(pillar="agent"), "belongs to pillar 'intelligence'"),
        (edit(surprise=True), "surprise"),
        (edit(id=""), "id"),
        (edit(id=5), "id"),
        (edit(payload="query_class=math"), "payload"),
        (edit(payload={"query_class": "math"}), "model"),
        (edit(payload={"query_class": "math", "model": "m", "extra": 1}), "extra"),
        (edit(expected_improvement="nope"), "unknown cluster 'nope'"),
        (edit(expected_improvement="ghost"), "dropped for insufficient evidence"),
        (edit(expected_improvement=""), "expected_improvement is empty"),
        (edit(references="tr-1"), "references"),
        (edit(rationale="x" * 30_000), "rationale"),
        (
            edit(pillar="agent", op="replace_system_prompt", payload={"agent": "../etc", "new_content": "x"}),
            "safe",
        ),
        (
            edit(
                pillar="agent",
                op="replace_system_prompt",
                payload={"agent": "a", "new_content": "y" * 300_000},
            ),
            "new_content",
        ),
    ],
)
def test_bad_items_are_rejected_one_by_one(item: Any, fragment: str) -> None:
    frozen = freeze({"edits": [item, edit(id="good")]})
    assert [e.id for e in frozen.plan.edits] == ["good"]
    (rejection,) = frozen.rejected
    assert rejection.index == 0
    assert fragment in rejection.reason
    assert len(json.dumps(rejection.raw)) <= RAW_EXCERPT_CHARS + 100


def test_rejected_raw_is_json_safe_and_truncated() -> None:
    huge = edit(id="big", payload={"query_class": "math", "model": "m" * 500_000})
    frozen = freeze({"edits": [huge, edit(id="nan", rationale=float("nan"))]})
    big, nan = frozen.rejected
    assert big.edit_id == "big" and isinstance(big.raw, str) and "...[truncated from" in big.raw
    assert nan.edit_id == "nan" and nan.raw["rationale"] == "nan"
    json.dumps(frozen.model_dump(mode="json"), allow_nan=False)


def test_duplicate_ids_reject_the_later_one() -> None:
    frozen = freeze({"edits": [edit(), edit(rationale="second")]})
    assert [e.rationale for e in frozen.plan.edits] == ["bigger model for math"]
    assert frozen.rejected[0].index == 1 and "duplicate edit id 'edit_001'" in frozen.rejected[0].reason


def test_too_many_edits() -> None:
    items = [edit(id=f"e{i}") for i in range(MAX_EDITS + 5)]
    frozen = freeze({"edits": items})
    assert len(frozen.plan.edits) == MAX_EDITS
    assert [r.index for r in frozen.rejected] == list(range(MAX_EDITS, MAX_EDITS + 5))
    assert all("too many edits" in r.reason for r in frozen.rejected)


def test_invalid_proposed_tier_is_recorded_not_fatal() -> None:
    frozen = freeze({"edits": [edit(risk_tier={"level": 9})]})
    assert frozen.rejected == []
    assert frozen.tier_changes[0].proposed == '{"level": 9}'


@pytest.mark.parametrize(
    ("tool_input", "fragment"),
    [
        (None, "got NoneType"),
        ([edit()], "got list"),
        (3.5, "got float"),
        ("not json at all", "not JSON"),
        ('["a"]', "got list"),
        ({}, 'no "edits"'),
        ({"plan": []}, 'no "edits"'),
        ({"edits": {"id": "x"}}, "must be a list, got dict"),
        ({"edits": "[]"}, "must be a list, got str"),
    ],
)
def test_top_level_shape_errors_are_invalid_teacher_output(tool_input: Any, fragment: str) -> None:
    with pytest.raises(InvalidTeacherOutput) as caught:
        freeze(tool_input)
    assert fragment in str(caught.value)


def test_empty_edits_is_an_empty_plan() -> None:
    frozen = freeze({"edits": []})
    assert frozen.plan.edits == [] and frozen.rejected == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
EDIT_KEYS = ["id", "pillar", "op", "target", "payload", "rationale", "expected_improvement", "risk_tier"]
EDITISH = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=5) | JSON,
        "pillar": st.sampled_from(["agent", "tools", "intelligence", "engine", "x"]) | JSON,
        "op": st.sampled_from([op.value for op in EditOp] + ["nope"]) | JSON,
        "target": st.sampled_from(["agent.simple", "agent.", ""]) | JSON,
        "payload": st.fixed_dictionaries(
            {},
            optional={
                "agent": st.sampled_from(["simple", "other", "../x"]) | JSON,
                "diff": st.sampled_from(["@@ -1 +1 @@\n-line1\n+x\n", "junk"]) | JSON,
                "new_content": JSON,
                "query_class": JSON,
                "model": JSON,
                "tool_name": JSON,
            },
        )
        | JSON,
        "expected_improvement": st.sampled_from(["math", "geo", "ghost", "zz"]) | JSON,
        "risk_tier": JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries({"edits": st.lists(EDITISH | JSON, max_size=6)})))
def test_freeze_plan_only_raises_invalid_teacher_output(tool_input: Any) -> None:
    try:
        frozen = freeze(tool_input)
    except InvalidTeacherOutput:
        return
    edits = tool_input["edits"] if isinstance(tool_input, dict) else json.loads(tool_input)["edits"]
    assert len(frozen.plan.edits) + len(frozen.rejected) == len(edits)
    assert len({e.id for e in frozen.plan.edits}) == len(frozen.plan.edits)
    json.dumps(frozen.model_dump(mode="json"), allow_nan=False)


# --- edit ids go into commit trailers: one safe token (issue 13) ------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    [
        "e-nl\nEdit-ID: e-temp",  # would forge a second trailer line
        "e1\r",
        " e1",
        "e1\x1b[2J",
        "e/../1",
        "x" * 101,
        "-leading-dash",
        "tab\there",
    ],
)
def test_an_unsafe_edit_id_is_refused_at_plan_time_naming_it(bad_id: str) -> None:
    good = edit(id="edit_ok", payload={"query_class": "geo", "model": "m"})
    frozen = freeze({"edits": [edit(id=bad_id), good]})
    assert [e.id for e in frozen.plan.edits] == ["edit_ok"]
    assert len(frozen.rejected) == 1
    reason = frozen.rejected[0].reason
    assert reason.startswith("edit id ") and "is not allowed" in reason
    assert "\n" not in reason  # the id is quoted with its escapes, never raw


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_every_frozen_edit_id_is_one_trailer_safe_token(edit_id: str) -> None:
    frozen = freeze({"edits": [edit(id=edit_id)]})
    for accepted in frozen.plan.edits:
        assert accepted.id.isascii() and accepted.id.isprintable() and " " not in accepted.id
        assert len(accepted.id) <= 100
