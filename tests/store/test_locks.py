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


def test_a_workers_claim_is_seen_taken_refuses_others_and_is_reused_by_its_own_thread(
    store_url: str, tmp_path: Path
) -> None:
    from distill_es.store.locks import Claims, lock_taken

    mine, theirs = Claims(store_url), Claims(store_url)
    try:
        with mine.claim(tmp_path, SESSION, WORKSPACE):
            taken = theirs.taken()
            assert lock_taken(taken, tmp_path, SESSION[0]) and lock_taken(taken, tmp_path, WORKSPACE[0])
            assert Claims.is_taken(taken, SESSION[0]) == (taken is not None)
            with exclusive(store_url, tmp_path, *SESSION, WORKSPACE):  # the claim's own thread: held
                pass
            with pytest.raises(SessionBusy, match="session s1"), theirs.claim(tmp_path, SESSION):
                pass
        taken = theirs.taken()
        assert not lock_taken(taken, tmp_path, SESSION[0]) and not lock_taken(taken, tmp_path, WORKSPACE[0])
        with theirs.claim(tmp_path, SESSION, WORKSPACE):  # released on the way out: free to claim
            pass
        with exclusive(store_url, tmp_path, *SESSION, WORKSPACE):  # no claim left: taken for real
            assert lock_taken(mine.taken(), tmp_path, SESSION[0])
    finally:
        mine.close()
        theirs.close()
