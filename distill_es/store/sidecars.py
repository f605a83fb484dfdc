"""The `-wal` and `-shm` files SQLite keeps beside a WAL-mode database, and how a read-only open
leaves none behind that were not there before it.

A connection opened with `mode=ro` on a WAL database creates both (it cannot read safely without the
shared-memory index while a writer may run; `immutable=1` would skip them but is unsafe then), and,
being read-only, never removes them. So a read-only store notes whether they were absent when it
opened; when it closes, a connection that may write (but runs no statement that writes:
`query_only`) is opened and closed: SQLite's own last-connection cleanup then checkpoints nothing (the
`-wal` is empty) and deletes both — and does nothing while any other connection (a writer) still has
the database open, so it is safe while another process writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import quote

SUFFIXES = ("-wal", "-shm")


def absent(path: Path) -> bool:
    """Whether neither side file of the database at `path` exists now."""
    return not any(Path(f"{path}{suffix}").exists() for suffix in SUFFIXES)


def tidy(path: Path) -> None:
    """Let SQLite remove the side files of `path` if no other connection has it open and the `-wal`
    holds no frames (a writer's unsaved pages are never touched here). Best effort: any failure
    leaves the files as they are."""
    wal = Path(f"{path}-wal")
    if absent(path) or not path.is_file():
        return
    with contextlib.suppress(OSError):
        if wal.exists() and wal.stat().st_size > 0:
            return
    with contextlib.suppress(sqlite3.Error, OSError):
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=1)
        try:
            db.execute("PRAGMA query_only = ON")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL, as a reader
        finally:
            db.close()
