from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.phases.diagnosis import parse_diagnosis

# --- parse_diagnosis -----------------------------------------------------------------------------

IDS = ["t1", "t2", "t-err"]


def _cluster(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "math",
        "description": "arithmetic slips",
        "sample_trace_ids": ["tr-0"],
        "task_ids": ["t1"],
        "student_failure_rate": 0.6,
        "teacher_success_rate": 1,
        "skill_gap": "checks its work",
    }
    return {**base, **overrides}


def test_parse_diagnosis_happy_path() -> None:
    diagnosis = parse_diagnosis(
        {
            "diagnosis_markdown": "# Findings",
            "clusters": [_cluster(), _cluster(id="geo", task_ids=["t2", "t2"])],
        },
        IDS,
    )
    assert diagnosis.markdown == "# Findings"
    assert [c.id for c in diagnosis.clusters] == ["math", "geo"]
    assert diagnosis.clusters[0].teacher_success_rate == 1.0
    assert diagnosis.clusters[1].task_ids == ["t2"]


def test_parse_diagnosis_accepts_json_string_and_zero_clusters() -> None:
    assert parse_diagnosis('{"diagnosis_markdown": "", "clusters": []}', IDS).clusters == []


@pytest.mark.parametrize(
    ("tool_input", "fragment"),
    [
        ("not json {", "not JSON"),
        ([_cluster()], "got list"),
        (42, "got int"),
        ({"clusters": []}, "diagnosis_markdown: Field required"),
        ({"diagnosis_markdown": "x"}, "clusters: Field required"),
        ({"diagnosis_markdown": "x", "clusters": {"id": "a"}}, "clusters"),
        ({"diagnosis_markdown": "x", "clusters": ["math"]}, "clusters.0"),
        ({"diagnosis_markdown": "x", "clusters": [_cluster(student_failure_rate=5)]}, "(got 5)"),
        ({"diagnosis_markdown": "x", "clusters": [_cluster(teacher_success_rate=1.5)]}, "(got 1.5)"),
        (
            {"diagnosis_markdown": "x", "clusters": [_cluster(student_failure_rate="0.5")]},
            "student_failure_rate",
        ),
        (
            {"diagnosis_markdown": "x", "clusters": [_cluster(student_failure_rate=True)]},
            "student_failure_rate",
        ),
        ({"diagnosis_markdown": "x", "clusters": [_cluster(id="")]}, "clusters.0.id"),
        ({"diagnosis_markdown": "x", "clusters": [_cluster(bogus=1)]}, "bogus"),
        ({"diagnosis_markdown": "x", "clusters": [_cluster(), _cluster()]}, "'math' is used more than once"),
        ({"diagnosis_markdown": "x", "clusters": [_cluster(task_ids=["t1", "t9", "t8"])]}, "'t9', 't8'"),
        ({"diagnosis_markdown": "x", "clusters": [_cluster()] * 21}, "clusters"),
    ],
)
def test_parse_diagnosis_errors(tool_input: Any, fragment: str) -> None:
    with pytest.raises(InvalidTeacherOutput) as caught:
        parse_diagnosis(tool_input, IDS)
    assert fragment in str(caught.value)


def test_parse_diagnosis_error_shows_the_expected_shape() -> None:
    with pytest.raises(InvalidTeacherOutput, match="Rates are fractions between 0 and 1"):
        parse_diagnosis({"diagnosis_markdown": "x", "clusters": [_cluster(student_failure_rate=60)]}, IDS)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
        max_leaves=12,
    )
)
def test_parse_diagnosis_only_raises_invalid_teacher_output(tool_input: Any) -> None:
    with contextlib.suppress(InvalidTeacherOutput):
        parse_diagnosis(tool_input, IDS)
