from __future__ import annotations

import json

from distill_es.domain.payloads import PAYLOAD_MODELS
from distill_es.domain.vocabulary import FailureCluster
from distill_es.phases.clusters import DROPPED_PREFIX, surviving_clusters
from distill_es.phases.plan_request import PLAN_TOOL, build_plan_request, plan_system_prompt, plan_user_prompt

CLUSTERS = [
    FailureCluster(id="math", task_ids=["t1"], student_failure_rate=0.6, teacher_success_rate=1.0),
    FailureCluster(id="geo", task_ids=["t2"], student_failure_rate=0.5, teacher_success_rate=0.5),
    FailureCluster(id="ghost", skill_gap="unclear", student_failure_rate=0.0, teacher_success_rate=0.0),
]


# --- clusters and request ------------------------------------------------------------------------


def test_surviving_clusters_drop_the_ones_without_evidence() -> None:
    kept, dropped = surviving_clusters(CLUSTERS)
    assert [c.id for c in kept] == ["math", "geo"]
    assert [c.id for c in dropped] == ["ghost"]
    assert dropped[0].skill_gap == f"{DROPPED_PREFIX} (original: unclear)"
    # idempotent: running it again does not prefix twice
    assert surviving_clusters(dropped)[1][0].skill_gap == dropped[0].skill_gap


def test_system_prompt_is_generated_from_payload_models() -> None:
    prompt = plan_system_prompt()
    assert prompt == plan_system_prompt()
    for op, model in PAYLOAD_MODELS.items():
        line = next(line for line in prompt.splitlines() if line.startswith(f"- `{op.value}`"))
        for field in model.model_fields:
            assert f"{field}:" in line, (op, field)
    assert "{{" not in prompt and "}}" not in prompt
    assert "exemplars: list of {user: string, assistant: string}" in prompt


def test_user_prompt_sends_surviving_clusters_only() -> None:
    text = plan_user_prompt("# Found things", CLUSTERS, {"simple": "Use ```code``` blocks.\n"})
    clusters = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert [c["id"] for c in clusters] == ["math", "geo"]
    assert "addressed_by_edit_ids" not in clusters[0]
    assert "Dropped for insufficient evidence (do not target them): ghost" in text
    assert "````\nUse ```code``` blocks.\n````" in text


def test_build_plan_request_forces_the_tool() -> None:
    request = build_plan_request("claude-x", 4096, "# D", CLUSTERS)
    assert request["tool_choice"] == {"type": "tool", "name": "submit_plan"}
    assert request["tools"] == [PLAN_TOOL] and request["tools"][0] is not PLAN_TOOL
    assert request["model"] == "claude-x" and request["max_tokens"] == 4096
    assert request["messages"][0]["role"] == "user"
    assert json.dumps(request, sort_keys=True) == json.dumps(
        build_plan_request("claude-x", 4096, "# D", CLUSTERS), sort_keys=True
    )
