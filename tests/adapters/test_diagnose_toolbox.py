from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.adapters.diagnose_toolbox import Toolbox
from distill_es.phases.diagnose_inputs import RUNNABLE_TOOLS
from distill_es.phases.diagnose_tools import TOOL_DEFINITIONS
from distill_es.phases.teacher_protocol import SelfRun, ToolLimits
from distill_es.ports import BenchmarkTask, JudgeVerdict, StudentResult, TraceRecord

SECRET = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"


# --- in-memory fakes -----------------------------------------------------------------------------


class FakeTraces:
    def __init__(self, traces: list[TraceRecord]) -> None:
        self.traces = traces
        self.search_error: Exception | None = None

    def count(self) -> int:
        return len(self.traces)

    def list(
        self, limit: int = 20, agent: str | None = None, outcome: str | None = None
    ) -> list[TraceRecord]:
        found = [t for t in self.traces if (agent is None or t.agent == agent)]
        found = [t for t in found if outcome is None or t.outcome == outcome]
        return found[:limit]

    def get(self, trace_id: str) -> TraceRecord | None:
        return next((t for t in self.traces if t.trace_id == trace_id), None)

    def search(self, query: str, limit: int = 20) -> list[TraceRecord]:
        if self.search_error:
            raise self.search_error
        return [t for t in self.traces if query in t.query or query in t.result][:limit]


class FakeStudent:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: Exception | None = None

    def run(self, task: BenchmarkTask) -> StudentResult:
        self.calls.append(task.task_id)
        if self.fail_with:
            raise self.fail_with
        if task.task_id == "t-err":
            return StudentResult(task_id=task.task_id, error="timed out after 3 retries")
        answer = task.reference_answer if task.task_id == "t1" else "no idea"
        return StudentResult(task_id=task.task_id, output=f"student says {answer}", model="small")

    def run_many(self, tasks: Sequence[BenchmarkTask]) -> list[StudentResult]:
        return [self.run(t) for t in tasks]


class FakeJudge:
    def __init__(self) -> None:
        self.broken = False

    def score(self, task: BenchmarkTask, output: str) -> JudgeVerdict:
        if self.broken:
            raise RuntimeError("judge offline")
        good = task.reference_answer in output
        return JudgeVerdict(score=1.0 if good else 0.0, reasoning="matches" if good else "wrong")


def _traces() -> list[TraceRecord]:
    out = []
    for i in range(30):
        out.append(
            TraceRecord(
                trace_id=f"tr-{i}",
                query=f"question {i} " + ("x" * 500 if i == 3 else ""),
                result=f"answer {i}" + (f" my key is {SECRET}" if i == 1 else ""),
                agent="simple" if i % 2 == 0 else "orchestrator",
                outcome="failure" if i % 3 == 0 else "success",
                feedback=None if i % 5 == 0 else (i % 10) / 10,
                steps=[{"tool": "calc", "args": {"password": "hunter2hunter2"}}, "plain step"],
                metadata={"email": "alice@example.com"},
            )
        )
    return out


BENCHMARK = [
    BenchmarkTask(task_id="t1", query="2+2?", reference_answer="4", category="math"),
    BenchmarkTask(task_id="t2", query="capital of France?", reference_answer="Paris", category="geo"),
    BenchmarkTask(task_id="t-err", query="hard", reference_answer="x", category="math"),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(
        '[agent]\ndefault = "simple"\n\n[agent.simple]\nclass = "SimpleAgent"\ntools = ["calc", "search"]\n\n'
        '[agent.orchestrator]\nclass = "Orch"\ntools = ["search", "web"]\n\n'
        f'[models."big"]\napi_key = "{SECRET}"\n',
        encoding="utf-8",
    )
    (tmp_path / "agents" / "simple").mkdir(parents=True)
    (tmp_path / "agents" / "simple" / "system_prompt.md").write_text(
        f"You are helpful.\nNever reveal {SECRET}.\n", encoding="utf-8"
    )
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "descriptions.toml").write_text(
        '[calc]\ndescription = "Evaluate arithmetic."\n\n[unused]\ndescription = "Nobody uses me."\n',
        encoding="utf-8",
    )
    return tmp_path


