"""The personal benchmark: `<home>/benchmark.jsonl`, one task a line (CONTRACT "Workspace")."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from distill_es.adapters.traces import decode_line
from distill_es.domain.errors import WorkspaceFileInvalid
from distill_es.domain.layout import BENCHMARK_FILE
from distill_es.domain.payloads import describe_validation
from distill_es.ports import BenchmarkTask


def load_benchmark(home: str | Path) -> list[BenchmarkTask]:
    """Tasks in file order. No file: no tasks (the caller decides whether that is a cold start).

    A line that is not a task object, or repeats a task_id, is a WorkspaceError naming file and line.
    """
    path = Path(home) / BENCHMARK_FILE
    if not path.exists():
        return []
    tasks: list[BenchmarkTask] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        line = decode_line(raw, path, lineno)
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkspaceFileInvalid(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise WorkspaceFileInvalid(f"{path}:{lineno}: JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise WorkspaceFileInvalid(f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}")
        try:
            task = BenchmarkTask.model_validate(data)
        except ValidationError as exc:
            raise WorkspaceFileInvalid(f"{path}:{lineno}: {describe_validation(exc)}") from None
        if task.task_id in seen:
            raise WorkspaceFileInvalid(
                f"{path}:{lineno}: duplicate task_id {task.task_id!r} (first on line {seen[task.task_id]})"
            )
        seen[task.task_id] = lineno
        tasks.append(task)
    return tasks
