"""`sessions` pages a large store (issue 15 item 4): --limit, --offset, --all, a default page, and a
note on stderr when more sessions are left; id prefixes are resolved by the index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from distill_es.api import Engine
from distill_es.cli import sessions as cli_sessions
from distill_es.demo.run import open_demo_engine, run_demo
from distill_es.domain.triggers import OnDemandTrigger
from tests.cli.conftest import ENV_VARS, cli


@pytest.fixture(scope="module")
def three_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A demo workspace with three sessions; their ids newest first."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        home = tmp_path_factory.mktemp("paging") / "demo"
        run_demo(home)
        for _ in range(2):
            engine = open_demo_engine(home)
            try:
                engine.run_session(OnDemandTrigger({"source": "paging test"}))
            finally:
                engine.close()
        engine = Engine.open(home)
        try:
            ids = engine.session_ids()
        finally:
            engine.close()
        yield home, ids


def listed(home: Path, *args: str) -> list[str]:
    result = cli("--home", home, "sessions", "--json", *args)
    assert result.exit_code == 0, result.output
    return [view["id"] for view in json.loads(result.stdout)]


def test_pages_cover_every_session_once_newest_first(three_sessions: tuple[Path, list[str]]) -> None:
    home, ids = three_sessions
    assert len(ids) == 3
    assert listed(home) == ids == listed(home, "--all")  # fewer than a page: the same as before
    assert listed(home, "--limit", "2") == ids[:2]
    assert listed(home, "--limit", "2", "--offset", "2") == ids[2:]
    assert listed(home, "--offset", "1") == ids[1:]
    assert listed(home, "--offset", "3") == []


def test_a_note_says_when_more_are_left(three_sessions: tuple[Path, list[str]]) -> None:
    home, _ = three_sessions
    partial = cli("--home", home, "sessions", "--limit", "2")
    assert partial.exit_code == 0, partial.output
    assert "sessions 1-2 of 3 shown" in partial.stderr and "--offset 2" in partial.stderr
    whole = cli("--home", home, "sessions")
    assert whole.exit_code == 0 and "shown" not in whole.stderr
    assert cli("--home", home, "sessions", "--json", "--limit", "1").stderr == ""  # JSON: data only


def test_the_default_page_is_a_page(
    three_sessions: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, ids = three_sessions
    monkeypatch.setattr(cli_sessions, "PAGE", 2)
    assert listed(home) == ids[:2]
    assert listed(home, "--all") == ids


def test_prefixes_resolve_through_the_index(three_sessions: tuple[Path, list[str]]) -> None:
    home, ids = three_sessions
    engine = Engine.open(home)
    try:
        for sid in ids:
            assert engine.session_ids(prefix=sid[:6]) == [i for i in ids if i.startswith(sid[:6])]
        assert engine.session_ids(prefix="") == ids
        assert engine.session_ids(prefix="zz") == []
        assert engine.session_count() == 3
    finally:
        engine.close()
    shown = cli("--home", home, "show", ids[1][:8], "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["id"] == ids[1]
