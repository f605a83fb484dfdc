"""No stored history can make loading fail: a session that cannot be folded is damaged, alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from distill_es.api import Engine
from distill_es.app.worker import work
from distill_es.compose import worker_opener
from distill_es.demo import world
from distill_es.domain.errors import DamagedSession
from distill_es.store.app import EventStore
from tests.cli.conftest import cli
from tests.pg import fresh_database
from tests.store.test_store import awaiting, diagnosing, start, teacher_call


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.sqlite'}"
    else:
        yield from fresh_database("distill_es_damaged")


def test_a_recorded_negative_cost_damages_its_session_not_every_command(
    tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The log of issue 13: a reply priced at -$15,000 was recorded before usage was validated."""
    home = world.create_demo_workspace(tmp_path / "ws")
    store = EventStore(store_url)
    bad = diagnosing(start(workspace=str(home)))
    teacher_call(bad, "diagnose/1", -15_000.0)
    good = awaiting(start(workspace=str(home)), ["e1"])
    store.save(bad)
    store.save(good)
    store.close()
    bad_id, good_id = str(bad.id), str(good.id)

    engine = Engine.open(home, store_url=store_url)
    with pytest.raises(DamagedSession, match=f"session {bad_id} is damaged"):
        engine.get(bad_id)
    views, damaged = engine.sessions_and_damage()
    assert [v.id for v in views] == [good_id]
    assert [d.session_id for d in damaged] == [bad_id]
    assert [r.ok for r in engine.verify(good_id)] == [True]
    engine.close()

    env = {"DISTILL_ES_STORE": store_url}
    for command in (["show", bad_id], ["resume", bad_id], ["approve", bad_id, "e1", "--by", "x"]):
        result = cli(*command, "--home", home, env=env)
        assert result.exit_code == 4, result.output
        assert len(result.output.strip().splitlines()) == 1 and "distill-es verify" in result.output
        assert "bug" not in result.output
    listed = cli("sessions", "--home", home, env=env)
    assert listed.exit_code == 0 and good_id[:8] in listed.output and bad_id in listed.output
    assert cli("show", good_id, "--home", home, env=env).exit_code == 0

    # A worker skips it, says why, and does not come back to it on the next poll.
    with caplog.at_level(logging.ERROR, logger="distill_es.worker"):
        report = work(store_url, tmp_path / "worker", open_runner=worker_opener, poll_seconds=0.01,
                      idle_polls_before_exit=3)  # fmt: skip
    assert report.damaged == [bad_id] and report.finished == []
    assert sum(f"session {bad_id} skipped" in r.getMessage() for r in caplog.records) == 1
