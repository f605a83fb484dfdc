"""A stored event whose state decodes but is not an event (an object missing its fields, a list, a
number, fields of the wrong type, bytes that are not JSON) is damage: the one decode path turns it
into `DamagedSession` (kind `undecodable`), and every command refuses or reports it, never a crash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import DamagedSession
from distill_es.store.app import EventStore
from distill_es.store.verify import verify_session
from tests.cli.conftest import Demo, cli, run_demo_cli
from tests.store.test_store import awaiting, start


def _encode(store: EventStore, state: Any) -> bytes:
    """The bytes the store's mapper would write for `state` (its transcoder, compressor, cipher)."""
    mapper = store.app.mapper
    data = mapper.transcoder.encode(state)
    if mapper.compressor:
        data = mapper.compressor.compress(data)
    if mapper.cipher:
        data = mapper.cipher.encrypt(data)
    return bytes(data)


def _set_last_state(path: Path, data: bytes) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE stored_events SET state=? WHERE originator_version="
            "(SELECT max(originator_version) FROM stored_events)",
            (data,),
        )


@pytest.fixture
def demo(tmp_path: Path) -> Demo:
    return run_demo_cli(tmp_path / "d")


@pytest.mark.parametrize("state", [{"x": 1}, [1, 2]], ids=["object", "list"])
def test_a_decodable_state_that_is_no_event_is_damage_in_every_command(demo: Demo, state: Any) -> None:
    path = demo.home / ".distill_es" / "events.sqlite"
    store = EventStore(f"sqlite:///{path}", create_tables=False)
    data = _encode(store, state)
    store.close()
    _set_last_state(path, data)
    sid, home = demo.session_id, demo.home

    verified = cli("--home", home, "verify", "--json")
    assert verified.exit_code == 1, verified.output
    kinds = [d["kind"] for r in json.loads(verified.stdout) for d in r["damage"]]
    assert "undecodable" in kinds
    for command in (["history", sid], ["regate", sid], ["explain", sid, "edit_001"], ["show", sid]):
        result = cli("--home", home, *command, "--json")
        assert result.exit_code == 4, (command, result.output)
        assert "is damaged" in result.stderr and "bug" not in result.output
    everything = cli("--home", home, "regate", "--all", "--json")
    assert everything.exit_code == 0, everything.output
    assert [s.split(":")[0] for s in json.loads(everything.stdout)["skipped_sessions"]] == [sid]
    exported = cli("--home", home, "export", "--all", "--out", home / "out.jsonl", "--json")
    assert exported.exit_code == 1, exported.output
    assert "damaged at position" in exported.stderr and "bug" not in exported.output


# Any JSON value, and objects shaped like an event's state with any of its fields changed.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ("timestamp", "digest", "trigger", "autonomy_mode", "settings", "workspace", "phase", "git_head")


@st.composite
def event_like(draw: st.DrawFn) -> Any:
    state: dict[str, Any] = draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
    if draw(st.booleans()):
        state["timestamp"] = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}
    return state


@pytest.fixture(scope="module")
def damaged_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[EventStore, str, Path]:
    path = tmp_path_factory.mktemp("malformed") / "events.sqlite"
    store = EventStore(f"sqlite:///{path}")
    session = awaiting(start(), ["e1"])
    store.save(session)
    return store, str(session.id), path


def _decode_paths(store: EventStore, sid: str) -> None:
    """Every way a stored event is read back: each must end in the damage error or succeed."""
    for read in (
        lambda: store.load(sid),
        lambda: store.domain_events(sid, checked=True),
        lambda: store.domain_events(sid),
        lambda: [store.decode_state(r) for r in store.stored_events(sid)],
        lambda: store.head_digest(sid, 2),
        lambda: store.notifications(0) and [store.to_domain_event(n) for n in store.notifications(0)],
    ):
        try:
            read()
        except DamagedSession as exc:
            assert exc.kind in {"undecodable", "unchained", "unreadable", "invalid"}, exc.kind


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=JSON | event_like(), raw=st.booleans(), junk=st.binary(max_size=40))
def test_any_stored_state_is_the_damage_error_never_a_crash(
    damaged_store: tuple[EventStore, str, Path], state: Any, raw: bool, junk: bytes
) -> None:
    store, sid, path = damaged_store
    data = junk if raw else _encode(store, state)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stored_events SET state=? WHERE originator_version=2", (data,))
    _decode_paths(store, sid)
    report = verify_session(store, None, sid)
    assert not report.ok and any(d.position == 2 for d in report.damage)
