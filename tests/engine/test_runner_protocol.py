"""Loops, the daemon and workers need only the `SessionRunner` port: the Engine fits it, and so does
the bare runner a worker opens."""

from __future__ import annotations

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
