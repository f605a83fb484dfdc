"""A damaged export is refused with its line number and the reason, and nothing at all is written."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from distill_es.app.transfer import (
    DamagedExport,
    DamagedSession,
    DuplicateSessions,
    export_all,
    export_session,
    import_events,
)
from distill_es.store.app import EventStore

from .conftest import Source

Lines = list[str]


@pytest.fixture(scope="module")
def lines(source: Source) -> Lines:
    """Both sessions of the source store: the rolled-back one first, then the pending one, then `end`."""
    engine = source.engine()
    try:
        return list(export_all(engine.store))
    finally:
        engine.close()


def first_line_of(lines: Lines, session_id: str) -> int:
    return next(i for i, line in enumerate(lines, start=1) if f'"session_id":"{session_id}"' in line)


def edit(line: str, change: Callable[[dict], None]) -> str:
    obj = json.loads(line)
    change(obj)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"


def edit_payload(obj: dict) -> None:
    key = next(iter(obj["payload"]))
    obj["payload"][key] = "edited"


def assert_nothing_written(store: EventStore) -> None:
    assert store.max_position() == 0
    assert list(store.iter_session_ids()) == []


def at_line(number: int, change: Callable[[str], str]) -> Callable[[Lines], Lines]:
    """Damage: line `number` (1-based) replaced by `change(line)`."""
    return lambda ls: [*ls[: number - 1], change(ls[number - 1]), *ls[number:]]


def field(name: str, value: object) -> Callable[[str], str]:
    return lambda line: edit(line, lambda obj: obj.update({name: value}))


# Each case: (how the file is damaged, the line it is refused at (or a function of the undamaged
# lines giving it), words of the reason).
CASES: dict[str, tuple[Callable[[Lines], Lines], int | Callable[[Lines], int], str]] = {
    "bad JSON line": (at_line(10, lambda line: line[:40] + "\n"), 10, "not valid JSON"),
    "gap in positions": (lambda ls: ls[:9] + ls[10:], 10, "jumps from position 9 to 11"),
    "edited payload": (at_line(12, lambda line: edit(line, edit_payload)), 12, "digest does not recompute"),
    "edited digest": (at_line(12, field("digest", "0" * 64)), 12, "digest does not recompute"),
    "edited timestamp": (
        at_line(12, field("timestamp", "2020-01-01T00:00:00+00:00")),
        12,
        "does not recompute",
    ),
    "edited previous digest": (at_line(12, field("previous_digest", "1" * 64)), 12, "previous_digest"),
    "reordered lines": (lambda ls: [*ls[:19], ls[20], ls[19], *ls[21:]], 20, "jumps from position 19 to 21"),
    "truncated mid-line": (lambda ls: [*ls[:30], ls[30][: len(ls[30]) // 2]], 31, "not valid JSON"),
    "truncated at a line boundary": (lambda ls: ls[:30], 31, "ends without its end line"),
    "a whole session cut out": (lambda ls: ls[:1] + ls[-1:], 2, "lines are missing"),
    "a session twice": (lambda ls: ls[:-1] + ls, len, "appears twice"),
    "unknown event type": (at_line(5, field("type", "distill_es.Nonsense.v1")), 5, "unknown event type"),
    "newer schema": (at_line(5, field("schema_version", 7)), 5, "schema_version 7"),
    "not an event line": (at_line(5, lambda _: '{"position": 5}\n'), 5, "not an event line"),
    "a blob line": (lambda ls: [*ls[:-1], '{"blob": {"sha256": "00"}}\n', ls[-1]], len, "blob lines"),
    "an empty file": (lambda ls: [], 1, "ends without its end line"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_file_is_refused_with_line_and_reason_and_nothing_is_imported(
    case: str, lines: Lines, sqlite_store
):
    damage, line, reason = CASES[case]
    damaged = damage(list(lines))
    line = line if isinstance(line, int) else line(lines)
    store = sqlite_store()
    with pytest.raises(DamagedExport) as refused:
        import_events(store, damaged)
    assert (refused.value.line, reason in refused.value.reason) == (line, True), str(refused.value)
    assert str(refused.value).startswith(f"line {line}: ") and "nothing was imported" in str(refused.value)
    assert_nothing_written(store)
    # The same file, undamaged, imports: the refusal was about the damage and nothing else.
    import_events(store, lines)


def test_a_damaged_second_session_stops_the_first_from_being_written_too(
    lines: Lines, pg_url: str, source: Source
):
    """All or nothing across sessions, on PostgreSQL: the first session verified fine, yet is not written."""
    at = first_line_of(lines, source.pending) + 3
    damaged = at_line(at, lambda line: edit(line, edit_payload))(lines)
    store = EventStore(pg_url)
    try:
        with pytest.raises(DamagedExport) as refused:
            import_events(store, damaged)
        assert refused.value.line == at
        assert_nothing_written(store)
    finally:
        store.close()


@pytest.mark.parametrize("target_kind", ["sqlite", "postgres"])
def test_a_session_already_in_the_store_is_refused_by_name(
    target_kind: str, lines: Lines, source: Source, sqlite_store, request
):
    store = EventStore(request.getfixturevalue("pg_url")) if target_kind == "postgres" else sqlite_store()
    try:
        engine = source.engine()
        try:
            only_pending = list(export_session(engine.store, source.pending))
        finally:
            engine.close()
        import_events(store, only_pending)
        before = store.max_position()

        # The whole store's export holds the pending session again: nothing of it is written, not
        # even the rolled-back session the target does not have yet.
        with pytest.raises(DuplicateSessions) as refused:
            import_events(store, lines)
        assert refused.value.session_ids == [source.pending]
        assert source.pending in str(refused.value) and "nothing was imported" in str(refused.value)
        assert store.max_position() == before
        assert [str(s) for s in store.iter_session_ids()] == [source.pending]
    finally:
        store.close()


def test_blank_lines_crlf_and_a_byte_order_mark_are_not_damage(lines: Lines, sqlite_store):
    dressed = ["\ufeff" + lines[0].replace("\n", "\r\n"), "\n", *lines[1:], "\n"]
    report = import_events(sqlite_store(), dressed)
    assert len(report.sessions) == 2 and report.events == len(lines) - 1


def test_concatenated_exports_import_together(source: Source, sqlite_store):
    engine = source.engine()
    try:
        parts = [list(export_session(engine.store, sid)) for sid in (source.rolled_back, source.pending)]
    finally:
        engine.close()
    report = import_events(sqlite_store(), parts[0] + parts[1])
    assert [s.session_id for s in report.sessions] == [source.rolled_back, source.pending]


def test_export_refuses_a_session_whose_stored_chain_is_damaged(source: Source, tmp_path: Path):
    """A file import would refuse must not be written: the damage is reported where it is."""
    path = tmp_path / "events.sqlite"
    shutil.copy(source.home / ".distill_es" / "events.sqlite", path)
    with sqlite3.connect(path) as db:
        key = source.pending.replace("-", "")
        (state,) = db.execute(
            "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = 3", (key,)
        ).fetchone()
        tampered = zlib.decompress(state).replace(b'"diagnosing"', b'"planning"')
        assert tampered != zlib.decompress(state)
        db.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 3",
            (zlib.compress(tampered), key),
        )
    store = EventStore(f"sqlite:///{path}")
    try:
        with pytest.raises(DamagedSession) as refused:
            list(export_session(store, source.pending))
        assert "position 3" in str(refused.value) and source.pending in str(refused.value)
        assert len(list(export_session(store, source.rolled_back))) > 1  # the other session is fine
    finally:
        store.close()
