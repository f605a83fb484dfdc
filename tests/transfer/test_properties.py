"""Any history the real aggregate accepts travels unchanged: same export bytes, same stored rows, same
state after import. Histories come from the testing kit's own `event_histories()`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from distill_es.app.transfer import DamagedExport, export_session, import_events
from distill_es.domain.session.aggregate import Session
from distill_es.store.app import EventStore
from distill_es.testing import event_histories


def rows(store: EventStore, session_id: object) -> list[tuple[int, str, bytes]]:
    return [(r.originator_version, r.topic, r.state) for r in store.stored_events(session_id)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=event_histories(max_steps=25))
def test_any_valid_history_exports_imports_and_exports_again_unchanged(session: Session):
    with tempfile.TemporaryDirectory() as tmp:
        source, target = (EventStore(f"sqlite:///{Path(tmp) / name}") for name in ("a.sqlite", "b.sqlite"))
        try:
            source.save(session)
            text = "".join(export_session(source, session.id))
            lines = text.splitlines(keepends=True)  # any text the payloads hold stays on its line
            assert len(lines) == session.version + 1

            report = import_events(target, lines)
            assert report.events == session.version
            assert "".join(export_session(target, session.id)) == text
            assert rows(target, session.id) == rows(source, session.id)
            assert target.load(session.id).view() == source.load(session.id).view()
        finally:
            source.close()
            target.close()


@settings(max_examples=15, deadline=None)
@given(session=event_histories(min_steps=3, max_steps=12))
def test_dropping_any_one_line_is_refused_at_that_line(session: Session):
    with tempfile.TemporaryDirectory() as tmp:
        source, target = (EventStore(f"sqlite:///{Path(tmp) / name}") for name in ("a.sqlite", "b.sqlite"))
        try:
            source.save(session)
            lines = list(export_session(source, session.id))
            for dropped in range(len(lines)):
                with pytest.raises(DamagedExport) as refused:
                    import_events(target, lines[:dropped] + lines[dropped + 1 :])
                assert refused.value.line == dropped + 1
            assert target.max_position() == 0
        finally:
            source.close()
            target.close()