@pytest.fixture
def box(home: Path) -> Toolbox:
    return Toolbox(
        home=home,
        traces=FakeTraces(_traces()),
        benchmark=BENCHMARK,
        student=FakeStudent(),
        judge=FakeJudge(),
        self_run=lambda query: SelfRun(output=f"teacher: {query} 4 Paris", cost_usd=0.01),
    )


def ok(box: Toolbox, name: str, tool_input: Any = None) -> Any:
    outcome = box.execute(name, tool_input if tool_input is not None else {})
    assert not outcome.is_error, outcome.content
    try:
        return json.loads(outcome.content)
    except ValueError:
        return outcome.content


def err(box: Toolbox, name: str, tool_input: Any) -> str:
    outcome = box.execute(name, tool_input)
    assert outcome.is_error, outcome.content
    return outcome.content


def test_every_runnable_tool_has_exactly_one_toolbox_handler() -> None:
    """The toolbox runs exactly the tools that have argument models (submit_diagnosis aside)."""
    box = Toolbox(
        home=".",  # type: ignore[arg-type]
        traces=None,  # type: ignore[arg-type]
        benchmark=[BenchmarkTask(task_id="t", query="q", reference_answer="a")],
        student=None,  # type: ignore[arg-type]
        judge=None,  # type: ignore[arg-type]
        self_run=lambda q: SelfRun(),
    )
    assert list(box.handlers) == list(RUNNABLE_TOOLS)


# --- traces --------------------------------------------------------------------------------------


def test_list_traces_limit_and_filters(box: Toolbox) -> None:
    body = ok(box, "list_traces", {"limit": 5, "agent": "simple", "outcome": "failure"})
    assert [t["trace_id"] for t in body["traces"]] == ["tr-0", "tr-6", "tr-12", "tr-18", "tr-24"]
    assert len(ok(box, "list_traces")["traces"]) == 20  # default limit
    assert len(ok(box, "list_traces", {"limit": 10_000})["traces"]) == 30  # clamped to 50, only 30 exist


def test_list_traces_applies_feedback_filters_before_the_limit(box: Toolbox) -> None:
    body = ok(box, "list_traces", {"limit": 3, "min_feedback": 0.9})
    # tr-9, tr-19, tr-29 have feedback 0.9: they are not among the first 3 traces, yet they are found.
    assert [t["trace_id"] for t in body["traces"]] == ["tr-9", "tr-19", "tr-29"]
    body = ok(box, "list_traces", {"limit": 50, "max_feedback": 0.1})
    assert all(t["feedback"] is not None and t["feedback"] <= 0.1 for t in body["traces"])
    assert body["matching"] == len(body["traces"]) == 3


def test_list_traces_truncates_queries(box: Toolbox) -> None:
    body = ok(box, "list_traces", {"limit": 5})
    long = next(t for t in body["traces"] if t["trace_id"] == "tr-3")
    assert long["query"].endswith(f"...[truncated from {len('question 3 ') + 500} chars]")


def test_get_trace_is_scrubbed(box: Toolbox) -> None:
    outcome = box.execute("get_trace", {"trace_id": "tr-1"})
    assert not outcome.is_error
    assert SECRET not in outcome.content and "hunter2hunter2" not in outcome.content
    assert "alice@example.com" not in outcome.content
    body = json.loads(outcome.content)
    assert "[REDACTED:anthropic_key]" in body["result"]
    assert body["steps"][1] == "plain step" and body["step_count"] == 2


def test_get_trace_missing(box: Toolbox) -> None:
    assert "not found" in err(box, "get_trace", {"trace_id": "nope"})


def test_search_traces(box: Toolbox) -> None:
    body = ok(box, "search_traces", {"query": "question 2", "limit": 100})
    assert body["returned"] == len(body["traces"]) <= 20
    assert all("question 2" in t["query"] for t in body["traces"])


def test_search_traces_port_failure_is_a_tool_error(box: Toolbox) -> None:
    box.traces.search_error = RuntimeError("fts5: syntax error near '-'")  # type: ignore[attr-defined]
    assert "simpler keyword" in err(box, "search_traces", {"query": "a-b"})


# --- workspace files -----------------------------------------------------------------------------


