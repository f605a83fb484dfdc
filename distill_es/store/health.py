"""Is the event store reachable, and is its schema the one this version writes? (`distill-es doctor`,
`run`'s preflight.)

Opens the store without creating anything: a check never leaves a file, a table or a folder. A store
that does not exist yet is fine: the first `distill-es run` creates it (file and tables).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from distill_es.domain.errors import StoreError, StoreMissing
from distill_es.store.app import EventStore
from distill_es.store.urls import describe_store, sqlite_path

# eventsourcing's SQLite recorder: the events table and the columns it reads.
SQLITE_EVENTS = "stored_events"
EVENT_COLUMNS = frozenset({"originator_id", "originator_version", "topic", "state"})
FIRST_RUN = "the first `distill-es run` creates it"


@dataclass(frozen=True)
class StoreHealth:
    ok: bool
    detail: str
    hint: str = ""


def store_health(url: str) -> StoreHealth:
    where = describe_store(url)
    path = sqlite_path(url)
    if path is not None:
        return _sqlite_health(path, where)
    try:
        EventStore(url, create_tables=False).close()  # PostgreSQL: connects, looks for the tables
    except StoreMissing:
        return StoreHealth(True, f"{where} is reachable and has no tables yet; {FIRST_RUN}")
    except StoreError as exc:
        return StoreHealth(False, str(exc), exc.hint)
    return StoreHealth(True, f"{where} is reachable; its tables are current")


def _sqlite_health(path: Path, where: str) -> StoreHealth:
    if not path.exists():
        return StoreHealth(True, f"{where} does not exist yet; {FIRST_RUN}")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            tables = {row[0] for row in rows}
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({SQLITE_EVENTS})")}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return StoreHealth(False, f"{where} cannot be read: {exc}", "is it an event store? check --store")
    if SQLITE_EVENTS not in tables:
        return StoreHealth(True, f"{where} has no tables yet; {FIRST_RUN}")
    missing = sorted(EVENT_COLUMNS - columns)
    if missing:
        return StoreHealth(
            False,
            f"{where}: its {SQLITE_EVENTS} table lacks the column(s) {', '.join(missing)}",
            "this store was not written by distill_es (or by an incompatible version): check --store",
        )
    return StoreHealth(True, f"{where} is reachable; its tables are current")
