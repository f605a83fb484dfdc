"""Read-only commands create no file in the workspace's `.distill_es`: `ui` (browsing every page),
`regate`, `explain` and `report` open the engine read-only. With the session index present it is
caught up in place (a cache); deleted, it lives in memory and is not recreated; the SQLite event
store's `-wal` / `-shm` side files are gone again once the command ends (store/sidecars.py)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from distill_es.api import Engine
from distill_es.web.app import create_app

from .conftest import Store, cli, cli_json


@pytest.fixture(scope="module")
def own_demo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    home = tmp_path_factory.mktemp("web-ro") / "demo"
    assert cli("demo", "--home", home).exit_code == 0
    [view] = cli_json("--home", home, "sessions")
    return Store(home, view["id"])


def fingerprint(home: Path) -> str:
    """The store file's bytes (not opened with SQLite: a mode=ro reader would make side files)."""
    return hashlib.sha256((home / ".distill_es" / "events.sqlite").read_bytes()).hexdigest()


def listing(home: Path) -> list[str]:
    state = home / ".distill_es"
    return sorted(str(p.relative_to(state)) for p in state.rglob("*"))


def browse(store: Store, tmp_path: Path) -> None:
    engine = Engine.open(store.home, read_only=True)
    try:
        client = TestClient(create_app(engine), raise_server_exceptions=False)
        sid = store.session_id
        for url in (
            "/",
            "/trends",
            "/whatif",
            "/review",
            f"/sessions/{sid}",
            f"/sessions/{sid}/edits/edit_001",
        ):
            assert client.get(url).status_code == 200, url
    finally:
        engine.close()


def regate(store: Store, tmp_path: Path) -> None:
    assert cli("--home", store.home, "regate", "--all", "--json").exit_code == 0


def explain(store: Store, tmp_path: Path) -> None:
    assert cli("--home", store.home, "explain", store.session_id, "edit_001", "--json").exit_code == 0


def report(store: Store, tmp_path: Path) -> None:
    result = cli("--home", store.home, "report", store.session_id, "-o", tmp_path / "r.html")
    assert result.exit_code == 0, result.output


COMMANDS: dict[str, Callable[[Store, Path], None]] = {
    "ui": browse, "regate": regate, "explain": explain, "report": report
}  # fmt: skip


def drop_index(home: Path) -> None:
    for path in (home / ".distill_es").glob("views*.sqlite*"):
        path.unlink()


@pytest.mark.parametrize("index", ["present", "deleted"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_read_only_command_creates_no_file(
    own_demo: Store, tmp_path: Path, command: str, index: str
) -> None:
    if index == "deleted":
        drop_index(own_demo.home)
    else:
        assert cli("--home", own_demo.home, "sessions").exit_code == 0  # a write command's index
        assert (own_demo.home / ".distill_es" / "views.sqlite").is_file()
    before, store_before = listing(own_demo.home), fingerprint(own_demo.home)
    assert not any(name.endswith(("-wal", "-shm")) for name in before), before
    COMMANDS[command](own_demo, tmp_path)
    assert listing(own_demo.home) == before
    assert fingerprint(own_demo.home) == store_before


def test_the_ui_process_leaves_no_file_behind(own_demo: Store) -> None:
    drop_index(own_demo.home)
    before = listing(own_demo.home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTILL_ES_", "ANTHROPIC_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "distill_es.cli", "--home", str(own_demo.home), "ui", "--json", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        assert httpx.get(url, timeout=30).status_code == 200
        assert httpx.get(f"{url}sessions/{own_demo.session_id}", timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert proc.returncode == 0
    assert listing(own_demo.home) == before


def test_a_reader_beside_a_writer_leaves_the_writer_s_files(own_demo: Store) -> None:
    """While another connection holds the store open, the side files are its: a read-only engine's
    close must leave them (SQLite's last-connection cleanup does nothing then)."""
    import sqlite3

    db_path = own_demo.home / ".distill_es" / "events.sqlite"
    writer = sqlite3.connect(db_path)
    try:
        writer.execute("SELECT count(*) FROM stored_events").fetchone()
        assert Path(f"{db_path}-shm").exists()
        engine = Engine.open(own_demo.home, read_only=True)
        engine.get(own_demo.session_id)
        engine.close()
        assert Path(f"{db_path}-shm").exists() and Path(f"{db_path}-wal").exists()
        assert writer.execute("SELECT count(*) FROM stored_events").fetchone()[0] > 0
    finally:
        writer.close()
    assert not Path(f"{db_path}-shm").exists()  # the writer's own close removed them
