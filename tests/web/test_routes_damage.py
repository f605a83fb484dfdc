"""A stored event whose state decodes to JSON that is no event (no `timestamp`, or a JSON list) must
not take a page down: the lists show the session as damaged, its own pages are 409 pointing to
`verify`. The bytes are written as the store writes them (zlib-compressed JSON, store/app.py), so the
test holds whichever layer ends up reporting the damage."""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from distill_es.api import Engine
from distill_es.web.app import create_app

from .conftest import Store, cli, cli_json


@pytest.fixture(scope="module")
def own_demo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A demo of this module's own, damaged and restored in place by each case (a copy elsewhere
    would be a moved workspace, which the index lists under its old path)."""
    home = tmp_path_factory.mktemp("web-damage") / "demo"
    assert cli("demo", "--home", home).exit_code == 0
    [view] = cli_json("--home", home, "sessions")
    return Store(home, view["id"])


@contextlib.contextmanager
def stored_state(home: Path, session_id: str, version: int, state: bytes) -> Iterator[None]:
    """The event's stored state replaced by `state` (zlib-compressed JSON, as the store writes it),
    restored afterwards."""
    db = sqlite3.connect(home / ".distill_es" / "events.sqlite")
    where = "WHERE originator_id IN (?, ?) AND originator_version = ?"
    key = (UUID(session_id).hex, UUID(session_id).bytes, version)
    try:
        [(original,)] = db.execute(f"SELECT state FROM stored_events {where}", key).fetchall()
        with db:
            db.execute(f"UPDATE stored_events SET state = ? {where}", (zlib.compress(state), *key))
        yield
        with db:
            db.execute(f"UPDATE stored_events SET state = ? {where}", (original, *key))
    finally:
        db.close()


@pytest.fixture(params=[(b'{"x": 1}', 5), (b"[1, 2]", 5), (b'{"x": 1}', 1), (b"[]", 30)])
def damaged(request: pytest.FixtureRequest, own_demo: Store) -> Iterator[TestClient]:
    state, version = request.param
    with stored_state(own_demo.home, own_demo.session_id, version, state):
        engine = Engine.open(own_demo.home, read_only=True)
        try:
            yield TestClient(create_app(engine), raise_server_exceptions=False)
        finally:
            engine.close()


def test_pages_list_an_undecodable_session_as_damaged(damaged: TestClient, own_demo: Store) -> None:
    sid = own_demo.session_id
    for url in ("/", "/trends", "/whatif", "/review", "/whatif?max_regression=0.5"):
        response = damaged.get(url)
        assert response.status_code == 200, (url, response.text[-400:])
    listing = damaged.get("/").text
    assert f'data-session="{sid}"' in listing
    assert '<span class="status s-damaged">damaged</span>' in listing
    for url in (f"/sessions/{sid}", f"/sessions/{sid}/edits/edit_001", f"/whatif?session={sid}"):
        response = damaged.get(url)
        assert response.status_code == 409, (url, response.text[-400:])
        assert "distill-es verify" in response.text
