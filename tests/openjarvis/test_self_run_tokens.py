"""`run_self_on_task` tells the teacher how many tokens its own answer took (OpenJarvis's tool result
has `tokens_used`): the reply's usage, cache reads and writes included. Checked on the demo's recorded
teacher conversation, which the offline demo replays."""

from __future__ import annotations

import json

from distill_es.demo.run import CASSETTE
from distill_es.domain.teacher_reply import tokens_of


def test_tokens_of_adds_every_kind_of_token_and_skips_what_is_not_a_count() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 3,
             "cache_read_input_tokens": 2}  # fmt: skip
    assert tokens_of({"usage": usage}) == 20
    odd = {"input_tokens": True, "output_tokens": "7", "cache_read_input_tokens": None}
    assert tokens_of({"usage": odd}) == 0
    assert tokens_of({}) == 0 and tokens_of({"usage": []}) == 0 and tokens_of([]) == 0  # type: ignore[arg-type]


def test_the_demo_teacher_is_told_the_tokens_of_its_own_run() -> None:
    calls = [json.loads(line) for line in CASSETTE.read_text().splitlines()]
    self_runs = [c for c in calls if c["request"]["max_tokens"] == 2048]  # SELF_RUN_MAX_TOKENS
    assert len(self_runs) == 1
    spent = tokens_of(self_runs[0]["response"])
    results = [
        json.loads(block["content"])
        for call in calls
        for message in call["request"]["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result" and "cost_usd" in str(block.get("content"))
    ]
    assert results and all(r["tokens_used"] == spent > 0 for r in results)
