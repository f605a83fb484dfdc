"""Run locks: several names held together, released together, the busy one named."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_es.domain.errors import SessionBusy
from distill_es.store.locks import exclusive

SESSION = ("session:s1", "session s1")
WORKSPACE = ("workspace:/w", "the workspace /w")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite'}"
    return request.getfixturevalue("postgres_url")


def refused(store_url: str, state: Path, busy: str, *locks: tuple[str, str]) -> None:
    """Taking `locks` fails, naming `busy`."""
    (name, what), *more = locks
    with pytest.raises(SessionBusy, match=busy), exclusive(store_url, state, name, what, *more):
        pass


def test_all_locks_are_held_together_and_the_busy_one_is_named(store_url: str, tmp_path: Path) -> None:
    with exclusive(store_url, tmp_path, *SESSION, WORKSPACE):
        refused(store_url, tmp_path, "the workspace /w", ("session:s2", "session s2"), WORKSPACE)
        refused(store_url, tmp_path, "session s1", SESSION)
    with exclusive(store_url, tmp_path, *SESSION, WORKSPACE):  # all released on exit
        pass


def test_a_refused_run_releases_what_it_had_taken(store_url: str, tmp_path: Path) -> None:
    with exclusive(store_url, tmp_path, *WORKSPACE):
        refused(store_url, tmp_path, "the workspace /w", SESSION, WORKSPACE)
        with exclusive(store_url, tmp_path, *SESSION):  # the session lock was given back
            pass
