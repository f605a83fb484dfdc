"""Export → import → export is byte-identical across SQLite and PostgreSQL, and an imported session
shows, replays, verifies and rolls back as it does in its original store."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from distill_es.app.ownership import move_owner
from distill_es.app.transfer import export_all, export_session, import_events
from distill_es.domain import chain
from distill_es.domain.vocabulary import SessionStatus
from distill_es.store.app import EventStore

from .conftest import Source, open_engine


def exported(store: EventStore, session_id: str | None = None) -> str:
    return "".join(export_session(store, session_id) if session_id else export_all(store))


def raw_rows(store: EventStore, session_id: str) -> list[tuple[int, str, bytes]]:
    """(version, topic, uncompressed state bytes) as the store holds them."""
    compressor = store.app.mapper.compressor
    return [
        (row.originator_version, row.topic, compressor.decompress(row.state))
        for row in store.stored_events(session_id)
    ]


def test_export_is_one_line_per_event_in_order_with_its_chain_then_an_end_line(source: Source):
    engine = source.engine()
    try:
        text = exported(engine.store, source.rolled_back)
        history = engine.history(source.rolled_back)
        assert exported(engine.store, source.rolled_back) == text  # deterministic
    finally:
        engine.close()
    lines = text.splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    events, end = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])
    assert end == {"end": {"events": len(events), "sessions": 1}}
    assert [e["position"] for e in events] == list(range(1, len(history) + 1))
    assert [e["type"].split(".")[1] for e in events] == [h["type"] for h in history]
    assert {e["session_id"] for e in events} == {source.rolled_back}
    assert events[0]["previous_digest"] == chain.genesis_digest(source.rolled_back)
    for before, after in itertools.pairwise(events):
        assert after["previous_digest"] == before["digest"]
    for line, event in zip(lines, events, strict=False):
        assert list(event) == sorted(event)  # sorted top-level keys, compact, UTF-8
        assert ", " not in line.split('"payload"')[0] and "\\u" not in line
    types = [e["type"] for e in events]
    assert "distill_es.EditApprovedByReviewer.v1" in types and types[-1] == "distill_es.SessionRolledBack.v1"
    assert all(e["schema_version"] == 1 for e in events)
    assert all(not set(e["payload"]) & chain.ENVELOPE_KEYS for e in events)


def test_sqlite_to_postgres_to_sqlite_is_byte_identical(source: Source, pg_url: str, sqlite_store):
    engine = source.engine()
    try:
        original = exported(engine.store)
        rows = {sid: raw_rows(engine.store, sid) for sid in (source.rolled_back, source.pending)}
    finally:
        engine.close()
    assert json.loads(original.splitlines()[-1]) == {
        "end": {"events": original.count("\n") - 1, "sessions": 2}
    }

    pg = EventStore(pg_url)
    try:
        report = import_events(pg, original.splitlines(keepends=True))
        assert [s.session_id for s in report.sessions] == [source.rolled_back, source.pending]
        via_pg = exported(pg)
    finally:
        pg.close()
    assert via_pg == original

    back = sqlite_store()
    import_events(back, via_pg.splitlines(keepends=True))
    assert exported(back) == original
    # Not just the same export: the very rows the engine wrote, key order included.
    for sid, expected in rows.items():
        assert raw_rows(back, sid) == expected


def test_imported_session_shows_replays_verifies_and_rolls_back_as_in_the_original(
    source: Source, pg_url: str, tmp_path: Path
):
    # Rollback needs the session's commits: each store gets its own copy of the original workspace.
    native_home = shutil.copytree(source.home, tmp_path / "native")
    imported_home = shutil.copytree(source.home, tmp_path / "imported")
    native = open_engine(native_home)  # the copied SQLite store: the original, as it was
    move_owner(imported_home, pg_url)  # the copy moves to PostgreSQL (what `import --move` records)
    target = open_engine(imported_home, store_url=pg_url)
    try:
        report = import_events(target.store, export_all(native.store))
        assert report.events == sum(len(native.history(sid)) for sid in (source.rolled_back, source.pending))
        target.index.catch_up()
        assert {row["session_id"] for row in target.index.rows()} == {source.rolled_back, source.pending}

        for sid in (source.rolled_back, source.pending):
            assert target.get(sid).model_dump_json() == native.get(sid).model_dump_json()
            assert (
                target.get(sid, version=5).model_dump_json() == native.get(sid, version=5).model_dump_json()
            )
            assert target.history(sid) == native.history(sid)
            assert target.cost_ledger(sid) == native.cost_ledger(sid)
            assert [r.ok for r in target.verify(sid)] == [True]
        # The review queue (the session keeps naming the workspace it ran on: the original path).
        queue = target.index.review_queue()
        assert queue == native.index.review_queue()
        assert [(r["session_id"], r["edit_id"]) for r in queue] == [(source.pending, "edit_003")]

        rolled = {name: engine.rollback(source.pending, requested_by="carol") for name, engine in
                  (("native", native), ("imported", target))}  # fmt: skip
        assert rolled["imported"].status == rolled["native"].status == SessionStatus.ROLLED_BACK
        statuses = {
            name: [(o.edit_id, o.status) for o in view.edit_outcomes] for name, view in rolled.items()
        }
        assert statuses["imported"] == statuses["native"]
        assert ("edit_001", "rolled_back") in statuses["imported"]
        assert [h["type"] for h in target.history(source.pending)] == [
            h["type"] for h in native.history(source.pending)
        ]
        assert "qwen2.5-math" not in (imported_home / "config.toml").read_text()  # the revert reached git
        verdicts = {name: [(r.session_id, r.ok, [(d.kind, d.detail) for d in r.damage]) for r in e.verify()]
                    for name, e in (("native", native), ("imported", target))}  # fmt: skip
        assert verdicts["imported"] == verdicts["native"]
        assert verdicts["imported"] == [(source.rolled_back, True, []), (source.pending, True, [])]
    finally:
        native.close()
        target.close()
    # The original store and workspace were only read.
    engine = source.engine()
    try:
        assert engine.get(source.pending).status == SessionStatus.AWAITING_REVIEW
    finally:
        engine.close()
    assert "qwen2.5-math" in (source.home / "config.toml").read_text()


@pytest.mark.parametrize("target_kind", ["sqlite", "postgres"])
def test_an_imported_session_can_travel_on(source: Source, target_kind: str, request, sqlite_store):
    """Export of an import, into yet another store: the chain survives any number of hops."""
    engine = source.engine()
    try:
        text = exported(engine.store, source.pending)
    finally:
        engine.close()
    first = EventStore(request.getfixturevalue("pg_url")) if target_kind == "postgres" else sqlite_store()
    try:
        import_events(first, text.splitlines(keepends=True))
        second = sqlite_store()
        import_events(second, export_session(first, source.pending))
        assert exported(second, source.pending) == text
        assert second.load(source.pending).version == text.count("\n") - 1
    finally:
        first.close()