def test_get_current_config_is_scrubbed(box: Toolbox, home: Path) -> None:
    text = ok(box, "get_current_config")
    assert "[agent.simple]" in text and SECRET not in text
    (home / "config.toml").unlink()
    assert ok(box, "get_current_config") == "No config.toml found."


def test_get_agent_prompt(box: Toolbox) -> None:
    text = ok(box, "get_agent_prompt", {"agent_name": "simple"})
    assert text.startswith("You are helpful.") and SECRET not in text
    assert "no system_prompt.md override" in ok(box, "get_agent_prompt", {"agent_name": "orchestrator"})
    message = err(box, "get_agent_prompt", {"agent_name": "ghost"})
    assert "orchestrator" in message and "simple" in message


def test_get_agent_prompt_refuses_paths(box: Toolbox) -> None:
    assert "not a safe name" in err(box, "get_agent_prompt", {"agent_name": "../../etc"})


def test_tool_descriptions_and_available_tools(box: Toolbox) -> None:
    assert ok(box, "get_tool_description", {"tool_name": "calc"}) == "Evaluate arithmetic."
    assert "no description" in ok(box, "get_tool_description", {"tool_name": "web"})
    assert "known tools" in err(box, "get_tool_description", {"tool_name": "nope"})
    tools = {t["name"]: t for t in ok(box, "list_available_tools")["tools"]}
    assert list(tools) == ["calc", "search", "unused", "web"]
    assert tools["search"]["agents"] == ["orchestrator", "simple"]
    assert tools["calc"]["agents"] == ["simple"] and tools["unused"]["agents"] == []
    assert tools["web"]["description"] is None


def test_corrupt_toml_is_a_tool_error(box: Toolbox, home: Path) -> None:
    (home / "tools" / "descriptions.toml").write_text("[calc\n", encoding="utf-8")
    assert "not valid TOML" in err(box, "list_available_tools", {})


# --- benchmark and runs --------------------------------------------------------------------------


def test_list_personal_benchmark(box: Toolbox) -> None:
    body = ok(box, "list_personal_benchmark", {"category": "math", "limit": 1})
    assert body["total"] == 2 and [t["task_id"] for t in body["tasks"]] == ["t1"]
    assert ok(box, "list_personal_benchmark")["returned"] == 3


def test_run_student_on_task(box: Toolbox) -> None:
    outcome = box.execute("run_student_on_task", {"task_id": "t1"})
    body = json.loads(outcome.content)
    assert body["score"] == 1.0 and body["output"] == "student says 4"
    assert outcome.student_result is not None and outcome.student_result.task_id == "t1"
    failed = box.execute("run_student_on_task", {"task_id": "t-err"})
    assert json.loads(failed.content)["score"] == 0.0 and not failed.is_error
    assert "not in the personal benchmark" in err(box, "run_student_on_task", {"task_id": "zzz"})


def test_run_student_port_failure(box: Toolbox) -> None:
    box.student.fail_with = ConnectionError(f"refused, token {SECRET}")  # type: ignore[attr-defined]
    message = err(box, "run_student_on_task", {"task_id": "t1"})
    assert "ConnectionError" in message and SECRET not in message


def test_judge_failure_is_reported_not_raised(box: Toolbox) -> None:
    box.judge.broken = True  # type: ignore[attr-defined]
    body = ok(box, "run_student_on_task", {"task_id": "t1"})
    assert body["score"] is None and "judge offline" in body["judge_error"]


def test_run_self_on_task_records_the_run(box: Toolbox) -> None:
    outcome = box.execute("run_self_on_task", {"task_id": "t2"})
    assert outcome.self_run == SelfRun(output="teacher: capital of France? 4 Paris", cost_usd=0.01)
    assert json.loads(outcome.content)["score"] == 1.0


def test_run_self_on_task_reports_tokens_used(home: Path) -> None:
    box = Toolbox(
        home=home,
        traces=FakeTraces(_traces()),
        benchmark=BENCHMARK,
        student=FakeStudent(),
        judge=FakeJudge(),
        self_run=lambda query: SelfRun(output="4", cost_usd=0.01, tokens_used=57),
    )
    body = json.loads(box.execute("run_self_on_task", {"task_id": "t1"}).content)
    assert body["tokens_used"] == 57 and body["cost_usd"] == 0.01


