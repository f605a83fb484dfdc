"""A small, deterministic world for the offline demo and the tests.

- A student agent whose answers depend only on its workspace, exactly as a real one's would: the
  routed model, the system prompt and the temperature decide whether it gets a task right.
- ~30 traces and an 8-task personal benchmark with three skill clusters.
- A scripted teacher that investigates with the real diagnose tools, submits three clusters, and
  plans three edits: one that helps (applied), one that hurts (rejected by the gate and reverted),
  and a prompt patch that waits for a reviewer.

The demo student is labelled as such wherever it speaks: it is a stand-in, not a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill_es.config.settings import StudentSettings
from distill_es.demo.servers.replies import text_reply, tool_uses_reply
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS, SUBMIT_PLAN
from distill_es.ports import BenchmarkTask, ResultObserver, StudentResult, run_in_turn

AGENT = "assistant"
MODEL = "qwen3.5:9b"
MATH_MODEL = "qwen2.5-math:7b"
DEMO_STUDENT_LABEL = "demo student (deterministic stand-in, not a model)"

CONFIG_TOML = f"""\
# The demo student's configuration. distill_es sessions edit this file, one git commit per edit.

[agent]
default = "{AGENT}"

[agent.{AGENT}]
class = "simple"
tools = ["calculator"]
max_turns = 3

[intelligence]
default_model = "{MODEL}"

[routing.policy_map]
chat = "{MODEL}"

[models."{MODEL}"]
temperature = 0.7
max_tokens = 512
"""

SYSTEM_PROMPT = """\
You are a helpful assistant running on a small local model.
Answer the user's question directly.
Keep answers short.
"""

BENCHMARK: list[dict[str, Any]] = [
    {"task_id": "m1", "query": "What is 17 * 3?", "reference_answer": "51", "category": "math",
     "query_class": "arithmetic"},
    {"task_id": "m2", "query": "What is 144 / 12?", "reference_answer": "12", "category": "math",
     "query_class": "arithmetic"},
    {"task_id": "m3", "query": "What is 23 + 58?", "reference_answer": "81", "category": "math",
     "query_class": "arithmetic"},
    {"task_id": "u1", "query": "Convert 5 km to meters.", "reference_answer": "5000", "category": "units"},
    {"task_id": "u2", "query": "How many minutes are in 3 hours?", "reference_answer": "180",
     "category": "units"},
    {"task_id": "g1", "query": "What is the capital of Australia?", "reference_answer": "Canberra",
     "category": "geography"},
    {"task_id": "g2", "query": "What is the capital of Canada?", "reference_answer": "Ottawa",
     "category": "geography"},
    {"task_id": "g3", "query": "What is the capital of Turkey?", "reference_answer": "Ankara",
     "category": "geography"},
]  # fmt: skip

_REFERENCE = {t["query"]: t["reference_answer"] for t in BENCHMARK}
_WRONG = {
    "What is 17 * 3?": "41",
    "What is 144 / 12?": "14",
    "What is 23 + 58?": "71",
    "Convert 5 km to meters.": "500 meters, roughly",
    "How many minutes are in 3 hours?": "About 200.",
    "What is the capital of Australia?": "Sydney",
    "What is the capital of Canada?": "Toronto",
    "What is the capital of Turkey?": "Istanbul",
}


def traces(count: int = 30) -> list[dict[str, Any]]:
    """Recent traces: arithmetic and unit questions fail, geography mostly works."""
    shapes = [
        ("What is {a} * {b}?", "arithmetic", "failure", 0.1, "{wrong}"),
        ("Convert {a} km to meters.", None, "failure", 0.2, "{a}00 meters, roughly"),
        ("What is the capital of Canada?", None, "success", 0.9, "Ottawa"),
        ("What is {a} + {b}?", "arithmetic", "failure", 0.0, "{wrong}"),
        ("What is the capital of Australia?", None, "failure", 0.3, "Sydney"),
    ]
    rows = []
    for i in range(count):
        query_t, query_class, outcome, feedback, result_t = shapes[i % len(shapes)]
        a, b = 11 + i, 3 + i % 7
        row = {
            "trace_id": f"t{i + 1:03d}",
            "query": query_t.format(a=a, b=b),
            "result": result_t.format(a=a, wrong=a * b + 10),
            "agent": AGENT,
            "model": MODEL,
            "outcome": outcome,
            "feedback": feedback,
            "started_at": 1_767_225_600 + i * 3600,  # 2026-01-01 onwards, hourly
            "steps": [],
            "metadata": {},
        }
        if query_class:
            row["query_class"] = query_class
        if i == 7:  # secrets do turn up in traces; the teacher must never see them
            row["query"] += " (my key is sk-ant-api03-DEMOKEYDEMOKEYDEMOKEY and mail me at ann@example.com)"
        rows.append(row)
    return rows


def toy_answer(request: dict[str, Any]) -> str:
    """The demo student's answer to an OpenAI-style chat request, decided by its configuration."""
    messages = request.get("messages", [])
    system = " ".join(m.get("content", "") for m in messages if m.get("role") == "system").lower()
    query = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    temperature = float(request.get("temperature", 0.7))
    model = str(request.get("model", ""))
    reference = _REFERENCE.get(query)
    if reference is None:
        return "I am not sure."
    if re.match(r"What is \d+ [-+*/] \d+\?", query):
        good = "math" in model or "show your arithmetic" in system
    elif query.startswith(("Convert", "How many")):
        good = "convert units" in system and temperature <= 1.0
    elif "Australia" in query:
        good = False  # a stubborn misconception no configuration here fixes
    else:
        good = temperature <= 1.0
    return reference if good else _WRONG[query]


