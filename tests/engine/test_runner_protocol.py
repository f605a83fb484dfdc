"""Loops, the daemon and workers need only the `SessionRunner` port: the Engine fits it, and so does
the bare runner a worker opens."""

from __future__ import annotations

from typing import ClassVar

from distill_es.app.session_runner import Runner
from distill_es.compose import worker_opener
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.ports import SessionRunner
from tests.engine.conftest import World


def test_the_engine_and_the_workers_runner_fit_the_port(scripted_world: World) -> None:
    engine = scripted_world.engine()
    assert isinstance(engine, SessionRunner)
    sid = engine.start(OnDemandTrigger())
    rested = engine.run(sid)  # the scripted teacher is the engine's: the worker's runner has the default one
    runner = worker_opener(scripted_world.home, engine.store.url)
    try:
        assert isinstance(runner, Runner) and isinstance(runner, SessionRunner)
        assert runner.home == engine.home and runner.state_dir == engine.state_dir
        assert runner.run(sid) == rested  # at rest: nothing to perform, the same view
        assert runner.cost_ledger(sid) == engine.cost_ledger(sid)
    finally:
        runner.close()


def test_the_plan_reads_prompts_through_the_workspace_port(scripted_world: World) -> None:
    """freeze_plan checks a prompt patch against the prompt the Workspace port reads (never the file
    around it): a workspace that says the agent has no prompt file gets the patch refused."""
    from distill_es.workspace.git_workspace import GitWorkspace

    class NoPrompts(GitWorkspace):
        asked: ClassVar[list[str]] = []

        def read_prompt(self, agent: str) -> str | None:
            self.asked.append(agent)
            return None

    workspace = NoPrompts(scripted_world.home)
    workspace.init()
    engine = scripted_world.engine(workspace=workspace)
    view = engine.run_session(OnDemandTrigger())
    assert NoPrompts.asked  # the demo plan patches a prompt: the port was asked for it
    frozen = [e for e in engine.store.domain_events(view.id) if type(e).__name__ == "PlanFrozen"]
    refused = {r["edit_id"]: r["reason"] for r in frozen[0].rejected}
    assert "does not exist" in refused["edit_003"]
