"""Tamper evidence that does not rest on a cache: raw-SQL tampering, views deleted, caught anyway.

A real session (real anthropic SDK against the scripted server, real git, SQLite and PostgreSQL)
is left awaiting review with three log heads anchored in its git commits; then its rows are cut or
rewritten — the chain recomputed with the same algorithm — and the disposable views deleted.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain import chain
from distill_es.domain.errors import DamagedSession
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.app import EventStore
from distill_es.store.verify import verify_store
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.cli.conftest import cli
from tests.pg import fresh_database
from tests.store.test_store import RawRows


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.sqlite'}"
    else:
        yield from fresh_database("distill_es_tamper")


class Scene:
    """A workspace, its store, one session awaiting review and a bystander session."""

    def __init__(self, home: Path, url: str, teacher_url: str) -> None:
        self.home, self.url, self.teacher_url = home, url, teacher_url

    def engine(self) -> Engine:
        teacher = anthropic.Anthropic(base_url=self.teacher_url, api_key="test", max_retries=0)
        return Engine.open(self.home, teacher=teacher, store_url=self.url)

    def delete_views(self) -> None:
        for path in (self.home / ".distill_es").glob("views*.sqlite*"):
            path.unlink()

    def cli(self, *args: Any) -> Any:
        return cli(*args, "--home", self.home, env={"DISTILL_ES_STORE": self.url})


def run_scene(tmp_path: Path, url: str) -> Iterator[tuple[Scene, str, str, list[int]]]:
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        scene = Scene(home, url, teacher_server.base_url)
        engine = scene.engine()
        target = engine.run_session(OnDemandTrigger())
        bystander = engine.run_session(OnDemandTrigger())
        anchored = [a.version for a in engine._anchors()[target.id]]
        engine.close()
        assert target.status == bystander.status == "awaiting_review"
        assert anchored == [34, 31, 25]  # the revert's head, then the two applies' (newest first)
        yield scene, target.id, bystander.id, anchored


@pytest.fixture
def scene(tmp_path: Path, store_url: str) -> Iterator[tuple[Scene, str, str, list[int]]]:
    yield from run_scene(tmp_path, store_url)


# --- raw-SQL tampering ------------------------------------------------------------------------------


def rows_of(raw: RawRows) -> list[tuple[int, str, bytes]]:
    sql = "SELECT originator_version, topic, state FROM stored_events WHERE originator_id = ? "
    return [(v, t, bytes(s)) for v, t, s in raw._exec(sql + "ORDER BY originator_version", raw.sid)]


def truncate(url: str, session_id: str, keep: int) -> None:
    """Delete every row after version `keep` (and the session's snapshots, if any)."""
    raw = RawRows(url, uuid.UUID(session_id))
    raw._exec("DELETE FROM stored_events WHERE originator_id = ? AND originator_version > ?", raw.sid, keep)


def rewrite(store: EventStore, url: str, session_id: str, version: int, **changes: Any) -> None:
    """Change the payload of event `version`, then recompute every digest from there on with the
    same algorithm (under whatever key the environment holds) and write the rows back."""
    raw = RawRows(url, uuid.UUID(session_id))
    mapper = store.app.mapper
    previous = chain.genesis_digest(session_id)
    for stored_version, topic, state in rows_of(raw):
        decoded = mapper.transcoder.decode(mapper.compressor.decompress(state))
        if stored_version >= version:
            if stored_version == version:
                decoded.update(changes)
            payload = {k: v for k, v in decoded.items() if k not in chain.ENVELOPE_KEYS}
            at = decoded["timestamp"]
            decoded["digest"] = chain.chain_digest(previous, topic, stored_version, at, payload)
            raw.set_state(stored_version, mapper.compressor.compress(mapper.transcoder.encode(decoded)))
        previous = decoded["digest"]


def damage(scene: Scene, session_id: str) -> list[tuple[int, str]]:
    engine = scene.engine()
    try:
        reports = {r.session_id: r for r in engine.verify()}
    finally:
        engine.close()
    assert all(r.ok for sid, r in reports.items() if sid != session_id), "only the tampered session"
    return [(d.position, d.kind) for d in reports[session_id].damage]


def assert_refused_everywhere(scene: Scene, session_id: str, bystander: str) -> None:
    """show, history, resume and rollback refuse with one line naming the session and `verify`;
    verify exits 1 naming it; sessions lists it as damaged and still lists the bystander."""
    for command in (["show", session_id], ["history", session_id], ["resume", session_id],
                    ["rollback", session_id, "--by", "mallory"]):  # fmt: skip
        result = scene.cli(*command)
        assert result.exit_code == 4, (command, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, (command, result.output)
        assert session_id in lines[0] and "is damaged" in lines[0] and "distill-es verify" in lines[0]
        assert "bug" not in result.output
    verified = scene.cli("verify")
    assert verified.exit_code == 1 and session_id in verified.output
    reviews = scene.engine()
    assert {item["session_id"] for item in reviews.pending_reviews()} == {bystander}
    reviews.close()
    listed = scene.cli("sessions")
    assert listed.exit_code == 0 and bystander[:8] in listed.output
    assert f"session {session_id} is damaged" in " ".join(listed.output.split())
    assert scene.cli("show", bystander).exit_code == 0


def test_a_tail_cut_before_the_last_anchor_is_caught_with_the_views_deleted(scene) -> None:
    scene, target, bystander, anchored = scene
    truncate(scene.url, target, keep=anchored[0] - 1)
    scene.delete_views()

    assert damage(scene, target) == [(34, "truncated")]
    assert_refused_everywhere(scene, target, bystander)
    assert "truncated" in scene.cli("verify", target).output


def test_a_payload_edited_with_the_chain_recomputed_is_caught_with_the_views_deleted(scene) -> None:
    scene, target, bystander, _ = scene
    store = EventStore(scene.url)
    rewrite(store, scene.url, target, 17, cost_usd=0.0)  # the plan call: "it cost nothing"
    store.close()
    scene.delete_views()

    assert damage(scene, target) == [(25, "rewritten"), (31, "rewritten"), (34, "rewritten")]
    assert_refused_everywhere(scene, target, bystander)


def test_a_deleted_row_and_undecodable_bytes_are_damage_not_a_crash(scene) -> None:
    scene, target, bystander, _ = scene
    raw = RawRows(scene.url, uuid.UUID(target))
    raw.delete(10)
    assert_refused_everywhere(scene, target, bystander)
    raw.set_state(12, b"\x00not zlib at all")
    scene.delete_views()  # the index rebuilds: one bad row must not stop its catch-up
    assert_refused_everywhere(scene, target, bystander)


def test_a_tail_cut_after_the_last_anchor_is_refused_while_the_index_remembers(scene) -> None:
    """No commit vouches for the last events; the index, while it exists, does: loads compare with it."""
    scene, target, bystander, anchored = scene
    truncate(scene.url, target, keep=anchored[0] + 2)
    assert_refused_everywhere(scene, target, bystander)
    assert "the log ends at version" in scene.cli("show", target).output


def test_without_a_key_a_rewrite_after_the_last_anchor_passes_as_documented(scene) -> None:
    """The limit stated in docs/operations.md: nothing outside the store vouches for the events
    recorded after the last commit, so without a key their rewrite verifies (the index, while it
    exists, still remembers the real last digest)."""
    scene, target, _, anchored = scene
    store = EventStore(scene.url)
    rewrite(store, scene.url, target, anchored[0] + 2, preview="(nothing to see)")
    store.close()
    scene.delete_views()
    assert damage(scene, target) == []


# --- the HMAC key -----------------------------------------------------------------------------------


@pytest.fixture
def keyed_scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(chain.HMAC_KEY_ENV, "a key the attacker never sees")
    yield from run_scene(tmp_path, f"sqlite:///{tmp_path / 'events.sqlite'}")


def test_with_a_key_a_chain_recomputed_without_it_is_caught_anywhere(keyed_scene, monkeypatch) -> None:
    scene, target, bystander, anchored = keyed_scene
    with monkeypatch.context() as attacker:  # the attacker has the store, not the key
        attacker.delenv(chain.HMAC_KEY_ENV)
        store = EventStore(scene.url)
        rewrite(store, scene.url, target, anchored[0] + 2, preview="(nothing to see)")
        store.close()
    scene.delete_views()

    assert (anchored[0] + 2, "edited") in damage(scene, target)
    engine = scene.engine()
    with pytest.raises(DamagedSession, match="does not chain"):
        engine.get(target)
    engine.close()
    assert_refused_everywhere(scene, target, bystander)


def test_a_keyed_store_read_without_the_key_is_refused_not_trusted(keyed_scene, monkeypatch) -> None:
    scene, target, _, _ = keyed_scene
    monkeypatch.delenv(chain.HMAC_KEY_ENV)
    result = scene.cli("show", target)
    assert result.exit_code == 4 and "is damaged" in result.output
    monkeypatch.setenv(chain.HMAC_KEY_ENV, "another key")
    result = scene.cli("show", target)
    assert result.exit_code == 4 and "does not chain" in result.output


def test_an_unkeyed_session_read_with_a_key_says_so(scene, monkeypatch) -> None:
    scene, target, _, _ = scene
    monkeypatch.setenv(chain.HMAC_KEY_ENV, "a key set after the fact")
    result = scene.cli("show", target)
    assert result.exit_code == 4 and "without it" in " ".join(result.output.split())


# --- property: every truncation and every recomputed rewrite up to the last anchor is caught --------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("pristine")
    yield from run_scene(tmp, f"sqlite:///{tmp / 'events.sqlite'}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=38), edit=st.one_of(st.none(), st.integers(2, 39)))
def test_truncations_and_rewrites_are_caught_iff_an_anchor_vouches(pristine, tmp_path_factory, cut, edit):
    scene, target, _, anchored = pristine
    copy = tmp_path_factory.mktemp("copy") / "events.sqlite"
    shutil.copy(scene.url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    store = EventStore(url)
    try:
        if edit is not None:
            rewrite(store, url, target, edit, __tampered__=True)
        truncate(url, target, keep=cut)
        anchors = scene.engine()._anchors()
        [report] = [r for r in verify_store(store, None, anchors=anchors) if r.session_id == target]
    finally:
        store.close()
    vouched = cut < anchored[0] or (edit is not None and edit <= anchored[0])
    assert report.ok is not vouched, (cut, edit, report.damage)
