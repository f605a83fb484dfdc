"""Judges: how well a student output answers a benchmark task, as a score in [0, 1]."""

from __future__ import annotations

import threading
import unicodedata
from typing import Any

from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.domain.scrub import scrub
from distill_es.ports import BenchmarkTask, JudgeVerdict


def normalise(text: str) -> str:
    """Casefolded, punctuation removed (Unicode category P*), whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    no_punct = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return " ".join(no_punct.split())


class MatchJudge:
    """1.0 for a normalised exact match or when the reference appears in the output as whole words
    ("4" is in "the answer is 4", not in "14"); else 0.0."""

    def score(self, task: BenchmarkTask, output: str) -> JudgeVerdict:
        reference, answer = normalise(task.reference_answer), normalise(output)
        if not reference:
            return JudgeVerdict(
                score=0.0, reasoning="the task has an empty reference answer; nothing to match"
            )
        if answer == reference:
            return JudgeVerdict(score=1.0, reasoning="exact match after normalisation")
        if f" {reference} " in f" {answer} ":
            return JudgeVerdict(score=1.0, reasoning="the reference answer appears in the output")
        return JudgeVerdict(
            score=0.0, reasoning="the output neither equals nor contains the reference answer"
        )


VERDICT_TOOL: dict[str, Any] = {
    "name": "submit_verdict",
    "description": "Submit the score for the candidate answer.",
    "input_schema": {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "1 = fully correct"},
            "reasoning": {"type": "string", "description": "One or two sentences."},
        },
        "required": ["score", "reasoning"],
    },
}

JUDGE_SYSTEM = (
    "You grade answers from a small local assistant against a reference answer. Score 1 when the "
    "candidate gives the same answer as the reference (wording may differ), 0 when it is wrong or "
    "missing, and a value in between only for partly correct answers. Call submit_verdict once."
)


class TeacherJudge:
    """An LLM judge: one forced `submit_verdict` tool call per task.

    `score_with_message` returns the raw Message too (for cost accounting, thread-safe);
    `last_message` holds the latest one for single-threaded callers. Inputs are scrubbed of secrets
    before they leave the machine unless `scrub_inputs=False`.
    """

    def __init__(self, teacher: Any, model: str, max_tokens: int = 1024, scrub_inputs: bool = True) -> None:
        self.teacher, self.model, self.max_tokens, self.scrub_inputs = (
            teacher,
            model,
            max_tokens,
            scrub_inputs,
        )
        self.last_message: Any = None
        self._lock = threading.Lock()

    def request(self, task: BenchmarkTask, output: str) -> dict[str, Any]:
        clean = scrub if self.scrub_inputs else (lambda s: s)
        prompt = (
            f"<question>\n{clean(task.query)}\n</question>\n"
            f"<reference_answer>\n{clean(task.reference_answer)}\n</reference_answer>\n"
            f"<candidate_answer>\n{clean(output)}\n</candidate_answer>"
        )
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": JUDGE_SYSTEM,
            "messages": [{"role": "user", "content": prompt}],
            "tools": [VERDICT_TOOL],
            "tool_choice": {"type": "tool", "name": "submit_verdict"},
        }

    def score_with_message(self, task: BenchmarkTask, output: str) -> tuple[JudgeVerdict, Any]:
        message = self.teacher.messages.create(**self.request(task, output))
        with self._lock:
            self.last_message = message
        return parse_verdict(message), message

    def score(self, task: BenchmarkTask, output: str) -> JudgeVerdict:
        return self.score_with_message(task, output)[0]


def parse_verdict(message: Any) -> JudgeVerdict:
    for block in getattr(message, "content", None) or []:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == "submit_verdict":
            data = block.input if isinstance(block.input, dict) else {}
            score = data.get("score")
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise InvalidTeacherOutput(f"submit_verdict: score must be a number in [0, 1], got {score!r}")
            # Models occasionally overshoot by rounding; anything else out of range is refused.
            if not -0.01 <= score <= 1.01:
                raise InvalidTeacherOutput(f"submit_verdict: score {score} is outside [0, 1]")
            reasoning = data.get("reasoning")
            return JudgeVerdict(
                score=min(max(float(score), 0.0), 1.0),
                reasoning=reasoning if isinstance(reasoning, str) else "",
            )
    raise InvalidTeacherOutput("the judge did not call submit_verdict")