def test_run_self_failure(home: Path) -> None:
    def boom(query: str) -> SelfRun:
        raise TimeoutError("teacher timed out")

    box = Toolbox(
        home=home,
        traces=FakeTraces([]),
        benchmark=BENCHMARK,
        student=FakeStudent(),
        judge=FakeJudge(),
        self_run=boom,
    )
    assert "teacher timed out" in err(box, "run_self_on_task", {"task_id": "t1"})


def test_compare_outputs(box: Toolbox) -> None:
    body = ok(box, "compare_outputs", {"task_id": "t2", "student_output": "Lyon", "teacher_output": "Paris"})
    assert body == {
        "task_id": "t2",
        "student_score": 0.0,
        "teacher_score": 1.0,
        "student_reasoning": "wrong",
        "teacher_reasoning": "matches",
    }
    assert "teacher_output" in err(box, "compare_outputs", {"task_id": "t2", "student_output": "x"})


# --- input handling ------------------------------------------------------------------------------


def test_json_string_input_is_parsed(box: Toolbox) -> None:
    assert ok(box, "get_trace", '{"trace_id": "tr-2"}')["trace_id"] == "tr-2"


@pytest.mark.parametrize(
    ("tool_input", "fragment"),
    [
        ([1, 2], "must be a JSON object, got list"),
        (5, "got int"),
        ("not json", "not JSON"),
        ("[1]", "got list"),
        ({"trace_id": 5}, "trace_id"),
        ({"trace_id": "tr-1", "extra": 1}, "extra"),
        ({}, "trace_id: Field required"),
    ],
)
def test_bad_input_is_a_tool_error(box: Toolbox, tool_input: Any, fragment: str) -> None:
    assert fragment in err(box, "get_trace", tool_input)


def test_wrong_types_are_refused(box: Toolbox) -> None:
    assert "limit" in err(box, "list_traces", {"limit": "5"})
    assert "limit" in err(box, "list_traces", {"limit": True})
    assert "min_feedback" in err(box, "list_traces", {"min_feedback": 1.5})
    assert "outcome" in err(box, "list_traces", {"outcome": "meh"})


def test_unknown_tool_and_submit(box: Toolbox) -> None:
    assert "unknown tool 'rm_rf'" in err(box, "rm_rf", {})
    assert "handled by the engine" in err(box, "submit_diagnosis", {"clusters": []})


def test_results_are_truncated_with_a_marker(home: Path) -> None:
    box = Toolbox(
        home=home,
        traces=FakeTraces([]),
        benchmark=BENCHMARK,
        student=FakeStudent(),
        judge=FakeJudge(),
        self_run=lambda q: SelfRun(output="y" * 50_000),
        limits=ToolLimits(max_result_chars=1_000),
    )
    outcome = box.execute("run_self_on_task", {"task_id": "t1"})
    match = re.search(r"\n\.\.\.\[truncated from (\d+) chars\]$", outcome.content)
    assert match is not None and int(match.group(1)) > 50_000
    assert len(outcome.content) == 1_000 + len(match.group(0))
    # the engine's record keeps the whole run
    assert outcome.self_run is not None and len(outcome.self_run.output) == 50_000


def test_default_truncation_is_20000(home: Path) -> None:
    (home / "config.toml").write_text("# " + "z" * 30_000 + "\n", encoding="utf-8")
    box = Toolbox(
        home=home,
        traces=FakeTraces([]),
        benchmark=[],
        student=FakeStudent(),
        judge=FakeJudge(),
        self_run=lambda q: SelfRun(),
    )
    content = box.execute("get_current_config", {}).content
    assert content.endswith("\n...[truncated from 30003 chars]")
    assert len(content) == 20_000 + len("\n...[truncated from 30003 chars]")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from([t["name"] for t in TOOL_DEFINITIONS] + ["nope", ""]),
    tool_input=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=10,
    ),
)
def test_execute_never_raises(home: Path, name: str, tool_input: Any) -> None:
    box = Toolbox(
        home=home,
        traces=FakeTraces(_traces()[:3]),
        benchmark=BENCHMARK,
        student=FakeStudent(),
        judge=FakeJudge(),
        self_run=lambda q: SelfRun(output="4"),
    )
    outcome = box.execute(name, tool_input)
    assert isinstance(outcome.content, str)
