"""`benchmark run` and `benchmark compare`, black-box through the CLI and the API, with the real
scripted student server: per-group scores, the tree-sha score cache (reused and fed), the --min-score
gate's exit code, git refs scored without touching the workspace, and verify over stored runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner, Result

from distill_es.api import Engine
from distill_es.cli.main import app
from distill_es.domain.benchmark_run.aggregate import BenchmarkRun
from distill_es.domain.errors import GuardRejected, IllegalTransition
from distill_es.store.verify import verify_chain
from distill_es.testing.servers import ScriptedStudentServer
from distill_es.workspace.scaffold import create_workspace

BENCHMARK = [
    {"task_id": "m1", "query": "2+2", "reference_answer": "4", "category": "math"},
    {"task_id": "m2", "query": "3+3", "reference_answer": "6", "category": "math"},
    {"task_id": "g1", "query": "capital of France", "reference_answer": "Paris", "category": "geo"},
    {"task_id": "g2", "query": "capital of Italy", "reference_answer": "Rome", "category": "geo"},
    {"task_id": "x1", "query": "say hi", "reference_answer": "hi"},
]
RIGHT = {"2+2": "4", "3+3": "6", "capital of France": "Paris", "capital of Italy": "Rome", "say hi": "hi"}
MARK = "KNOWS-GEO"  # the system prompt line that makes the student answer geography right


def answer(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
    query = str(messages[-1].get("content"))
    if query.startswith("capital") and MARK not in system:
        return "London"
    return RIGHT.get(query, "?")


@pytest.fixture
def server() -> Iterator[ScriptedStudentServer]:
    with ScriptedStudentServer(answer) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path, server: ScriptedStudentServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DISTILL_ES_HOME", "DISTILL_ES_STORE", "DISTILL_ES_STUDENT_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = f'[student]\nbase_url = "{server.base_url}"\nmax_retries = 0\n'
    return create_workspace(tmp_path / "ws", benchmark=BENCHMARK, settings_toml=settings)


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def run_json(home: Path, *args: Any, code: int = 0) -> dict[str, Any]:
    result = cli("--home", home, "benchmark", *args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def git(home: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=home, check=True, capture_output=True, text=True).stdout.strip()


def prompt(home: Path) -> Path:
    return home / "agents" / "assistant" / "system_prompt.md"


def test_a_run_scores_per_category_then_reuses_the_score_cache(
    home: Path, server: ScriptedStudentServer
) -> None:
    first = run_json(home, "run")
    assert first["status"] == "finished" and first["grouping"] == "categories"
    assert {g["group"]: g["score"] for g in first["groups"]} == {
        "math": 1.0,
        "geo": 0.0,
        "uncategorized": 1.0,
    }
    assert first["overall_score"] == pytest.approx(0.6)
    assert (first["scored"], first["reused"], server.completed) == (5, 0, 5)
    assert first["tree_sha"] == git(home, "rev-parse", "HEAD^{tree}")

    second = run_json(home, "run")
    assert (second["scored"], second["reused"], server.completed) == (0, 5, 5)  # no student call
    assert second["reused_from"] == [f"benchmark_run:{first['id']}"]
    assert second["overall_score"] == first["overall_score"]


def test_min_score_is_a_ci_gate(home: Path) -> None:
    below = run_json(home, "run", "--min-score", "0.9", code=1)
    assert below["passed"] is False and below["min_score"] == 0.9
    assert run_json(home, "run", "--min-score", "0.6")["passed"] is True  # equal passes
    result = cli("--home", home, "benchmark", "run", "--min-score", "0.9")
    assert result.exit_code == 1
    assert "BELOW --min-score 0.9" in result.stdout and "geo" in result.stdout
    assert cli("--home", home, "benchmark", "run", "--min-score", "2").exit_code == 2  # usage


def test_uncommitted_changes_are_scored_as_the_working_tree(home: Path) -> None:
    before = run_json(home, "run")
    prompt(home).write_text(prompt(home).read_text() + f"\n{MARK}\n")
    after = run_json(home, "run")
    assert after["tree_sha"] != before["tree_sha"] and after["scored"] == 5
    assert {g["group"]: g["score"] for g in after["groups"]}["geo"] == 1.0
    git(home, "commit", "-qam", "knows geography")  # the same tree, now committed: all cached
    again = run_json(home, "run", "--ref", "HEAD")
    assert again["tree_sha"] == after["tree_sha"] and again["reused"] == 5


def test_compare_scores_two_refs_without_touching_the_workspace(
    home: Path, server: ScriptedStudentServer
) -> None:
    baseline = git(home, "rev-parse", "HEAD")
    git(home, "checkout", "-qb", "better")
    prompt(home).write_text(prompt(home).read_text() + f"\n{MARK}\n")
    git(home, "commit", "-qam", "knows geography")
    git(home, "checkout", "-q", baseline)  # the better branch is not checked out
    untouched = prompt(home).read_text()

    comparison = run_json(home, "compare", baseline, "better")
    rows = {r["group"]: (r["before"], r["after"], r["delta"]) for r in comparison["groups"]}
    assert rows == {"math": (1.0, 1.0, 0.0), "geo": (0.0, 1.0, 1.0), "uncategorized": (1.0, 1.0, 0.0)}
    assert comparison["overall_delta"] == pytest.approx(0.4)
    assert comparison["after"]["ref"] == "better" and comparison["after"]["scored"] == 5
    assert prompt(home).read_text() == untouched and git(home, "status", "--porcelain") == ""

    text = cli("--home", home, "benchmark", "compare", baseline, "better")
    assert text.exit_code == 0, text.output
    assert "geo" in text.stdout and "+1.0000" in text.stdout
    calls = server.completed
    assert run_json(home, "compare", "better", "WORKTREE")["before"]["reused"] == 5
    assert server.completed == calls  # both trees were scored already


def test_an_unknown_ref_is_not_found(home: Path) -> None:
    result = cli("--home", home, "benchmark", "run", "--ref", "no-such-branch")
    assert result.exit_code == 3
    assert "no-such-branch" in result.stderr


def test_the_api_runs_benchmarks_and_verify_passes_over_them(home: Path) -> None:
    engine = Engine.open(home)
    try:
        view = engine.benchmark(min_score=0.5)
        assert view.passed is True and [g.group for g in view.groups] == ["math", "geo", "uncategorized"]
        assert engine.get_benchmark_run(view.id) == view
        assert [r.id for r in engine.benchmark_runs()] == [view.id]
        audit = engine.verify_benchmark_run(view.id)
        assert audit.ok and audit.events == 3  # started, scored, finished
        count, damage, _ = verify_chain(engine.store, UUID(view.id))
        assert count == 3 and not damage
        assert all(report.ok for report in engine.verify())
    finally:
        engine.close()


def test_a_demo_run_reuses_the_sessions_scores(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert cli("demo", "--home", demo).exit_code == 0
    view = run_json(demo, "run")
    assert view["grouping"] == "clusters" and view["grouping_source"]
    assert view["scored"] == 0 and view["reused"] == view["task_count"]
    assert view["reused_from"][0].startswith("session:")
    assert cli("--home", demo, "verify").exit_code == 0


def test_the_lifecycle_refuses_out_of_turn_commands() -> None:
    run = BenchmarkRun.begin(
        run_id=uuid4(), workspace="/ws", ref=None, tree_sha="a" * 40, student_model="", benchmark_version="v",
        task_ids=["t1", "t2"], grouping="categories", grouping_source=None, groups={"c": ["t1", "t2"]},
        min_score=None,
    )  # fmt: skip
    with pytest.raises(GuardRejected):
        run.finish()  # nothing scored yet
    run.record_scores(source="scored", scores=[{"task_id": "t1", "score": 1.0}])
    with pytest.raises(GuardRejected):
        run.record_scores(source="scored", scores=[{"task_id": "t1", "score": 0.0}])  # scored already
    run.record_scores(source="scored", scores=[{"task_id": "t2", "score": 0.0}])
    run.finish()
    assert run.view().overall_score == 0.5 and run.view().passed is None
    with pytest.raises(IllegalTransition):
        run.fail(error="late")
