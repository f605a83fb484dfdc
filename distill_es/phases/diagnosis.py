"""The parse of `submit_diagnosis`: the teacher's diagnosis as validated clusters, or a message that
tells the teacher what shape to send instead.

Rates are validated in [0, 1] (a 5 is an error, not 0.05) and task ids against the benchmark.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS
from distill_es.domain.vocabulary import FailureCluster, Value
from distill_es.phases.diagnose_inputs import DiagnosisArgs
from distill_es.phases.teacher_protocol import ToolError, as_object, describe_errors


class Diagnosis(Value):
    markdown: str
    clusters: list[FailureCluster]


_EXPECTED_DIAGNOSIS = (
    'Expected: {"diagnosis_markdown": "<markdown>", "clusters": [{"id": "<unique id>", "description": '
    '"...", "sample_trace_ids": ["..."], "task_ids": ["<benchmark task_id>", ...], '
    '"student_failure_rate": <number 0..1>, "teacher_success_rate": <number 0..1>, "skill_gap": "..."}]}. '
    "Rates are fractions between 0 and 1 (0.6, not 60)."
)


def parse_diagnosis(tool_input: Any, benchmark_ids: Collection[str]) -> Diagnosis:
    """The `submit_diagnosis` input as a `Diagnosis`; `InvalidTeacherOutput` says what to fix.

    Zero clusters is a valid parse: the engine decides that a session without clusters fails.
    """
    try:
        data = as_object(tool_input, SUBMIT_DIAGNOSIS)
    except ToolError as exc:
        raise InvalidTeacherOutput(f"{exc}. {_EXPECTED_DIAGNOSIS}") from None
    try:
        parsed = DiagnosisArgs.model_validate(data)
    except ValidationError as exc:
        raise InvalidTeacherOutput(
            f"submit_diagnosis input is invalid: {describe_errors(exc)}. {_EXPECTED_DIAGNOSIS}"
        ) from None

    problems: list[str] = []
    seen: set[str] = set()
    known = set(benchmark_ids)
    for cluster in parsed.clusters:
        if cluster.id in seen:
            problems.append(f"cluster id {cluster.id!r} is used more than once (ids must be unique)")
        seen.add(cluster.id)
        unknown = [t for t in dict.fromkeys(cluster.task_ids) if t not in known]
        if unknown:
            names = ", ".join(repr(t) for t in unknown[:10]) + (" …" if len(unknown) > 10 else "")
            problems.append(
                f"cluster {cluster.id!r} names task ids that are not in the personal benchmark: {names} "
                "(use list_personal_benchmark for the task ids)"
            )
    if problems:
        raise InvalidTeacherOutput("submit_diagnosis input is invalid: " + "; ".join(problems))

    clusters = [
        FailureCluster(**{**cluster.model_dump(), "task_ids": list(dict.fromkeys(cluster.task_ids))})
        for cluster in parsed.clusters
    ]
    return Diagnosis(markdown=parsed.diagnosis_markdown, clusters=clusters)
