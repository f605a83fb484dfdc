"""`training list` / `training show` through typer, on a real store and workspace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from distill_es.cli.training import build_training_app, training_app
from distill_es.domain.training.errors import TrainingRunNotFound

from .conftest import GOOD_RESULT, LORA_EDIT_ID, World


@pytest.fixture
def app(world: World) -> typer.Typer:
    @contextmanager
    def opener(ctx: typer.Context, home: Path | None) -> Iterator[Any]:
        yield SimpleNamespace(store=world.store, home=world.home)

    return build_training_app(opener)


def make_runs(world: World) -> tuple[str, str]:
    session = world.session()
    good = world.service(world.trainer(GOOD_RESULT))
    run_id = good.request(session, session.edits[LORA_EDIT_ID].edit, baseline_score=0.5)
    good.drive(run_id)
    other = world.session()
    failing = world.service(world.trainer("sys.exit(7)", name="bad.py"))
    failed_id = failing.request(other, other.edits[LORA_EDIT_ID].edit)
    failing.drive(failed_id)
    return run_id, failed_id


def test_list_shows_each_run_and_filters_by_session(world: World, app: typer.Typer) -> None:
    run_id, failed_id = make_runs(world)
    runner = CliRunner()
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert run_id[:8] in result.output and failed_id[:8] in result.output
    assert "completed" in result.output and "nonzero_exit" in result.output and "yes" in result.output
    data = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert {r["run_id"] for r in data} == {run_id, failed_id}
    session = next(r["session_id"] for r in data if r["run_id"] == failed_id)
    only = json.loads(runner.invoke(app, ["list", "--json", "--session", session[:10]]).output)
    assert [r["run_id"] for r in only] == [failed_id]


def test_show_prints_the_lineage(world: World, app: typer.Typer) -> None:
    run_id, failed_id = make_runs(world)
    runner = CliRunner()
    result = runner.invoke(app, ["show", run_id[:8]])
    assert result.exit_code == 0, result.output
    for words in ("spec", "lora_rank=16", "dataset", "attempts", "#1", "checkpoint", "eval pass",
                  "deployable", "TrainingPromotionDecided"):  # fmt: skip
        assert words in result.output
    failed = runner.invoke(app, ["show", failed_id])
    assert "failed (nonzero_exit): the trainer exited with status 7" in failed.output
    data = json.loads(runner.invoke(app, ["show", run_id, "--json"]).output)
    assert data["run"]["run_id"] == run_id and data["promotion"]["deployable"] is True
    missing = runner.invoke(app, ["show", "ffff"])
    assert missing.exit_code != 0 and isinstance(missing.exception, TrainingRunNotFound)


def test_default_opener_reads_the_workspace(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_ES_STORE", world.store.url)
    monkeypatch.setenv("DISTILL_ES_HOME", str(world.home))
    run_id, _ = make_runs(world)
    result = CliRunner().invoke(training_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert run_id in {r["run_id"] for r in json.loads(result.output)}


def test_default_opener_refuses_a_directory_that_is_not_a_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(training_app, ["list", "--home", str(tmp_path)])
    assert result.exit_code != 0 and "is not a distill_es workspace" in str(result.exception)
    assert not (tmp_path / ".distill_es").exists()