class DemoStudent:
    """A `StudentRunner` that builds the real chat request from the workspace and answers it with
    `toy_answer`, without any network. Its results are labelled as the demo student's."""

    def __init__(self, home: Path, settings: StudentSettings | None = None) -> None:
        self.home = Path(home)
        self.settings = settings or StudentSettings()

    def run(self, task: BenchmarkTask) -> StudentResult:
        from distill_es.adapters.student import build_chat_request  # the openai SDK: when a task runs

        request = build_chat_request(self.home, task, self.settings)
        return StudentResult(
            task_id=task.task_id,
            output=toy_answer(request),
            model=f"{request['model']} [{DEMO_STUDENT_LABEL}]",
        )

    def run_many(
        self, tasks: Sequence[BenchmarkTask], on_result: ResultObserver | None = None
    ) -> list[StudentResult]:
        return run_in_turn(self.run, tasks, on_result)


# --- the scripted teacher ---------------------------------------------------------------------

CLUSTERS = [
    {
        "id": "arithmetic",
        "description": "Multi-digit arithmetic is answered from memory and is usually wrong.",
        "sample_trace_ids": ["t001", "t004", "t006"],
        "task_ids": ["m1", "m2", "m3"],
        "student_failure_rate": 1.0,
        "teacher_success_rate": 1.0,
        "skill_gap": "The small model cannot do exact arithmetic; a math-tuned model routed for "
        "arithmetic queries can.",
    },
    {
        "id": "units",
        "description": "Unit conversions are guessed instead of converted.",
        "sample_trace_ids": ["t002", "t007"],
        "task_ids": ["u1", "u2"],
        "student_failure_rate": 1.0,
        "teacher_success_rate": 1.0,
        "skill_gap": "The student does not convert units explicitly before answering.",
    },
    {
        "id": "geography",
        "description": "Capital cities: mostly right, one stubborn misconception (Sydney).",
        "sample_trace_ids": ["t003", "t005"],
        "task_ids": ["g1", "g2", "g3"],
        "student_failure_rate": 0.33,
        "teacher_success_rate": 1.0,
        "skill_gap": "Recall is fine at low temperature; Australia's capital is a misconception.",
    },
]

PROMPT_PATCH = """\
--- a/agents/assistant/system_prompt.md
+++ b/agents/assistant/system_prompt.md
@@ -1,3 +1,4 @@
 You are a helpful assistant running on a small local model.
 Answer the user's question directly.
+When a question involves units, convert units explicitly and give the number only.
 Keep answers short.
"""

