"""Dataset export: what goes in, scrubbed, deterministic, fingerprinted."""

from __future__ import annotations

import hashlib
import json

from distill_es.adapters.traces import EmptyTraceSource
from distill_es.app.training.dataset import export_dataset, run_dir

from .conftest import SECRET, STUDENT_ANSWER, TEACHER_ANSWER, World, lora_edit


def rows_of(path) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rows_come_from_teacher_answers_exemplars_and_traces(world: World) -> None:
    with (world.home / "traces.jsonl").open("a", encoding="utf-8") as fh:  # a failure the teacher answered
        fh.write(
            json.dumps({"trace_id": "t900", "query": "What is 17 * 3?", "result": "42", "outcome": "failure"})
        )
        fh.write("\n")
    export = export_dataset(world.session(), world.home, "run-1")
    rows = {row["id"]: row for row in rows_of(export.path)}
    assert rows["self_run:m1"] == {
        "id": "self_run:m1",
        "source": "self_run",
        "kind": "preference",
        "prompt": "What is 17 * 3?",
        "chosen": TEACHER_ANSWER,
        "rejected": STUDENT_ANSWER,
    }
    assert rows["exemplar:edit_fewshot#0"]["kind"] == "instruction"
    assert rows["exemplar:edit_fewshot#0"]["chosen"] == "42"
    assert rows["trace:t900"] == {
        "id": "trace:t900",
        "source": "trace",
        "kind": "preference",
        "prompt": "What is 17 * 3?",
        "chosen": TEACHER_ANSWER,
        "rejected": "42",
    }
    successes = [r for r in rows.values() if r["source"] == "trace" and r["kind"] == "instruction"]
    assert successes and all(r["rejected"] is None for r in successes)
    # Failed traces nobody answered better are not training data.
    assert "trace:t001" not in rows
    assert export.rows == len(rows)
    assert export.counts == {"self_run": 1, "exemplar": 2, "trace": len(rows) - 3}
    assert "m1" in export.benchmark_task_ids  # training on a benchmark query is reported
    assert export.path == run_dir(world.home, "run-1") / "dataset.jsonl"


def test_everything_written_is_scrubbed(world: World) -> None:
    text = export_dataset(world.session(), world.home, "run-1").path.read_text()
    assert SECRET not in text
    assert "[REDACTED:anthropic_key]" in text  # from the exemplar and from demo trace t008
    assert "[REDACTED:email]" in text and "@" not in text


def test_export_is_deterministic_and_fingerprinted(world: World) -> None:
    session = world.session()
    first = export_dataset(session, world.home, "run-a")
    again = export_dataset(world.store.load(session.id), world.home, "run-b")
    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.fingerprint == again.fingerprint == hashlib.sha256(first.path.read_bytes()).hexdigest()
    other = world.session(edits=[lora_edit()])  # no exemplars: different content, different fingerprint
    assert export_dataset(other, world.home, "run-c").fingerprint != first.fingerprint


def test_an_empty_session_exports_an_empty_file(world: World) -> None:
    session = world.session(edits=[lora_edit()], self_run=False)
    export = export_dataset(session, world.home, "run-1", traces=EmptyTraceSource())
    assert (export.rows, export.path.read_bytes(), export.benchmark_task_ids) == (0, b"", [])
