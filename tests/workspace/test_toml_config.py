"""Format-preserving TOML edits: each case the reference got wrong (spec search §11.9), and a property."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import InvalidEdit, WorkspaceError
from distill_es.workspace import toml_config as tc

from .conftest import CONFIG, DESCRIPTIONS


def test_string_values_are_quoted_and_booleans_are_toml() -> None:
    text = tc.set_agent_param(CONFIG, "simple", "mode", "fast")
    text = tc.set_agent_param(text, "simple", "verbose", True)
    assert 'mode = "fast"' in text
    assert "verbose = true" in text
    assert tomllib.loads(text)["agent"]["simple"] == {
        "class": "simple",
        "tools": ["web_search", "calculator"],
        "max_turns": 3,
        "mode": "fast",
        "verbose": True,
    }


def test_values_keep_their_types() -> None:
    text = tc.set_model_param(CONFIG, "m", "temperature", 0.25)
    text = tc.set_model_param(text, "m", "max_tokens", 512)
    text = tc.set_model_param(text, "m", "stop", ["</s>", 'say "hi"', 3, False, 1.5])
    model = tomllib.loads(text)["models"]["m"]
    assert model == {"temperature": 0.25, "max_tokens": 512, "stop": ["</s>", 'say "hi"', 3, False, 1.5]}
    assert type(model["max_tokens"]) is int and type(model["temperature"]) is float


def test_removing_the_first_tool_gives_a_valid_array() -> None:
    text = tc.remove_agent_tool(CONFIG, "simple", "web_search")
    assert tomllib.loads(text)["agent"]["simple"]["tools"] == ["calculator"]
    assert "[," not in text


def test_removing_the_last_tools_leaves_an_empty_array() -> None:
    text = tc.remove_agent_tool(CONFIG, "simple", "web_search")
    text = tc.remove_agent_tool(text, "simple", "calculator")
    assert tomllib.loads(text)["agent"]["simple"]["tools"] == []


def test_adding_to_an_empty_or_missing_array() -> None:
    empty = CONFIG.replace('tools = ["web_search", "calculator"]', "tools = []")
    text = tc.add_agent_tool(empty, "simple", "calc")
    assert tomllib.loads(text)["agent"]["simple"]["tools"] == ["calc"]
    missing = CONFIG.replace('tools = ["web_search", "calculator"]  # what it may call\n', "")
    text = tc.add_agent_tool(missing, "simple", "calc")
    assert tomllib.loads(text)["agent"]["simple"]["tools"] == ["calc"]


def test_tool_names_match_exactly_never_as_substrings() -> None:
    text = tc.add_agent_tool(CONFIG, "simple", "search")  # `search` is inside `web_search`
    assert tomllib.loads(text)["agent"]["simple"]["tools"] == ["web_search", "calculator", "search"]
    with pytest.raises(InvalidEdit, match="'search' is not in"):
        tc.remove_agent_tool(CONFIG, "simple", "search")
    with pytest.raises(InvalidEdit, match="'web_search' is already in"):
        tc.add_agent_tool(CONFIG, "simple", "web_search")


def test_multiline_tool_arrays_with_comments_survive() -> None:
    config = CONFIG.replace(
        'tools = ["web_search", "calculator"]  # what it may call',
        'tools = [\n  "web_search",  # search\n  "calculator",  # maths\n]',
    )
    text = tc.remove_agent_tool(config, "simple", "web_search")
    text = tc.add_agent_tool(text, "simple", "clock")
    assert tomllib.loads(text)["agent"]["simple"]["tools"] == ["calculator", "clock"]
    assert "# maths" in text


def test_quotes_and_newlines_in_descriptions_and_classes_are_escaped() -> None:
    description = 'Search the "web".\nReturns a list; use \\n carefully. Ünïcødé ✓'
    text = tc.set_tool_description(DESCRIPTIONS, "web_search", description)
    assert tomllib.loads(text)["web_search"]["description"] == description
    text = tc.set_agent_class(CONFIG, "simple", 'Re"Act')
    assert tomllib.loads(text)["agent"]["simple"]["class"] == 'Re"Act'


def test_param_keys_match_exactly_not_by_prefix() -> None:
    text = tc.set_agent_param(CONFIG, "simple", "max", 10)
    assert tomllib.loads(text)["agent"]["simple"]["max_turns"] == 3
    assert tomllib.loads(text)["agent"]["simple"]["max"] == 10


def test_query_class_default_does_not_touch_agent_default() -> None:
    text = tc.set_query_class_model(CONFIG, "default", "big-model")
    data = tomllib.loads(text)
    assert data["agent"]["default"] == "simple"
    assert data["routing"]["policy_map"] == {"default": "big-model"}


def test_query_class_math_does_not_touch_mathematics() -> None:
    text = tc.set_query_class_model(CONFIG, "mathematics", "small")
    text = tc.set_query_class_model(text, "math", "big")
    text = tc.set_query_class_model(text, "math", "bigger")
    assert tomllib.loads(text)["routing"]["policy_map"] == {"mathematics": "small", "math": "bigger"}


@pytest.mark.parametrize("model", ["qwen3.5:9b", "org/model-7b", "llama3.1:8b-instruct-q4_K_M", "a.b.c"])
def test_model_names_are_one_quoted_key_not_nested_tables(model: str) -> None:
    text = tc.set_model_param(CONFIG, model, "temperature", 0.1)
    models = tomllib.loads(text)["models"]
    assert models == {model: {"temperature": 0.1}}
    assert f'[models."{model}"]' in text


def test_existing_quoted_model_table_is_found() -> None:
    config = CONFIG + '\n[models."qwen3.5:9b"]\ntemperature = 0.7  # warm\n'
    text = tc.set_model_param(config, "qwen3.5:9b", "temperature", 0.2)
    assert tomllib.loads(text)["models"] == {"qwen3.5:9b": {"temperature": 0.2}}
    assert text.count("[models.") == 1
    assert "# warm" in text


def test_comments_and_layout_are_kept() -> None:
    text = tc.set_agent_param(CONFIG, "simple", "max_turns", 5)
    assert text == CONFIG.replace("max_turns = 3", "max_turns = 5")
    text = tc.set_query_class_model(CONFIG, "code", "coder")
    assert text.startswith(CONFIG)  # the new table is appended; nothing above it moves


def test_agent_edits_need_the_agent_table() -> None:
    with pytest.raises(InvalidEdit, match=r"no \[agent.ghost\] table"):
        tc.set_agent_param(CONFIG, "ghost", "max_turns", 1)
    with pytest.raises(InvalidEdit, match=r"no \[agent.ghost\] table"):
        tc.set_agent_class(CONFIG, "ghost", "x")
    with pytest.raises(InvalidEdit, match=r"no \[agent.ghost\] table"):
        tc.add_agent_tool(CONFIG, "ghost", "x")
    # `[agent] default = "simple"` is a string, not an agent called "default"
    with pytest.raises(InvalidEdit, match=r"agent\.default is a string, not a table"):
        tc.set_agent_param(CONFIG, "default", "x", 1)


def test_reserved_agent_params_have_their_own_ops() -> None:
    with pytest.raises(InvalidEdit, match="set_agent_class"):
        tc.set_agent_param(CONFIG, "simple", "class", "other")
    with pytest.raises(InvalidEdit, match="add_tool_to_agent"):
        tc.set_agent_param(CONFIG, "simple", "tools", ["x"])


def test_type_changes_are_refused() -> None:
    with pytest.raises(InvalidEdit, match=r"max_turns is a number .* to a string"):
        tc.set_agent_param(CONFIG, "simple", "max_turns", "5")
    assert (
        tomllib.loads(tc.set_agent_param(CONFIG, "simple", "max_turns", 2.5))["agent"]["simple"]["max_turns"]
        == 2.5
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**63, [[1]]])
def test_values_toml_cannot_hold_are_refused(value: Any) -> None:
    with pytest.raises(InvalidEdit):
        tc.set_model_param(CONFIG, "m", "p", value)


def test_same_value_is_a_no_op_with_text_unchanged() -> None:
    assert tc.set_agent_param(CONFIG, "simple", "max_turns", 3) == CONFIG
    # `True == 1` in Python, not in TOML: setting 1 over true is a real change (and a type change)
    config = CONFIG.replace("max_turns = 3", "flag = true")
    with pytest.raises(InvalidEdit, match="boolean"):
        tc.set_agent_param(config, "simple", "flag", 1)


def test_corrupt_file_names_the_file_and_the_error() -> None:
    with pytest.raises(WorkspaceError, match=r"config.toml is not valid TOML: .*line 2"):
        tc.set_agent_param("[agent]\nx = = 1\n", "simple", "p", 1)
    with pytest.raises(WorkspaceError, match=r"tools/descriptions\.toml is not valid TOML"):
        tc.set_tool_description("[web_search\n", "web_search", "d")


def test_description_file_may_start_empty_and_dotted_tool_names_are_quoted() -> None:
    text = tc.set_tool_description("", "web.search", "Find pages.")
    assert tomllib.loads(text) == {"web.search": {"description": "Find pages."}}
    assert '["web.search"]' in text


def test_non_table_in_the_way_is_refused() -> None:
    with pytest.raises(InvalidEdit, match="routing is a string, not a table"):
        tc.set_query_class_model('routing = "x"\n', "math", "m")
    with pytest.raises(InvalidEdit, match="tools is a string, not an array"):
        tc.add_agent_tool('[agent.a]\ntools = "x"\n', "a", "y")


def test_inline_and_dotted_layouts_are_edited_in_place() -> None:
    config = 'routing.policy_map.math = "a"\n[models]\n"q:1" = {temperature = 1}\n'
    text = tc.set_query_class_model(config, "code", "b")
    text = tc.set_model_param(text, "q:1", "max_tokens", 5)
    assert tomllib.loads(text) == {
        "routing": {"policy_map": {"math": "a", "code": "b"}},
        "models": {"q:1": {"temperature": 1, "max_tokens": 5}},
    }


# --- property: any payload yields a file that parses and reads back as intended ---------------------

keys = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,15}", fullmatch=True)
model_names = st.one_of(
    st.sampled_from(["qwen3.5:9b", "default", "org/m:1", "a.b", "gpt-4o"]),
    st.text(
        st.characters(blacklist_characters='\n\r\t"\\', blacklist_categories=("Cs",)), min_size=1, max_size=20
    ),
)
tool_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(lambda s: ".." not in s)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalars = st.one_of(
    texts,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))

edits = st.one_of(
    st.tuples(st.just("route"), keys, model_names),
    st.tuples(st.just("model_param"), model_names, keys, values),
    st.tuples(st.just("agent_param"), keys, values),
    st.tuples(st.just("agent_class"), texts.filter(bool)),
    st.tuples(st.just("add_tool"), tool_names),
    st.tuples(st.just("remove_tool"), st.sampled_from(["web_search", "calculator", "search"])),
)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _expected_after(expected: dict[str, Any], edit: tuple[Any, ...]) -> tuple[list[str], Any] | None:
    """(path, new value) the edit should produce, or None when it must be refused."""
    agent = expected["agent"]["simple"]
    match edit:
        case ("route", query_class, model):
            return ["routing", "policy_map", query_class], model
        case ("model_param", model, param, value):
            path = ["models", model, param]
        case ("agent_param", param, value):
            if param in {"class", "tools"}:
                return None
            path = ["agent", "simple", param]
        case ("agent_class", new_class):
            path, value = ["agent", "simple", "class"], new_class
        case ("add_tool", tool):
            return None if tool in agent["tools"] else (["agent", "simple", "tools"], [*agent["tools"], tool])
        case ("remove_tool", tool):
            if tool not in agent["tools"]:
                return None
            return ["agent", "simple", "tools"], [t for t in agent["tools"] if t != tool]
    node: Any = expected
    for key in path[:-1]:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    old = node.get(path[-1]) if isinstance(node, dict) else None
    if old is not None and _kind(old) != _kind(value):
        return None
    return path, value


def _run(text: str, edit: tuple[Any, ...]) -> str:
    match edit:
        case ("route", query_class, model):
            return tc.set_query_class_model(text, query_class, model)
        case ("model_param", model, param, value):
            return tc.set_model_param(text, model, param, value)
        case ("agent_param", param, value):
            return tc.set_agent_param(text, "simple", param, value)
        case ("agent_class", new_class):
            return tc.set_agent_class(text, "simple", new_class)
        case ("add_tool", tool):
            return tc.add_agent_tool(text, "simple", tool)
        case ("remove_tool", tool):
            return tc.remove_agent_tool(text, "simple", tool)
    raise AssertionError(edit)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(edits, min_size=1, max_size=6))
def test_any_sequence_of_edits_parses_and_reads_back(sequence: list[tuple[Any, ...]]) -> None:
    text = CONFIG
    expected = tomllib.loads(CONFIG)
    for edit in sequence:
        outcome = _expected_after(expected, edit)
        if outcome is None:
            with pytest.raises(InvalidEdit):
                _run(text, edit)
            continue
        text = _run(text, edit)
        path, value = outcome
        expected = copy.deepcopy(expected)
        node = expected
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        assert tomllib.loads(text) == expected  # parses, the intended value, nothing else changed
    assert text.startswith("# The student's configuration.")
    assert "# the agent the CLI runs" in text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(tool_names, texts.filter(bool)), min_size=1, max_size=5))
def test_any_description_parses_and_reads_back(pairs: list[tuple[str, str]]) -> None:
    text = DESCRIPTIONS
    expected = tomllib.loads(DESCRIPTIONS)
    for tool, description in pairs:
        text = tc.set_tool_description(text, tool, description)
        expected.setdefault(tool, {})["description"] = description
        assert tomllib.loads(text) == expected
    assert text.startswith("# Descriptions the model sees")
