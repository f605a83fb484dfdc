"""The command line on store and environment faults: one error line and one hint line naming the
problem and the next step, the documented exit code (2 a bad URL, 3 a store that is not there, 1 the
machine or the database failed), never "this is a bug", and the log as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from distill_es.cli import errors as cli_module
from distill_es.domain.errors import NotAWorkspace, StoreMissing, StoreUnavailable, StoreUrlError
from distill_es.domain.layout import STATE_DIR
from tests.cli.conftest import Demo, cli, cli_json
from tests.faults import fill, grow, refusing_writes, small_disk


def assert_one_fault_line(result: object, code: int, *says: str) -> None:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = stderr[stderr.find("error: ") :].strip().splitlines()  # after any progress lines
    assert len(lines) == 2, stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), lines
    assert "bug" not in result.stderr and "unexpected" not in result.stderr  # type: ignore[attr-defined]
    for text in says:
        assert text in result.stderr, result.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreUrlError("x"), 2),
        (StoreMissing("x"), 3),
        (StoreUnavailable("x"), 1),
        (NotAWorkspace("x"), 3),
    ],
)
def test_store_errors_have_their_exit_codes(error: BaseException, code: int) -> None:
    assert cli_module.exit_code_for(error) == code


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace that never ran a session (as `distill-es init` leaves it)."""
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    return home


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".git" not in p.parts)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://user@db.example/agent", "scheme 'mysql'"),
        ("garbage", "no scheme"),
        ("sqlite://", "names no SQLite file"),
        ("postgresql://postgres@127.0.0.1:notaport/db", "is malformed"),
    ],
)
def test_a_bad_store_url_is_a_usage_error(workspace: Path, url: str, says: str) -> None:
    result = cli("--home", workspace, "--store", url, "sessions")
    assert_one_fault_line(result, 2, says, "hint: pass --store sqlite:///")


def test_a_bad_store_url_from_the_environment_names_the_variable(workspace: Path) -> None:
    result = cli("--home", workspace, "sessions", env={"DISTILL_ES_STORE": "mysql://u@h/db"})
    assert_one_fault_line(result, 2, "mysql", "$DISTILL_ES_STORE")


