"""The training dataset of a run: preference and instruction rows, JSONL, scrubbed, fingerprinted.

Sources, in this order (each in a fixed order, so the same inputs give the same bytes):
1. `self_run` — the teacher's `run_self_on_task` answers recorded in the session. When the session
   also ran the student on that task and it did not score 1.0, the row is a preference pair
   (chosen: the teacher, rejected: the student); otherwise an instruction row.
2. `exemplar` — the few-shot exemplars the teacher wrote into the plan (`edit_few_shot_exemplars`).
3. `trace` — the student's traces (read-only): a failed trace whose query the teacher answered above
   becomes a preference pair against the teacher's answer; a successful trace is an instruction row
   (it keeps what the student already does well). Other failed traces have no better answer: skipped.

Every string is scrubbed before it is written. Rows are deduplicated. Benchmark queries that end up
in the dataset are reported (`benchmark_task_ids`): training on them inflates a benchmark eval.

Row shape: {"id", "source", "kind": "preference"|"instruction", "prompt", "chosen", "rejected"|null}.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_es.adapters.benchmark import load_benchmark
from distill_es.adapters.traces import open_trace_source
from distill_es.domain import teacher_reply
from distill_es.domain.layout import STATE_DIR, TRAINING_DIR
from distill_es.domain.scrub import scrub
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import EditOp
from distill_es.ports import BenchmarkTask, TraceRecord, TraceSource

DATASET_FILE = "dataset.jsonl"
DEFAULT_MAX_TRACES = 1000


def run_dir(home: Path, run_id: str) -> Path:
    """Where everything of one run lives: dataset, spec, trainer log, result file, output."""
    return Path(home) / STATE_DIR / TRAINING_DIR / str(run_id)


@dataclass(frozen=True)
class DatasetExport:
    path: Path
    fingerprint: str
    rows: int
    counts: dict[str, int] = field(default_factory=dict)
    benchmark_task_ids: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _text_of(response: dict[str, Any]) -> str:
    return teacher_reply.text_of(response).strip()


def _row(source: str, ref: str, prompt: str, chosen: str, rejected: str | None) -> dict[str, Any]:
    return {
        "id": f"{source}:{ref}",
        "source": source,
        "kind": "preference" if rejected is not None else "instruction",
        "prompt": scrub(prompt),
        "chosen": scrub(chosen),
        "rejected": scrub(rejected) if rejected is not None else None,
    }


def _student_attempts(session: Session) -> dict[str, tuple[str, float | None]]:
    """task_id → (student output, score) from the session's `run_student_on_task` results; last wins."""
    found: dict[str, tuple[str, float | None]] = {}
    for turn in session.diagnose_turns:
        for use in turn.tool_uses():
            result = turn.results.get(use.get("id", ""))
            if use.get("name") != "run_student_on_task" or result is None or result.is_error:
                continue
            try:
                body = json.loads(result.content)
            except (TypeError, json.JSONDecodeError):
                continue
            output = body.get("output") if isinstance(body, dict) else None
            if isinstance(output, str) and output.strip() and isinstance(body.get("task_id"), str):
                score = body.get("score")
                found[body["task_id"]] = (output, float(score) if isinstance(score, int | float) else None)
    return found


def _self_run_rows(session: Session, tasks: dict[str, BenchmarkTask]) -> list[dict[str, Any]]:
    student = _student_attempts(session)
    rows = []
    for turn in session.diagnose_turns:
        for use in turn.tool_uses():
            use_id = use.get("id", "")
            result = turn.results.get(use_id)
            call = session.teacher_calls.get(f"self_run/{use_id}")
            if use.get("name") != "run_self_on_task" or result is None or result.is_error or call is None:
                continue
            task_id = (use.get("input") or {}).get("task_id")
            task = tasks.get(task_id) if isinstance(task_id, str) else None
            answer = _text_of(call.response)
            if task is None or not answer:
                continue
            rejected = None
            if task.task_id in student:
                output, score = student[task.task_id]
                if (score is None or score < 1.0) and _norm(output) != _norm(answer):
                    rejected = output
            rows.append(_row("self_run", task.task_id, task.query, answer, rejected))
    return rows


def _exemplar_rows(session: Session) -> list[dict[str, Any]]:
    rows = []
    for edit in session.plan.edits if session.plan else []:
        if edit.op != EditOp.EDIT_FEW_SHOT_EXEMPLARS:
            continue
        for i, ex in enumerate(edit.payload.get("exemplars") or []):
            user, assistant = ex.get("user"), ex.get("assistant")
            if isinstance(user, str) and isinstance(assistant, str) and user.strip() and assistant.strip():
                rows.append(_row("exemplar", f"{edit.id}#{i}", user, assistant, None))
    return rows


def _trace_rows(traces: Iterable[TraceRecord], teacher_answers: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for trace in sorted(traces, key=lambda t: t.trace_id):
        if not trace.query.strip() or not trace.result.strip():
            continue
        if trace.outcome == "failure":
            better = teacher_answers.get(_norm(scrub(trace.query)))
            if better is not None and _norm(better) != _norm(scrub(trace.result)):
                rows.append(_row("trace", trace.trace_id, trace.query, better, trace.result))
        elif trace.outcome == "success":
            rows.append(_row("trace", trace.trace_id, trace.query, trace.result, None))
    return rows


def build_rows(
    session: Session,
    traces: TraceSource,
    benchmark: list[BenchmarkTask],
    *,
    max_traces: int = DEFAULT_MAX_TRACES,
) -> list[dict[str, Any]]:
    """The dataset's rows, deduplicated, in a deterministic order."""
    tasks = {t.task_id: t for t in benchmark}
    teacher_rows = _self_run_rows(session, tasks) + _exemplar_rows(session)
    teacher_answers: dict[str, str] = {}
    for row in teacher_rows:
        teacher_answers.setdefault(_norm(row["prompt"]), row["chosen"])
    rows, seen = [], set()
    for row in teacher_rows + _trace_rows(traces.list(limit=max_traces), teacher_answers):
        key = (row["kind"], row["prompt"], row["chosen"], row["rejected"])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def serialize(rows: list[dict[str, Any]]) -> bytes:
    lines = [json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in rows]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write-then-rename: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def export_dataset(
    session: Session,
    home: Path,
    run_id: str,
    *,
    traces: TraceSource | None = None,
    max_traces: int = DEFAULT_MAX_TRACES,
) -> DatasetExport:
    """Build the run's dataset from `session` and the workspace's traces; write it under the state folder."""
    home = Path(home)
    source = traces if traces is not None else open_trace_source(home)
    benchmark = load_benchmark(home)
    rows = build_rows(session, source, benchmark, max_traces=max_traces)
    data = serialize(rows)
    path = run_dir(home, run_id) / DATASET_FILE
    write_atomic(path, data)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    prompts = {_norm(r["prompt"]) for r in rows}
    overlap = sorted(t.task_id for t in benchmark if _norm(scrub(t.query)) in prompts)
    return DatasetExport(
        path=path,
        fingerprint=hashlib.sha256(data).hexdigest(),
        rows=len(rows),
        counts=counts,
        benchmark_task_ids=overlap,
    )
