"""A save that also snapshots: the aggregate's new events and its snapshot in one write transaction.

`eventsourcing` writes events (`Application.save`) and snapshots (`snapshots.put`) in a transaction
each; a step whose save crosses a snapshot interval would then be two transactions, and a crash
between them would leave the events without their snapshot (harmless, but not one write). Both
tables live in the same database on both backends, so both inserts run on one connection here, with
the recorders' own statements (the library is pinned to 9.5.x, whose recorders these calls follow).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent


def insert_with_snapshot(
    app: Any, postgres: bool, events: Sequence[StoredEvent], snapshot: StoredEvent
) -> int:
    """Insert `events` and `snapshot` in one transaction; return the last event's notification id
    (0 if the recorder does not say). A conflict on either rolls back both (`IntegrityError`)."""
    recorder, snapshots = app.recorder, app.snapshots.recorder
    if postgres:
        with recorder.datastore.transaction(commit=True) as cursor:
            recorder._insert_stored_events(cursor, events)  # locks the table: ids in commit order
            ids = recorder._fetch_ids_after_insert_events(cursor, events)
            snapshots._insert_stored_events(cursor, [snapshot])
    else:
        with recorder.datastore.transaction(commit=True) as cursor:
            ids = recorder._insert_events(cursor, events)
            snapshots._insert_events(cursor, [snapshot])
    return int(ids[-1]) if ids else 0


def can_insert_together(app: Any) -> bool:
    """Whether both recorders write through one datastore (always, as the store opens them), with
    the plain insert statements (not the PostgreSQL stored functions, which commit on their own)."""
    datastore = app.recorder.datastore
    return (
        app.snapshots is not None
        and app.snapshots.recorder.datastore is datastore
        and not getattr(datastore, "enable_db_functions", False)
    )