EDITS = [
    {
        "id": "edit_001",
        "pillar": "intelligence",
        "op": "set_model_for_query_class",
        "target": "routing.policy_map.arithmetic",
        "payload": {"query_class": "arithmetic", "model": MATH_MODEL},
        "rationale": "Route arithmetic queries to a math-tuned model that computes exactly.",
        "expected_improvement": "arithmetic",
        "risk_tier": "auto",
        "references": ["t001", "t004"],
    },
    {
        "id": "edit_002",
        "pillar": "intelligence",
        "op": "set_model_param",
        "target": f"models.{MODEL}.temperature",
        "payload": {"model": MODEL, "param": "temperature", "value": 1.4},
        "rationale": "A warmer sampler may help the student explore conversion steps.",
        "expected_improvement": "units",
        "risk_tier": "auto",
        "references": ["t002"],
    },
    {
        "id": "edit_003",
        "pillar": "agent",
        "op": "patch_system_prompt",
        "target": f"agents.{AGENT}.system_prompt",
        "payload": {"agent": AGENT, "diff": PROMPT_PATCH},
        "rationale": "Tell the student to convert units explicitly before answering.",
        "expected_improvement": "units",
        "risk_tier": "review",
        "references": ["t002", "t007"],
    },
]

DIAGNOSIS = """\
# Diagnosis

The student fails almost every arithmetic question (it answers from memory) and guesses unit
conversions. Geography is mostly fine except for a misconception about Australia.

1. **arithmetic** — route arithmetic to a math-tuned model.
2. **units** — instruct explicit unit conversion.
3. **geography** — watch for regressions; keep the temperature low.
"""


def _assistant_turns(request: dict[str, Any]) -> int:
    return sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")


def teacher_reply(request: dict[str, Any]) -> dict[str, Any]:
    """The scripted teacher's reply to a Messages API request, as a compact Message (content blocks
    and stop reason; `ScriptedAnthropicServer` and `ScriptedTeacher` fill ids, model and usage)."""
    spec = _teacher_spec(request)
    if "tool_uses" not in spec:
        return text_reply(spec["text"])
    return tool_uses_reply(spec["tool_uses"], text=spec.get("text"))


def _teacher_spec(request: dict[str, Any]) -> dict[str, Any]:
    tool_choice = request.get("tool_choice") or {}
    if tool_choice.get("name") == SUBMIT_PLAN:
        return {"tool_uses": [(SUBMIT_PLAN, {"edits": EDITS})], "text": None}
    if not request.get("tools"):  # run_self_on_task: answer the question itself
        content = request["messages"][-1]["content"]
        query = content if isinstance(content, str) else content[-1].get("text", "")
        return {"text": _REFERENCE.get(query, "I do not know.")}
    turn = _assistant_turns(request)
    if turn == 0:
        return {
            "text": "Let me look at recent failures and the benchmark.",
            "tool_uses": [
                ("list_traces", {"limit": 10, "outcome": "failure"}),
                ("list_personal_benchmark", {}),
                ("get_current_config", {}),
            ],
        }
    if turn == 1:
        return {
            "text": "Now I will measure the student and myself on representative tasks.",
            "tool_uses": [
                ("run_student_on_task", {"task_id": "m1"}),
                ("run_self_on_task", {"task_id": "m1"}),
                ("run_student_on_task", {"task_id": "u1"}),
                ("run_student_on_task", {"task_id": "g2"}),
            ],
        }
    return {
        "text": "I have enough evidence.",
        "tool_uses": [(SUBMIT_DIAGNOSIS, {"diagnosis_markdown": DIAGNOSIS, "clusters": CLUSTERS})],
    }


def settings_toml(student_url: str = "http://127.0.0.1:11434/v1") -> str:
    return f"""\
# distill_es demo settings
[teacher]
model = "claude-opus-4-6"
max_tokens = 4096

[student]
base_url = "{student_url}"

[session]
autonomy_mode = "tiered"
min_traces = 20
max_cost_usd = 5.0
max_turns = 8

[gate]
max_regression = 0.01
min_improvement = 0.0
subsample_size = 8
"""


def create_demo_workspace(
    home: Path, student_url: str = "http://127.0.0.1:11434/v1", *, settings: str | None = None
) -> Path:
    """The demo's agent, traces and benchmark in `home`; `settings` replaces the demo's
    distill_es.toml text (default: `settings_toml(student_url)`)."""
    from distill_es.workspace.scaffold import create_workspace

    return create_workspace(
        home,
        agent=AGENT,
        model=MODEL,
        config_toml=CONFIG_TOML,
        system_prompt=SYSTEM_PROMPT,
        traces=traces(),
        benchmark=BENCHMARK,
        tool_descriptions_toml='[calculator]\ndescription = "Evaluates arithmetic expressions."\n',
        settings_toml=settings if settings is not None else settings_toml(student_url),
    )


def benchmark_json() -> str:
    return json.dumps(BENCHMARK)
