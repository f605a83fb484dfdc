"""Store and environment faults, for real: bad URLs, missing stores, an unreachable or empty
PostgreSQL, files that refuse writes, a full disk. Each is one typed error naming the store and the
next step; nothing is created by an open that may not create; a failed append leaves the log as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.demo.run import open_demo_engine, run_demo
from distill_es.domain.errors import (
    NotAWorkspace,
    SettingsError,
    StoreMissing,
    StoreUnavailable,
    StoreUrlError,
)
from distill_es.domain.layout import STATE_DIR
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.app import EventStore
from distill_es.workspace.scaffold import create_workspace, is_workspace
from tests.faults import refusing_writes, stops_open_files
from tests.pg import ADMIN, fresh_database


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".git" not in p.parts)


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://user@host/db", "scheme 'mysql'"),
        ("garbage", "no scheme"),
        ("sqlite://", "names no SQLite file"),
        ("sqlite:///", "names no SQLite file"),
        ("sqlite://relative/events.sqlite", "names no SQLite file"),
        ("postgresql://postgres@127.0.0.1:notaport/db", "malformed"),
        ("postgresql://[::1/db", "malformed"),
        ("postgresql://postgres@127.0.0.1:5432/", "names no database"),
    ],
)
def test_a_bad_store_url_is_a_usage_error_naming_the_url(url: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUrlError, match=says) as caught:
        EventStore(url)
    assert isinstance(caught.value, SettingsError)  # a usage error: exit 2
    assert repr(url) in str(caught.value)
    assert "--store" in caught.value.hint


# --- opening without creating ---------------------------------------------------------------------


def test_an_open_that_may_not_create_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "events.sqlite"
    with pytest.raises(StoreMissing, match=str(target)):
        EventStore(f"sqlite:///{target}", create_tables=False)
    assert not (tmp_path / "no").exists()


def test_a_workspace_that_never_ran_reads_as_empty_and_nothing_is_created(tmp_path: Path) -> None:
    home = create_workspace(tmp_path / "ws")
    before = tree(home)
    engine = Engine.open(home, create_tables=False)
    try:
        assert engine.sessions() == []
        assert engine.pending_reviews() == []
        assert engine.verify() == []
        with pytest.raises(StoreMissing, match="nothing was written"):
            engine.store.save(_a_new_session(home))
    finally:
        engine.close()
    assert tree(home) == before  # no .distill_es, no store, no index


def _a_new_session(home: Path):  # type: ignore[no-untyped-def]
    from distill_es.domain.session.aggregate import Session

    return Session.start(trigger=OnDemandTrigger(), autonomy_mode="auto", settings={}, workspace=str(home))


def test_an_explicit_store_that_does_not_exist_is_not_read_as_empty(tmp_path: Path) -> None:
    home = create_workspace(tmp_path / "ws")
    missing = tmp_path / "elsewhere" / "events.sqlite"
    with pytest.raises(StoreMissing, match=str(missing)):
        Engine.open(home, store_url=f"sqlite:///{missing}", create_tables=False)
    assert not missing.parent.exists()
    assert not (home / STATE_DIR).exists()


# --- Engine.open: a workspace, or create=True ------------------------------------------------------


def test_engine_open_expands_the_home_and_refuses_a_directory_that_is_not_a_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotAWorkspace, match="distill-es init") as caught:
        Engine.open("~/agent")
    assert str(tmp_path / "user" / "agent") in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no ./~, no user/agent, no git, no store


def test_engine_open_with_create_scaffolds_a_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    engine = Engine.open("~/agent", create=True)
    try:
        assert engine.home == tmp_path / "agent"
        assert is_workspace(engine.home)
        assert engine.sessions() == []
    finally:
        engine.close()


def test_the_readme_embedding_snippet_opens_a_workspace_made_by_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    world.create_demo_workspace(tmp_path / "agent")  # `distill-es init ~/agent`, filled in
    engine = Engine.open("~/agent", settings={"session": {"autonomy_mode": "tiered"}})
    try:
        assert engine.home == tmp_path / "agent"
        assert engine.settings.session.autonomy_mode == "tiered"
    finally:
        engine.close()
    assert not (tmp_path / "~").exists()


# --- files that refuse writes ------------------------------------------------------------------------


@pytest.fixture
def demo_home(tmp_path: Path) -> Path:
    home = tmp_path / "demo"
    run_demo(home)
    return home


def count_events(store_file: Path) -> int:
    with sqlite3.connect(store_file) as db:
        return db.execute("SELECT count(*) FROM stored_events").fetchone()[0]


def test_a_read_only_store_refuses_the_append_with_one_typed_error_and_keeps_its_log(demo_home: Path) -> None:
    store_file = demo_home / STATE_DIR / "events.sqlite"
    before = count_events(store_file)
    with refusing_writes(store_file):
        engine = Engine.open(demo_home)  # reading still works
        try:
            assert [view.status for view in engine.sessions()] == ["awaiting_review"]
            with pytest.raises(StoreUnavailable, match="is read-only") as caught:
                engine.start(OnDemandTrigger())
        finally:
            engine.close()
    assert str(store_file) in str(caught.value)
    assert "writable" in caught.value.hint
    assert count_events(store_file) == before


def test_a_store_that_refuses_writes_mid_session_resumes_to_the_uninterrupted_outcome(tmp_path: Path) -> None:
    stops_open_files()
    reference = run_demo(tmp_path / "reference")
    home = world.create_demo_workspace(tmp_path / "ws")
    store_file = home / STATE_DIR / "events.sqlite"
    locked: list[Path] = []
    stack = contextlib.ExitStack()

    def refuse_from_the_sixth_step(view, step) -> None:  # type: ignore[no-untyped-def]
        if len(locked) == 0 and view.version >= 6:
            files = [store_file, store_file.with_name("events.sqlite-wal")]
            stack.enter_context(refusing_writes(*files))
            locked.extend(files)

    engine = open_demo_engine(home, on_step=refuse_from_the_sixth_step)
    session_id = engine.start(OnDemandTrigger({"source": "distill-es demo"}))
    with stack, pytest.raises(StoreUnavailable) as caught:
        engine.run(session_id)
    engine.close()
    assert locked, "the session never reached its sixth event"
    assert str(store_file) in str(caught.value)

    resumed = open_demo_engine(home)
    try:
        stored = count_events(store_file)
        view = resumed.run(session_id)
        assert [r.ok for r in resumed.verify(session_id)] == [True]
    finally:
        resumed.close()
    assert stored >= 6  # everything recorded before the failure is there, and readable
    assert view.status == reference.status
    assert [(o.edit_id, o.status) for o in view.edit_outcomes] == [
        (o.edit_id, o.status) for o in reference.edit_outcomes
    ]


# --- PostgreSQL --------------------------------------------------------------------------------------


@pytest.fixture
def pg_server(postgres_url: str) -> str:
    """A server that answers (skips without one): its base URL, without a database."""
    return postgres_url.rsplit("/", 1)[0]


@pytest.mark.postgres
def test_a_postgresql_database_that_does_not_exist_is_named(pg_server: str) -> None:
    name = f"distill_es_absent_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreUnavailable, match=f"'{name}' at 127.0.0.1:5432 does not exist") as caught:
        EventStore(f"{pg_server}/{name}")
    assert "createdb" in caught.value.hint


@pytest.fixture
def empty_pg_database() -> Iterator[str]:
    yield from fresh_database("distill_es_faults")


def pg_tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(**{**ADMIN, "dbname": url.rsplit("/", 1)[1]}) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


@pytest.mark.postgres
def test_an_open_that_may_not_create_finds_no_tables_and_creates_none(empty_pg_database: str) -> None:
    with pytest.raises(StoreMissing, match="holds no distill_es event log"):
        EventStore(empty_pg_database, create_tables=False)
    assert pg_tables(empty_pg_database) == []


RACER = """
import sys, time
from pathlib import Path
from distill_es.store.app import EventStore
ready, go = Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
try:
    EventStore(sys.argv[1]).close()
    print("ok")
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
"""


@pytest.mark.postgres
def test_processes_creating_the_tables_at_the_same_moment_all_open_the_store(tmp_path: Path) -> None:
    """Without the DDL lock, about half of them died of "tuple concurrently updated" or a duplicate
    pg_type row; two fresh databases with four racers each."""
    outcomes: list[str] = []
    for round_ in range(2):
        for url in fresh_database("distill_es_race"):
            go = tmp_path / f"go-{round_}"
            readies = [tmp_path / f"ready-{round_}-{i}" for i in range(4)]
            command = [sys.executable, "-c", RACER, url]
            racers = [
                subprocess.Popen([*command, str(ready), str(go)], stdout=subprocess.PIPE, text=True)
                for ready in readies
            ]
            while not all(ready.exists() for ready in readies):
                assert all(racer.poll() is None for racer in racers), "a racer died before the start"
                time.sleep(0.01)
            go.touch()
            outcomes += [racer.communicate(timeout=120)[0].strip() for racer in racers]
    assert outcomes == ["ok"] * 8


# --- telling faults apart -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (OSError(28, "No space left on device", "/s/blob"), "cannot grow: the disk is full"),
        (OSError(30, "Read-only file system", "/s/blob"), "is read-only"),
        (PermissionError(13, "Permission denied", "/s/blob"), "permission denied"),
        (sqlite3.OperationalError("database is locked"), "is locked by another process"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "is read-only"),
    ],
)
def test_environment_failures_become_store_errors_naming_the_store(error: Exception, says: str) -> None:
    from distill_es.store.faults import store_fault

    fault = store_fault(error, "the event store /s/events.sqlite")
    assert isinstance(fault, StoreUnavailable)
    assert str(fault).startswith("the event store /s/events.sqlite")
    assert says in str(fault)
    assert fault.hint


@pytest.mark.parametrize(
    "error",
    [ValueError("connection refused"), KeyError("no such table"), RuntimeError("database is locked")],
)
def test_other_errors_are_not_taken_for_environment_faults(error: Exception) -> None:
    from distill_es.store.faults import store_fault

    assert store_fault(error, "the event store /s/events.sqlite") is None
