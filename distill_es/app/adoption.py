"""Adopting a session a crash left unrecorded, for loops and the daemon alike.

A loop (or the daemon) starts a session, then records that it did: two writes. A crash between them
leaves a session its starter never recorded. The starter stamps a key into the session's trigger
metadata (`Loop.session_key`, `trigger_log.rules.firing_key`), so the next attempt finds that session
in the index and adopts it instead of starting a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Launch:
    session_id: str
    adopted: bool  # found already started after a crash, rather than started now


def started_for(rows: list[dict[str, Any]], key: Mapping[str, Any]) -> str | None:
    """The session whose trigger metadata carries every item of `key`, if one was started."""
    for row in rows:
        metadata = row.get("trigger_metadata") or {}
        if all(metadata.get(name) == value for name, value in key.items()):
            return str(row["session_id"])
    return None


def adopt_or_start(rows: list[dict[str, Any]], key: Mapping[str, Any], start: Callable[[], str]) -> Launch:
    """The session started for `key` before a crash, or a new one from `start` (whose trigger must
    carry `key`, so that a crash right after this start is adopted next time)."""
    adopted = started_for(rows, key)
    return Launch(adopted, True) if adopted is not None else Launch(start(), False)