@pytest.mark.parametrize(
    "command",
    [
        ["sessions"],
        ["review"],
        ["verify"],
        ["show", "0123"],
        ["history", "0123"],
        ["export", "--all"],
        ["loops"],
        ["training", "list"],
        ["benchmark", "show"],
    ],
)
def test_a_read_command_on_a_missing_store_path_names_it_and_creates_nothing(
    workspace: Path, tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x"
    result = cli("--home", workspace, "--store", f"sqlite:///{missing}", *command)
    assert_one_fault_line(result, 3, f"no event store at {missing}", "--store")
    assert not (tmp_path / "no").exists()
    assert not (workspace / STATE_DIR).exists()


@pytest.mark.parametrize(
    "command",
    [
        ["sessions"],
        ["review"],
        ["verify"],
        ["export", "--all"],
        ["loops"],
        ["training", "list"],
        ["benchmark", "show"],
    ],
)
def test_a_read_command_in_a_fresh_workspace_creates_nothing(workspace: Path, command: list[str]) -> None:
    before = listing(workspace)
    result = cli("--home", workspace, *command)
    assert result.exit_code == 0, result.output
    assert listing(workspace) == before  # no .distill_es, no store, no index


def test_sessions_in_a_fresh_workspace_is_an_empty_list(workspace: Path) -> None:
    assert cli_json("--home", workspace, "sessions") == []
    result = cli("--home", workspace, "sessions")
    assert "no sessions yet" in result.stdout
    assert cli("--home", workspace, "show", "0123").exit_code == 3  # not found, not a store error


# --- read-only and full ------------------------------------------------------------------------------


def count_events(store_file: Path) -> int:
    with sqlite3.connect(store_file) as db:
        return db.execute("SELECT count(*) FROM stored_events").fetchone()[0]


def pending_edit(demo: Demo, *store: str) -> str:
    return cli_json(*store, "--home", demo.home, "review")[0]["edit_id"]


def test_approve_on_a_read_only_store_is_one_line_and_the_approval_can_be_given_again(
    fresh_demo: Demo,
) -> None:
    store_file = fresh_demo.home / STATE_DIR / "events.sqlite"
    edit = pending_edit(fresh_demo)
    before = count_events(store_file)
    with refusing_writes(store_file):
        assert cli("--home", fresh_demo.home, "sessions").exit_code == 0  # reading still works
        result = cli("--home", fresh_demo.home, "approve", fresh_demo.session_id, edit, "--by", "ann")
    assert_one_fault_line(result, 1, f"the event store {store_file} is read-only", "writable")
    assert count_events(store_file) == before
    again = cli("--home", fresh_demo.home, "approve", fresh_demo.session_id, edit, "--by", "ann")
    assert again.exit_code == 0, again.output
    assert cli_json("--home", fresh_demo.home, "show", fresh_demo.session_id)["status"] == "completed"


def test_a_full_disk_under_the_store_is_one_line_and_the_session_goes_on_once_space_is_freed(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        store = ("--store", f"sqlite:///{disk / 'events.sqlite'}")
        result = cli(*store, "demo", "--home", tmp_path / "demo")
        assert result.exit_code == 0, result.output
        demo = run_demo_view(tmp_path / "demo", store)
        edit = pending_edit(demo, *store)
        filler = fill(disk)
        refused = cli(*store, "--home", demo.home, "approve", demo.session_id, edit, "--by", "ann")
        assert_one_fault_line(refused, 1, f"{disk / 'events.sqlite'}", "disk is full", "free disk space")
        filler.unlink()
        again = cli(*store, "--home", demo.home, "approve", demo.session_id, edit, "--by", "ann")
        assert again.exit_code == 0, again.output
        assert cli_json(*store, "--home", demo.home, "verify")[0]["ok"] is True


def run_demo_view(home: Path, store: tuple[str, str]) -> Demo:
    sessions = cli_json(*store, "--home", home, "sessions")
    assert [view["status"] for view in sessions] == ["awaiting_review"]
    return Demo(home=home, session_id=sessions[0]["id"], result=None)  # type: ignore[arg-type]


# --- PostgreSQL ---------------------------------------------------------------------------------------


def test_an_unreachable_postgresql_is_one_line_with_exit_1(workspace: Path) -> None:
    # A real process with a generous bound: it must answer, not hang on a server that is not there.
    done = subprocess.run(
        [sys.executable, "-m", "distill_es.cli", "--home", str(workspace),
         "--store", "postgresql://postgres@127.0.0.1:1/agent", "sessions"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: cannot reach the PostgreSQL store 'agent' at 127.0.0.1:1"), lines
    assert lines[1].startswith("hint: start the database server"), lines
    assert len(lines) == 2


@pytest.mark.postgres
def test_a_read_command_on_an_empty_postgresql_database_says_so_and_creates_no_table(
    workspace: Path,
) -> None:
    from tests.pg import fresh_database
    from tests.store.test_store_faults import pg_tables

    for url in fresh_database("distill_es_cli_empty"):
        result = cli("--home", workspace, "--store", url, "sessions")
        assert_one_fault_line(result, 3, "holds no distill_es event log", "distill-es run")
        assert pg_tables(url) == []


def test_a_full_disk_met_outside_the_store_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    """A blob, a lock file, a git object: the OS error is reported as the fault, not as a bug."""
    full = OSError(28, "No space left on device", "/w/.distill_es/blobs/ab")
    code = cli_module.report_error(full, debug=False)
    stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.startswith("error: /w/.distill_es/blobs/ab cannot grow: the disk is full")
    assert "bug" not in stderr and len(stderr.strip().splitlines()) == 2


def test_a_disk_that_fills_mid_session_stops_it_with_the_resume_command_that_finishes_it(
    tmp_path: Path, shared_demo: Demo
) -> None:
    """240 KiB hold the demo session up to its executing phase (measured); the resumed session
    ends as the uninterrupted one did."""
    with small_disk(tmp_path / "disk", size="240k") as disk:
        store = f"sqlite:///{disk / 'events.sqlite'}"
        stopped = cli("--store", store, "demo", "--home", tmp_path / "demo")
        assert_one_fault_line(stopped, 1, "disk is full", "free disk space", f"--store {store} resume")
        resume = stopped.stderr.split("continue with `distill-es ", 1)[1].split("`", 1)[0].split()
        grow(disk, "16m")
        resumed = cli(*resume)
        assert resumed.exit_code == 0, resumed.output
        view = cli_json("--store", store, "--home", tmp_path / "demo", "show", resume[-1])
        assert cli_json("--store", store, "--home", tmp_path / "demo", "verify")[0]["ok"] is True
    reference = cli_json("--home", shared_demo.home, "show", shared_demo.session_id)
    assert view["status"] == reference["status"] == "awaiting_review"
    outcomes = [(o["edit_id"], o["status"]) for o in view["edit_outcomes"]]
    assert outcomes == [(o["edit_id"], o["status"]) for o in reference["edit_outcomes"]]


@pytest.mark.postgres
def test_a_read_only_postgresql_database_refuses_approve_and_keeps_the_log(tmp_path: Path) -> None:
    import psycopg

    from tests.pg import ADMIN, fresh_database

    for url in fresh_database("distill_es_read_only"):
        name = url.rsplit("/", 1)[1]
        home = tmp_path / "demo"
        assert cli("--store", url, "demo", "--home", home).exit_code == 0
        demo = run_demo_view(home, ("--store", url))
        edit = pending_edit(demo, "--store", url)
        events = len(cli_json("--store", url, "--home", home, "history", demo.session_id))
        with psycopg.connect(**ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        refused = cli("--store", url, "--home", home, "approve", demo.session_id, edit, "--by", "ann")
        assert_one_fault_line(refused, 1, f"the PostgreSQL store '{name}' at 127.0.0.1:5432 is read-only",
                              "default_transaction_read_only")  # fmt: skip
        assert len(cli_json("--store", url, "--home", home, "history", demo.session_id)) == events
        with psycopg.connect(**ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
        again = cli("--store", url, "--home", home, "approve", demo.session_id, edit, "--by", "ann")
        assert again.exit_code == 0, again.output
