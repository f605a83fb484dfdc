"""Who may run a session right now: the database's or the OS's own locks, never a home-made file protocol.

- PostgreSQL stores: session-level advisory locks (`pg_try_advisory_lock`) held on a dedicated
  connection; the server releases them when that connection dies, so a killed worker frees its
  session at once.
- SQLite stores: `flock` on a file under the state folder; the kernel releases it when the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from distill_es.domain.errors import SessionBusy
from distill_es.store.postgres import pg_connect
from distill_es.store.urls import is_postgres


def lock_key(name: str) -> int:
    """A signed 64-bit key for `name` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(
    store_url: str, state_dir: Path, name: str, what: str, *more: tuple[str, str]
) -> Iterator[None]:
    """Hold the lock called `name` (and each further `(name, what)` in `more`, taken in order) for the
    duration, or raise SessionBusy naming the `what` that is taken. On PostgreSQL all of them ride on
    one connection: one connect per run, not one per lock."""
    wanted = [(name, what), *more]
    if is_postgres(store_url):
        with _pg_locks(store_url, wanted):
            yield
    else:
        with ExitStack() as held:
            for lock_name, lock_what in wanted:
                held.enter_context(_file_lock(Path(state_dir) / "locks", lock_name, lock_what))
            yield


@contextmanager
def _file_lock(folder: Path, name: str, what: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SessionBusy(f"{what} is in use by another process; try again when it is done") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _pg_connect(store_url: str) -> Any:
    return pg_connect(store_url)  # a server that does not answer: a StoreUnavailable naming it


@contextmanager
def _pg_locks(store_url: str, wanted: list[tuple[str, str]]) -> Iterator[None]:
    with _pg_connect(store_url) as conn:
        held: list[int] = []
        try:
            for name, what in wanted:
                key = lock_key(name)
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                    raise SessionBusy(f"{what} is in use by another worker; try again when it is done")
                held.append(key)
            yield
        finally:
            for key in reversed(held):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
