"""Which sessions of a store were recorded at another workspace path (`doctor`'s moved-workspace
check): read from the sessions' first events by topic, nothing else decoded, nothing created."""

from __future__ import annotations

from collections.abc import Iterable

from distill_es.domain.session import events as ev
from distill_es.store.app import open_store


def sessions_recorded_elsewhere(url: str, workspace: str, session_ids: Iterable[str]) -> dict[str, str]:
    """session id -> the path it recorded, for those of `session_ids` the store at `url` holds
    recorded at a path other than `workspace`."""
    wanted = set(session_ids)
    if not wanted:
        return {}
    store = open_store(url, create_tables=False)
    try:
        return {
            str(event.originator_id): event.workspace
            for event in store.scan(ev.SessionStarted.TOPIC)
            if str(event.originator_id) in wanted and event.workspace != workspace
        }
    finally:
        store.close()
