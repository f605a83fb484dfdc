"""Session ids in the web view resolve as `show` resolves them: a full id present in the log is found
even when the index lists it under another workspace path (a moved workspace); unknown ids are 404
pages, ambiguous prefixes 400 pages."""

from __future__ import annotations

import shutil
from pathlib import Path

from starlette.testclient import TestClient

from distill_es.api import Engine
from distill_es.web.app import create_app

from .conftest import Store, cli


def test_a_moved_workspace_s_session_is_found_by_its_full_id(demo_store: Store, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(demo_store.home, moved, symlinks=True)
    sid = demo_store.session_id
    assert cli("--home", moved, "show", sid).exit_code == 0  # what `show` does
    engine = Engine.open(moved, read_only=True)
    try:
        client = TestClient(create_app(engine), raise_server_exceptions=False)
        page = client.get(f"/sessions/{sid}")
        assert page.status_code == 200, page.text[:300]
        assert client.get(f"/sessions/{sid.upper()}", follow_redirects=False).status_code == 307
        assert client.get(f"/sessions/{sid}/edits/edit_001").status_code == 200
        assert client.get("/whatif", params={"session": sid}).status_code == 200
        assert client.get("/sessions/ffffffff-0000-0000-0000-000000000000").status_code == 404
    finally:
        engine.close()
