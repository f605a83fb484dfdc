from __future__ import annotations

import json

from distill_es.phases.diagnose import DIAGNOSE_SYSTEM_PROMPT, DIAGNOSE_USER_PROMPT, diagnose_system_prompt
from distill_es.phases.diagnose_inputs import INPUT_MODELS
from distill_es.phases.diagnose_tools import TOOL_DEFINITIONS, tool_definitions

# --- definitions and prompts ---------------------------------------------------------------------


def test_tool_definitions_cover_the_protocol_in_a_fixed_order() -> None:
    names = [t["name"] for t in TOOL_DEFINITIONS]
    assert names == [
        "list_traces",
        "get_trace",
        "search_traces",
        "get_current_config",
        "get_agent_prompt",
        "get_tool_description",
        "list_available_tools",
        "list_personal_benchmark",
        "run_student_on_task",
        "run_self_on_task",
        "compare_outputs",
        "submit_diagnosis",
    ]
    assert json.dumps(TOOL_DEFINITIONS, sort_keys=True) == json.dumps(tool_definitions(), sort_keys=True)
    assert tool_definitions() is not TOOL_DEFINITIONS


def test_schemas_match_the_input_models() -> None:
    for tool in TOOL_DEFINITIONS:
        schema = tool["input_schema"]
        assert schema["type"] == "object"
        assert set(schema["properties"]) == set(INPUT_MODELS[tool["name"]].model_fields), tool["name"]
        required = {n for n, f in INPUT_MODELS[tool["name"]].model_fields.items() if f.is_required()}
        assert required <= set(schema["required"]), tool["name"]


def test_submit_diagnosis_cluster_schema() -> None:
    submit = TOOL_DEFINITIONS[-1]["input_schema"]
    cluster = submit["properties"]["clusters"]["items"]
    assert set(cluster["properties"]) == {
        "id",
        "description",
        "sample_trace_ids",
        "task_ids",
        "student_failure_rate",
        "teacher_success_rate",
        "skill_gap",
    }
    assert cluster["properties"]["student_failure_rate"]["maximum"] == 1


def test_prompts_are_deterministic_and_formatted() -> None:
    prompt = diagnose_system_prompt(30, 5.0)
    assert prompt == diagnose_system_prompt(30, 5.0)
    assert "at most 30 turns" in prompt and "$5.00" in prompt
    assert "{" not in prompt and "}" not in prompt
    assert "{max_turns}" in DIAGNOSE_SYSTEM_PROMPT
    assert "submit_diagnosis" in DIAGNOSE_USER_PROMPT


def test_definitions_name_every_argument_model_in_order() -> None:
    assert [t["name"] for t in TOOL_DEFINITIONS] == list(INPUT_MODELS)
