from __future__ import annotations

import copy
import json

from hypothesis import given
from hypothesis import strategies as st

from distill_es.phases.prompt_cache import with_prompt_cache
from tests.teacher_request import PARAMS


def _markers(value) -> list:
    found = []
    if isinstance(value, dict):
        if "cache_control" in value:
            found.append(value)
        for v in value.values():
            found += _markers(v)
    elif isinstance(value, list):
        for v in value:
            found += _markers(v)
    return found


def test_prompt_cache_marks_last_tool_system_and_last_user_block():
    original = copy.deepcopy(PARAMS)
    cached = with_prompt_cache(PARAMS)
    assert original == PARAMS  # input untouched
    assert len(_markers(cached)) == 3
    assert cached["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in cached["tools"][0]
    assert cached["system"] == [
        {"type": "text", "text": PARAMS["system"], "cache_control": {"type": "ephemeral"}}
    ]
    assert cached["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in json.dumps(cached["messages"][:2])


def test_prompt_cache_converts_a_string_user_message():
    cached = with_prompt_cache(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert cached["messages"][0]["content"] == [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    ]
    assert "system" not in cached and "tools" not in cached


def test_prompt_cache_counts_existing_breakpoints():
    params = copy.deepcopy(PARAMS)
    params["messages"][0]["content"] = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(3)
    ]
    cached = with_prompt_cache(params)
    assert len(_markers(cached)) == 4
    assert cached["tools"][-1]["cache_control"] == {"type": "ephemeral"}  # first in prefix order wins

    params["messages"][1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    assert with_prompt_cache(params) == params  # already at the limit: nothing added


blocks = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": st.text(max_size=5)},
        optional={"cache_control": st.just({"type": "ephemeral"})},
    ),
    min_size=1,
    max_size=4,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": st.one_of(st.text(max_size=5), blocks)}
    ),
    max_size=5,
)


@given(
    messages=messages,
    system=st.one_of(st.none(), st.text(max_size=5), blocks),
    n_tools=st.integers(0, 3),
)
def test_prompt_cache_never_exceeds_four_breakpoints_and_never_mutates(messages, system, n_tools):
    params = {"model": "m", "max_tokens": 1, "messages": messages}
    if system is not None:
        params["system"] = system
    if n_tools:
        params["tools"] = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(n_tools)]
    before = copy.deepcopy(params)
    cached = with_prompt_cache(params)
    assert params == before
    assert len(_markers(cached)) <= max(4, len(_markers(params)))
    if len(_markers(params)) <= 4:
        assert len(_markers(cached)) <= 4
