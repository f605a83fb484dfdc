"""Who may run a session right now: the database's or the OS's own locks, never a home-made file protocol.

- PostgreSQL stores: session-level advisory locks (`pg_try_advisory_lock`) held on a dedicated
  connection; the server releases them when that connection dies, so a killed worker frees its
  session at once.
- SQLite stores: `flock` on a file under the state folder; the kernel releases it when the process dies.

A worker claims a session before it opens anything (`Claims`): the session's and its workspace's
locks, taken on one long-lived connection, after one look at which locks are held now (`pg_locks`),
so workers skip taken work without paying to open it. `exclusive` in the same thread then finds
those names already held (by this claim) and takes them again no more.

A PostgreSQL lock lives as long as its connection, which sits idle while the session runs: a server
timeout (`idle_session_timeout`), a pooler or a firewall can end it, and the session is free for
another process while this one still runs it. `require_held` (the runner calls it before every step)
asks the connection and raises LockLost when it is gone, and a heartbeat thread pings every
connection that holds locks every HEARTBEAT_SECONDS, so none sits idle long enough to be ended.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from distill_es.domain.errors import LockLost, SessionBusy
from distill_es.store.postgres import pg_connect
from distill_es.store.urls import is_postgres


def lock_key(name: str) -> int:
    """A signed 64-bit key for `name` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def session_lock(session_id: str) -> tuple[str, str]:
    """The lock that keeps a session to one process, and how a refusal names it."""
    return f"session:{session_id}", f"session {session_id}"


def workspace_lock(home: Path | str) -> tuple[str, str]:
    """The lock that keeps a workspace to one running session, and how a refusal names it."""
    return f"workspace:{home}", f"the workspace {home}"


_claimed = threading.local()  # names this thread holds through a worker's `Claims.claim`
_leases = threading.local()  # the PostgreSQL connections this thread's locks ride on, with what they hold


def _held_here() -> set[str]:
    names: set[str] = getattr(_claimed, "names", set())
    return names


def _held_on() -> list[tuple[Any, str]]:
    held: list[tuple[Any, str]] = getattr(_leases, "held", None) or []
    _leases.held = held
    return held


HEARTBEAT_SECONDS = 0.5  # how often a held lock's connection is pinged: below any sane idle timeout


class _Heartbeat:
    """Pings every connection that holds locks, every HEARTBEAT_SECONDS, from one daemon thread per
    process: a connection that never sits idle is not ended by `idle_session_timeout`, a pooler or a
    firewall while its session runs (psycopg serializes the pings with the owner's own queries)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._connections: dict[int, Any] = {}
        self._thread: threading.Thread | None = None

    def add(self, conn: Any) -> None:
        with self._guard:
            self._connections[id(conn)] = conn
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._beat, name="distill_es-lock-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, conn: Any) -> None:
        with self._guard:
            self._connections.pop(id(conn), None)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self._guard:
                connections = list(self._connections.values())
            for conn in connections:
                with suppress(Exception):  # a dead one is found by `require_held`, before the next step
                    if not conn.closed:
                        conn.execute("SELECT 1")


_heartbeat = _Heartbeat()


@contextmanager
def _lease(conn: Any, what: str) -> Iterator[None]:
    """While inside, `conn` (holding `what`) is kept from sitting idle, and `require_held` in this
    thread checks that it is alive."""
    held = _held_on()
    held.append((conn, what))
    _heartbeat.add(conn)
    try:
        yield
    finally:
        held.remove((conn, what))
        if not any(other is conn for other, _ in held):
            _heartbeat.discard(conn)


def require_held(session_id: str | None = None) -> None:
    """Raise LockLost when a PostgreSQL connection holding this thread's locks has died (one round trip
    per connection; nothing on SQLite, whose locks die only with the process). `session_id`: the
    session the caller runs (named in the error)."""
    for conn, what in list(_held_on()):
        try:
            alive = not conn.closed and conn.execute("SELECT 1").fetchone() is not None
        except Exception:
            alive = False
        if not alive:
            raise LockLost(
                f"the lock on {what} was lost with its connection to the store (the server or a pooler "
                "ended it): another process may run the session now, so this run stopped before its "
                "next step (the step under way when the connection died may be run again)",
                session_id=session_id,
            )


@contextmanager
def exclusive(
    store_url: str, state_dir: Path, name: str, what: str, *more: tuple[str, str]
) -> Iterator[None]:
    """Hold the lock called `name` (and each further `(name, what)` in `more`, taken in order) for the
    duration, or raise SessionBusy naming the `what` that is taken. On PostgreSQL all of them ride on
    one connection: one connect per run, not one per lock. Names this thread holds through a
    worker's claim are held already: they are not taken twice."""
    wanted = [(n, w) for n, w in [(name, what), *more] if n not in _held_here()]
    if not wanted:
        yield
        return
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
            with _lease(conn, wanted[0][1]):
                yield
        finally:
            for key in reversed(held):
                with suppress(Exception):  # a dead connection took its locks with it
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def lock_taken(taken: set[int] | None, state_dir: Path, name: str) -> bool:
    """Whether some process holds the lock `name` now: by `taken` (PostgreSQL, `Claims.taken`), else
    by a shared try on its lock file under `state_dir` (SQLite), released at once."""
    if taken is not None:
        return lock_key(name) in taken
    path = Path(state_dir) / "locks" / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # never locked here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class Claims:
    """A worker's claims on sessions: the same locks `exclusive` takes, held on one long-lived
    connection (PostgreSQL) or as file locks (SQLite), with a look at which are taken right now."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = _pg_connect(self.store_url)
        return self._conn

    def taken(self) -> set[int] | None:
        """The advisory lock keys held in the store's database now (None: not known, on SQLite)."""
        if not is_postgres(self.store_url):
            return None
        try:
            rows = self._connection().execute(_HELD_KEYS).fetchall()
        except Exception:  # a dropped connection: reconnect next time; the try-locks still decide
            self.close()
            return None
        return {_signed((high << 32) | low) for high, low in rows}

    @staticmethod
    def is_taken(taken: set[int] | None, *names: str) -> bool:
        return taken is not None and any(lock_key(name) in taken for name in names)

    @contextmanager
    def claim(self, state_dir: Path, *wanted: tuple[str, str]) -> Iterator[None]:
        """Hold the locks (SessionBusy naming the one taken); `exclusive` in this thread skips them.
        `state_dir`: the workspace's state folder (where SQLite stores keep the lock files)."""
        names = _held_here()
        _claimed.names = names
        with ExitStack() as holding:
            conn = self._connection() if is_postgres(self.store_url) else None
            for name, what in wanted:
                if conn is not None:
                    key = lock_key(name)
                    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                        raise SessionBusy(f"{what} is in use by another worker; try again when it is done")
                    holding.callback(self._unlock, key)
                else:
                    holding.enter_context(_file_lock(Path(state_dir) / "locks", name, what))
            if conn is not None and wanted:
                holding.enter_context(_lease(conn, wanted[0][1]))  # the locks live as long as `conn`
            names.update(name for name, _ in wanted)
            try:
                yield
            finally:
                names.difference_update(name for name, _ in wanted)

    def _unlock(self, key: int) -> None:
        if self._conn is None or self._conn.closed:
            return  # the connection died: the server dropped every lock it held already
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except Exception:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


_HELD_KEYS = (
    "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _signed(key: int) -> int:
    return key - (1 << 64) if key >= 1 << 63 else key
