"""One owner per workspace: the first store that writes owns it; another is refused before anything
is recorded (exit 4); `import --move` moves it; `cancel` ends a session stranded in another store."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.errors import WorkspaceOwnedElsewhere
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import SessionStatus
from distill_es.store.app import EventStore
from distill_es.store.urls import store_identity
from distill_es.testing import ScriptedTeacher
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from distill_es.workspace.ownership import owner_path
from tests.cli.conftest import _clean_env, cli, cli_json  # noqa: F401 - the autouse fixture too
from tests.pg import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_database("distill_es_own")


def test_store_identities_are_stable_and_carry_no_password(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert store_identity(f"sqlite:///{home / '.distill_es' / 'events.sqlite'}", home) == "default"
    secret = store_identity("postgresql://ann:s3cret@LocalHost:5433/team", home)
    assert secret == "postgresql://127.0.0.1:5433/team" and "s3cret" not in secret
    assert store_identity("postgresql://bob@127.0.0.1/team", home) == "postgresql://127.0.0.1:5432/team"
    assert store_identity(f"sqlite:///{tmp_path}/x/../s.sqlite", home) == f"sqlite:///{tmp_path}/s.sqlite"


def _refused(result, owner: str, other: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 4, result.output
    error = json.loads(result.stderr)
    assert error["exit_code"] == 4
    assert owner in error["error"] and other in error["error"] and "nothing was recorded" in error["error"]
    assert "export" in error["hint"] and "import" in error["hint"] and "--move" in error["hint"]


def test_a_second_sqlite_store_is_refused_before_it_records_anything(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    assert cli("--home", home, "enqueue").exit_code == 0
    assert json.loads(owner_path(home).read_text()) == {"store": "default"}
    other = tmp_path / "other.sqlite"

    result = cli("--home", home, "--store", f"sqlite:///{other}", "enqueue", "--json")

    _refused(result, "the workspace's own store", str(other))
    assert not other.exists()  # not even created
    run = cli("--home", home, "--store", f"sqlite:///{other}", "run", "--json")
    assert run.exit_code == 4 and not other.exists()
    moved = shutil.copytree(home, tmp_path / "moved")  # a moved workspace still owns its own file
    assert cli("--home", moved, "enqueue").exit_code == 0


@pytest.mark.postgres
def test_postgresql_and_sqlite_on_one_workspace(tmp_path: Path, pg_url: str) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    first = cli("--home", home, "--store", pg_url, "enqueue")
    assert first.exit_code == 0, first.output
    pg_id = store_identity(pg_url, home)
    assert json.loads(owner_path(home).read_text()) == {"store": pg_id}

    result = cli("--home", home, "enqueue", "--json")  # the default SQLite store, now a stranger

    _refused(result, pg_id, ".distill_es/events.sqlite")
    assert not (home / ".distill_es" / "events.sqlite").exists()
    listed = cli_json("--home", home, "--store", pg_url, "sessions")
    assert [s["id"] for s in listed] == [first.stdout.strip()]


def test_a_workspace_used_before_owners_were_recorded_belongs_to_its_own_store(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    assert cli("--home", home, "enqueue").exit_code == 0
    owner_path(home).unlink()  # as before this feature: sessions in the default store, no owner file
    other = tmp_path / "other.sqlite"
    assert cli("--home", home, "--store", f"sqlite:///{other}", "enqueue").exit_code == 4
    assert json.loads(owner_path(home).read_text()) == {"store": "default"}


@pytest.mark.postgres
def test_moving_a_workspace_with_export_and_import_move(tmp_path: Path, pg_url: str) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    queued = cli("--home", home, "enqueue").stdout.strip()
    out = tmp_path / "ws.jsonl"
    assert cli("--home", home, "export", "--all", "--out", out).exit_code == 0
    assert cli("--home", home, "--store", pg_url, "enqueue").exit_code == 4  # not moved yet

    copied = cli("--home", home, "import", out, "--store", pg_url, "--json")  # a copy: still not moved
    assert copied.exit_code == 0, copied.output
    assert cli("--home", home, "--store", pg_url, "enqueue").exit_code == 4
    assert cli("--home", home, "enqueue").exit_code == 0

    again = tmp_path / "again.jsonl"
    assert cli("--home", home, "export", "--all", "--out", again).exit_code == 0
    fresh = f"sqlite:///{tmp_path / 'team.sqlite'}"
    moved = cli("--home", home, "import", again, "--store", fresh, "--move")
    assert moved.exit_code == 0, moved.output

    assert json.loads(owner_path(home).read_text()) == {"store": store_identity(fresh, home)}
    after = cli("--home", home, "--store", fresh, "enqueue")
    assert after.exit_code == 0, after.output
    assert cli("--home", home, "enqueue").exit_code == 4  # the old store is a stranger now
    ids = {s["id"] for s in cli_json("--home", home, "--store", fresh, "sessions")}
    assert queued in ids and after.stdout.strip() in ids and len(ids) == 3


class _Stop(Exception):
    pass


def _stop_at_executing(view, step) -> None:  # type: ignore[no-untyped-def]
    if view.status == SessionStatus.EXECUTING:
        raise _Stop


@pytest.mark.postgres
def test_a_session_stranded_in_another_store_is_ended_with_cancel(tmp_path: Path, pg_url: str) -> None:
    """Before owners were recorded, a second store could start a session that then failed at apply and
    stayed `executing` for good: such a session is refused further runs and ended with `cancel`."""
    home = world.create_demo_workspace(tmp_path / "ws")
    assert cli("--home", home, "enqueue").exit_code == 0  # owned by its own SQLite store
    stranded = Engine.open(
        home, store_url=pg_url, own=False, teacher=ScriptedTeacher(world.teacher_reply),
        student=world.DemoStudent(home), on_step=_stop_at_executing,
    )  # fmt: skip
    try:
        sid = stranded.start(OnDemandTrigger())
        with pytest.raises(_Stop):
            stranded.run(sid)
        assert stranded.get(sid).status == SessionStatus.EXECUTING
    finally:
        stranded.close()
    with pytest.raises(WorkspaceOwnedElsewhere):
        Engine.open(home, store_url=pg_url)

    resumed = cli("--home", home, "--store", pg_url, "resume", sid, "--json")
    assert resumed.exit_code == 4, resumed.output
    cancel = ("cancel", sid, "--by", "ann", "--reason", "wrong store", "--json")
    cancelled = cli("--home", home, "--store", pg_url, *cancel)
    assert cancelled.exit_code == 0, cancelled.output
    view = json.loads(cancelled.stdout)
    assert view["status"] == "failed" and view["error"] == "cancelled by ann: wrong store"
    store = EventStore(pg_url, create_tables=False)
    try:
        assert store.load(sid).view().status == SessionStatus.FAILED
    finally:
        store.close()


@given(
    user=st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12),
    password=st.text(alphabet=string.ascii_letters + string.digits + "!$%&*", min_size=6, max_size=20),
    host=st.sampled_from(["127.0.0.1", "db.internal", "DB.Internal", "localhost"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
)
def test_a_postgresql_identity_names_server_and_database_only(
    user: str, password: str, host: str, port: int | None
) -> None:
    where = f"{host}:{port}" if port is not None else host
    user, password = f"u_{user}", f"pw!{password}"  # markers that no identity spells by chance
    identity = store_identity(f"postgresql://{user}:{quote(password)}@{where}/team", Path("/ws"))
    assert "pw!" not in identity and "pw%21" not in identity and "u_" not in identity and "@" not in identity
    assert identity == store_identity(f"postgresql://someone@{where}/team", Path("/elsewhere"))
    assert identity.endswith(f":{port or 5432}/team")


@pytest.mark.postgres
def test_a_worker_on_another_store_does_not_run_the_workspace_s_sessions(tmp_path: Path, pg_url: str) -> None:
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer) as student,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student.base_url)
        assert cli("--home", home, "enqueue").exit_code == 0  # owned by its own SQLite store
        stranger = Engine.open(home, store_url=pg_url, own=False)
        try:
            sid = stranger.start(OnDemandTrigger())  # queued in PostgreSQL by hand
        finally:
            stranger.close()
        env = {**os.environ, "ANTHROPIC_BASE_URL": teacher.base_url, "ANTHROPIC_API_KEY": "test"}
        worker = subprocess.run(
            [sys.executable, "-m", "distill_es.worker", "--store", pg_url, "--state-dir", str(tmp_path / "w"),
             "--poll", "0.1", "--exit-when-idle", "2"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-2000:]
        assert "belongs to" in worker.stderr + worker.stdout
        assert teacher.requests == []  # nobody paid
    assert cli_json("--home", home, "--store", pg_url, "show", sid)["status"] == "initiated"
