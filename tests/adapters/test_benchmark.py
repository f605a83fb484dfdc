from __future__ import annotations

import json

import pytest

from distill_es.adapters.benchmark import load_benchmark
from distill_es.domain.errors import WorkspaceError


def _write(home, *lines):
    (home / "benchmark.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_loads_tasks_in_file_order(tmp_path):
    _write(
        tmp_path,
        json.dumps({"task_id": "a", "query": "q1", "reference_answer": "r1"}),
        "",
        json.dumps(
            {
                "task_id": "b",
                "query": "q2",
                "reference_answer": "r2",
                "category": "math",
                "query_class": "math",
            }
        ),
    )
    tasks = load_benchmark(tmp_path)
    assert [t.task_id for t in tasks] == ["a", "b"]
    assert tasks[1].category == "math" and tasks[1].query_class == "math"


def test_no_file_means_no_tasks(tmp_path):
    assert load_benchmark(tmp_path) == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{oops", r"benchmark\.jsonl:2: not valid JSON"),
        ("[1, 2]", r"benchmark\.jsonl:2: expected a JSON object"),
        (json.dumps({"task_id": "b", "query": "q"}), r"benchmark\.jsonl:2: reference_answer"),
        (json.dumps({"task_id": "b", "query": "q", "reference_answer": "r", "note": 1}), r":2: note"),
        (
            json.dumps({"task_id": "a", "query": "q", "reference_answer": "r"}),
            r":2: duplicate task_id 'a' \(first on line 1\)",
        ),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, bad, message):
    _write(tmp_path, json.dumps({"task_id": "a", "query": "q", "reference_answer": "r"}), bad)
    with pytest.raises(WorkspaceError, match=message):
        load_benchmark(tmp_path)


def test_a_non_utf8_line_names_file_and_line(tmp_path):
    good = json.dumps({"task_id": "a", "query": "q", "reference_answer": "r"}).encode()
    (tmp_path / "benchmark.jsonl").write_bytes(good + b"\n" + b'{"task_id": "\xff"}\n')
    with pytest.raises(WorkspaceError, match=r"benchmark\.jsonl:2: not valid UTF-8"):
        load_benchmark(tmp_path)
