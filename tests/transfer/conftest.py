"""A source workspace with real sessions (one approved then rolled back, one awaiting review), and
fresh target stores: SQLite files and per-test PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import SessionStatus
from distill_es.store.app import EventStore
from distill_es.testing import ScriptedTeacher
from tests.pg import fresh_database


def open_engine(home: Path, store_url: str | None = None, own: bool | None = None) -> Engine:
    """The demo world's ports in process: scripted teacher, demo student."""
    return Engine.open(
        home,
        teacher=ScriptedTeacher(world.teacher_reply),
        student=world.DemoStudent(home),
        store_url=store_url,
        own=own,
    )


@dataclass
class Source:
    home: Path
    rolled_back: str  # approved edit_003, completed, then rolled back
    pending: str  # awaiting review (edit_003 pending)

    def engine(self) -> Engine:
        return open_engine(self.home)


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """Built once and only read afterwards: tests that change a workspace copy it first."""
    home = world.create_demo_workspace(tmp_path_factory.mktemp("source") / "ws")
    engine = open_engine(home)
    try:
        first = engine.run_session(OnDemandTrigger({"source": "transfer tests"}))
        assert (
            engine.approve(first.id, "edit_003", reviewer="ann", note="ok").status == SessionStatus.COMPLETED
        )
        assert engine.rollback(first.id, requested_by="ann").status == SessionStatus.ROLLED_BACK
        second = engine.run_session(OnDemandTrigger())
        assert second.status == SessionStatus.AWAITING_REVIEW
    finally:
        engine.close()
    return Source(home=home, rolled_back=first.id, pending=second.id)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Callable[[], EventStore]:
    """Fresh, empty SQLite stores (closed at the end of the test)."""
    opened: list[EventStore] = []

    def make() -> EventStore:
        store = EventStore(f"sqlite:///{tmp_path / f'target-{len(opened)}.sqlite'}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    yield from fresh_database("distill_es_t")
