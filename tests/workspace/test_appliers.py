"""Appliers against a real workspace directory (no git here): validate, preview, apply per op."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import InvalidEdit, OpNotAvailable, WorkspaceError
from distill_es.domain.vocabulary import EditOp
from distill_es.workspace.appliers import APPLIERS, Applier, applier_for

from .conftest import CONFIG, PROMPT, make_edit, snapshot, write_workspace


def config(root: Path) -> dict[str, Any]:
    return tomllib.loads((root / "config.toml").read_text())


def apply(root: Path, op: EditOp, payload: dict[str, Any], **kw: Any) -> list[str]:
    edit = make_edit(op, payload, **kw)
    check = APPLIERS[op].validate(edit, root)
    assert check.ok, check.reason
    return APPLIERS[op].apply(edit, root)


def refused(root: Path, op: EditOp, payload: dict[str, Any], match: str, **kw: Any) -> str:
    """Validate says no (with `match` in the reason), apply raises, and no file anywhere changed."""
    edit = make_edit(op, payload, **kw)
    before = snapshot(root.parent)
    check = APPLIERS[op].validate(edit, root)
    assert not check.ok
    assert match in check.reason, check.reason
    with pytest.raises((InvalidEdit, WorkspaceError)):
        APPLIERS[op].apply(edit, root)
    assert snapshot(root.parent) == before
    return check.reason


def test_registry_covers_every_op() -> None:
    assert set(APPLIERS) == set(EditOp)
    for op, applier in APPLIERS.items():
        assert isinstance(applier, Applier)
        assert applier.op == op
        assert applier_for(make_edit(op, {})) is applier


# --- intelligence -------------------------------------------------------------------------------


def test_set_model_for_query_class(root: Path) -> None:
    assert apply(
        root, EditOp.SET_MODEL_FOR_QUERY_CLASS, {"query_class": "default", "model": "qwen3.5:9b"}
    ) == ["config.toml"]
    data = config(root)
    assert data["routing"]["policy_map"] == {"default": "qwen3.5:9b"}
    assert data["agent"]["default"] == "simple"
    assert (root / "config.toml").read_text().startswith(CONFIG)


def test_set_model_param_with_colon_and_dot_in_name(root: Path) -> None:
    apply(root, EditOp.SET_MODEL_PARAM, {"model": "qwen3.5:9b", "param": "temperature", "value": 0.2})
    apply(
        root, EditOp.SET_MODEL_PARAM, {"model": "qwen3.5:9b", "param": "think", "value": False}, edit_id="e2"
    )
    assert config(root)["models"] == {"qwen3.5:9b": {"temperature": 0.2, "think": False}}


# --- agent --------------------------------------------------------------------------------------


def test_set_agent_param_exact_key_and_typed_value(root: Path) -> None:
    apply(root, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max", "value": 9})
    apply(root, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "mode", "value": "fast"}, edit_id="e2")
    agent = config(root)["agent"]["simple"]
    assert agent["max_turns"] == 3 and agent["max"] == 9 and agent["mode"] == "fast"


def test_agent_can_come_from_the_target(root: Path) -> None:
    apply(root, EditOp.SET_AGENT_PARAM, {"param": "max_turns", "value": 6}, target="agent.simple")
    assert config(root)["agent"]["simple"]["max_turns"] == 6


def test_set_agent_param_refusals(root: Path) -> None:
    refused(root, EditOp.SET_AGENT_PARAM, {"agent": "ghost", "param": "x", "value": 1}, "[agent.ghost]")
    refused(
        root, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "class", "value": "x"}, "set_agent_class"
    )
    refused(root, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": "5"}, "a string")
    refused(
        root, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 3}, "changes nothing"
    )


def test_set_agent_class(root: Path) -> None:
    apply(root, EditOp.SET_AGENT_CLASS, {"agent": "simple", "new_class": 'react "v2"'})
    assert config(root)["agent"]["simple"]["class"] == 'react "v2"'
    refused(root, EditOp.SET_AGENT_CLASS, {"agent": "ghost", "new_class": "x"}, "[agent.ghost]")


def test_replace_system_prompt_writes_exact_content(root: Path) -> None:
    content = "New prompt.\r\nWith CRLF and ünïcode — and no final newline"
    assert apply(root, EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "simple", "new_content": content}) == [
        "agents/simple/system_prompt.md"
    ]
    assert (root / "agents/simple/system_prompt.md").read_bytes() == content.encode()


def test_replace_system_prompt_for_an_agent_known_only_by_config(root: Path) -> None:
    text = (root / "config.toml").read_text() + '\n[agent.coder]\nclass = "simple"\n'
    (root / "config.toml").write_text(text)
    apply(root, EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "coder", "new_content": "Write code.\n"})
    assert (root / "agents/coder/system_prompt.md").read_text() == "Write code.\n"


def test_replace_system_prompt_unknown_agent(root: Path) -> None:
    refused(
        root, EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "ghost", "new_content": "x"}, "unknown agent 'ghost'"
    )


def test_patch_system_prompt_applies_a_real_diff(root: Path) -> None:
    diff = (
        "--- a/system_prompt.md\n+++ b/system_prompt.md\n"
        "@@ -2,1 +2,2 @@\n-Answer briefly.\n+Answer briefly.\n+Show your work.\n"
    )
    edit = make_edit(EditOp.PATCH_SYSTEM_PROMPT, {"agent": "simple", "diff": diff})
    preview = APPLIERS[EditOp.PATCH_SYSTEM_PROMPT].preview(edit, root)
    assert "+Show your work.\n" in preview and preview.startswith("--- a/agents/simple/system_prompt.md\n")
    apply(root, EditOp.PATCH_SYSTEM_PROMPT, {"agent": "simple", "diff": diff})
    expected = "You are a helpful assistant.\nAnswer briefly.\nShow your work.\nCite your sources.\n"
    assert (root / "agents/simple/system_prompt.md").read_text() == expected


def test_patch_system_prompt_whose_context_does_not_match(root: Path) -> None:
    diff = "@@ -2,1 +2,1 @@\n-Answer at length.\n+Answer briefly!\n"
    reason = refused(root, EditOp.PATCH_SYSTEM_PROMPT, {"agent": "simple", "diff": diff}, "@@ -2,1 +2,1 @@")
    assert "does not apply" in reason


def test_patch_system_prompt_without_a_prompt_file(root: Path) -> None:
    (root / "agents/simple/system_prompt.md").unlink()
    refused(
        root, EditOp.PATCH_SYSTEM_PROMPT, {"agent": "simple", "diff": "@@ -1 +1 @@\n-a\n+b\n"}, "not found"
    )


def test_few_shot_exemplars(root: Path) -> None:
    exemplars = [{"user": "2+2?", "assistant": 'It is "4".'}, {"user": "héllo", "assistant": "hi"}]
    assert apply(root, EditOp.EDIT_FEW_SHOT_EXEMPLARS, {"agent": "simple", "exemplars": exemplars}) == [
        "agents/simple/few_shot.json"
    ]
    assert json.loads((root / "agents/simple/few_shot.json").read_text()) == exemplars


@pytest.mark.parametrize(
    "exemplars",
    [[{"user": "q"}], [{"user": "q", "assistant": ""}], [{"user": "q", "assistant": "a", "extra": 1}], "x"],
)
def test_few_shot_schema_is_enforced(root: Path, exemplars: Any) -> None:
    refused(root, EditOp.EDIT_FEW_SHOT_EXEMPLARS, {"agent": "simple", "exemplars": exemplars}, "exemplars")


# --- tools --------------------------------------------------------------------------------------


def test_add_and_remove_tools_exactly(root: Path) -> None:
    apply(root, EditOp.ADD_TOOL_TO_AGENT, {"agent": "simple", "tool_name": "search"})
    assert config(root)["agent"]["simple"]["tools"] == ["web_search", "calculator", "search"]
    apply(root, EditOp.REMOVE_TOOL_FROM_AGENT, {"agent": "simple", "tool_name": "web_search"}, edit_id="e2")
    assert config(root)["agent"]["simple"]["tools"] == ["calculator", "search"]
    refused(root, EditOp.ADD_TOOL_TO_AGENT, {"agent": "simple", "tool_name": "search"}, "already in")
    refused(root, EditOp.REMOVE_TOOL_FROM_AGENT, {"agent": "simple", "tool_name": "web"}, "not in")
    refused(root, EditOp.ADD_TOOL_TO_AGENT, {"agent": "ghost", "tool_name": "x"}, "[agent.ghost]")


def test_edit_tool_description(root: Path) -> None:
    text = 'Search the "web".\nTwo lines.'
    apply(root, EditOp.EDIT_TOOL_DESCRIPTION, {"tool_name": "web_search", "new_description": text})
    data = tomllib.loads((root / "tools/descriptions.toml").read_text())
    assert data["web_search"]["description"] == text
    assert data["calculator"]["description"] == "Evaluate arithmetic."
    assert (root / "tools/descriptions.toml").read_text().startswith("# Descriptions the model sees")


def test_edit_tool_description_creates_the_file_for_a_tool_an_agent_has(root: Path) -> None:
    (root / "tools/descriptions.toml").unlink()
    apply(root, EditOp.EDIT_TOOL_DESCRIPTION, {"tool_name": "calculator", "new_description": "Adds."})
    assert tomllib.loads((root / "tools/descriptions.toml").read_text()) == {
        "calculator": {"description": "Adds."}
    }


def test_edit_tool_description_unknown_tool(root: Path) -> None:
    refused(
        root, EditOp.EDIT_TOOL_DESCRIPTION, {"tool_name": "search", "new_description": "x"}, "unknown tool"
    )


# --- engine -------------------------------------------------------------------------------------


def test_lora_finetune_validates_but_cannot_apply(root: Path) -> None:
    edit = make_edit(EditOp.LORA_FINETUNE, {"target_model": "qwen3.5:9b", "backend": "dry-run"})
    applier = APPLIERS[EditOp.LORA_FINETUNE]
    assert applier.validate(edit, root).ok
    assert "changes weights, not files" in applier.preview(edit, root)
    before = snapshot(root)
    with pytest.raises(OpNotAvailable, match="changes weights, not files"):
        applier.apply(edit, root)
    assert snapshot(root) == before
    bad = make_edit(EditOp.LORA_FINETUNE, {"target_model": "m", "backend": "magic"})
    assert not applier.validate(bad, root).ok
    with pytest.raises(InvalidEdit) as info:
        applier.apply(bad, root)
    assert not isinstance(info.value, OpNotAvailable)


# --- shared rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "payload"),
    [
        (EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "../../x", "new_content": "pwned"}),
        (EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "/tmp/x", "new_content": "pwned"}),
        (EditOp.EDIT_FEW_SHOT_EXEMPLARS, {"agent": "..", "exemplars": []}),
        (EditOp.PATCH_SYSTEM_PROMPT, {"agent": "../simple", "diff": "@@ -1 +1 @@\n-a\n+b\n"}),
        (EditOp.EDIT_TOOL_DESCRIPTION, {"tool_name": "../../x", "new_description": "pwned"}),
        (EditOp.ADD_TOOL_TO_AGENT, {"agent": "simple", "tool_name": "/etc/passwd"}),
    ],
)
def test_path_escapes_are_refused_and_nothing_is_written(
    root: Path, op: EditOp, payload: dict[str, Any]
) -> None:
    refused(root, op, payload, "not a safe name")


def test_symlinked_agent_dir_pointing_out_is_refused(root: Path) -> None:
    outside = root.parent / "outside"
    outside.mkdir()
    (root / "agents" / "evil").symlink_to(outside, target_is_directory=True)
    refused(
        root, EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "evil", "new_content": "pwned"}, "outside the workspace"
    )
    assert list(outside.iterdir()) == []


def test_corrupt_config_is_reported_with_the_file_name(root: Path) -> None:
    (root / "config.toml").write_text("[agent\nbroken")
    reason = refused(
        root, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "x", "value": 1}, "config.toml"
    )
    assert "not valid TOML" in reason


def test_missing_config_is_reported(root: Path) -> None:
    (root / "config.toml").unlink()
    refused(
        root, EditOp.SET_MODEL_FOR_QUERY_CLASS, {"query_class": "q", "model": "m"}, "config.toml not found"
    )


def test_preview_matches_what_apply_writes(root: Path) -> None:
    edit = make_edit(EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 4})
    preview = APPLIERS[edit.op].preview(edit, root)
    assert preview.startswith("--- a/config.toml\n+++ b/config.toml\n")
    assert "-max_turns = 3\n+max_turns = 4\n" in preview
    assert (root / "config.toml").read_text() == CONFIG  # preview writes nothing


def test_preview_of_a_new_file_and_a_missing_final_newline(root: Path) -> None:
    edit = make_edit(EditOp.EDIT_FEW_SHOT_EXEMPLARS, {"agent": "simple", "exemplars": []})
    assert (
        APPLIERS[edit.op].preview(edit, root).startswith("--- /dev/null\n+++ b/agents/simple/few_shot.json\n")
    )
    edit = make_edit(EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "simple", "new_content": "short"})
    assert APPLIERS[edit.op].preview(edit, root).endswith("+short\n\\ No newline at end of file\n")
    assert (root / "agents/simple/system_prompt.md").read_text() == PROMPT


@pytest.mark.parametrize("op", list(EditOp))
@pytest.mark.parametrize(
    "payload",
    [{}, {"agent": 5}, {"agent": None, "tool_name": ["x"]}, {"unexpected": "key"}, {"value": {"nested": 1}}],
)
def test_bad_payloads_never_crash_validate(root: Path, op: EditOp, payload: dict[str, Any]) -> None:
    check = APPLIERS[op].validate(make_edit(op, payload), root)
    assert not check.ok
    assert "e1" in check.reason and check.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
payload_keys = st.sampled_from(
    [
        "agent",
        "query_class",
        "model",
        "param",
        "value",
        "diff",
        "new_content",
        "new_class",
        "exemplars",
        "tool_name",
        "new_description",
        "target_model",
        "backend",
        "hyperparameters",
        "x",
    ]
)


@settings(max_examples=100, deadline=None)
@given(op=st.sampled_from(list(EditOp)), payload=st.dictionaries(payload_keys, json_values, max_size=5))
def test_random_payloads_give_a_check_never_an_exception(
    tmp_path_factory: Any, op: EditOp, payload: Any
) -> None:
    root = write_workspace(tmp_path_factory.mktemp("ws") / "home")
    check = APPLIERS[op].validate(make_edit(op, payload), root)
    assert isinstance(check.ok, bool)
    assert check.ok or check.reason
