"""The event store: an `eventsourcing` Application, SQLite by default, PostgreSQL by URL.

`sqlite:///<path>` (default `<home>/.distill_es/events.sqlite`) or `postgresql://user@host:port/db`.
Stored events are zlib-compressed; every event class has an explicit topic, so renaming a class
never orphans stored events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, StoredEvent

from distill_es.domain.errors import ConcurrentSessionWrite, SessionNotFound, SettingsError
from distill_es.domain.events import SessionStarted
from distill_es.domain.session import Session

STATE_DIR = ".distill_es"
APP_NAME = "distill_es"


def default_store_url(home: Path) -> str:
    return f"sqlite:///{(Path(home) / STATE_DIR / 'events.sqlite').resolve()}"


def store_env(url: str, *, create_tables: bool = True) -> dict[str, str]:
    """eventsourcing environment for a store URL."""
    env = {
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "CREATE_TABLE": "y" if create_tables else "n",
    }
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if not path or path == "/":
            raise SettingsError(f"store URL {url!r} names no SQLite file (use sqlite:///path/to/file)")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=path, SQLITE_LOCK_TIMEOUT="10")
    elif parsed.scheme in {"postgresql", "postgres"}:
        dbname = parsed.path.lstrip("/")
        if not dbname:
            raise SettingsError(f"store URL {url!r} names no database (postgresql://user@host:port/db)")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=dbname,
            POSTGRES_HOST=parsed.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parsed.port or 5432),
            POSTGRES_USER=unquote(parsed.username or "postgres"),
            POSTGRES_PASSWORD=unquote(parsed.password or ""),
            POSTGRES_CONNECT_TIMEOUT="5",
            POSTGRES_POOL_SIZE="2",
            POSTGRES_MAX_OVERFLOW="4",
        )
    else:
        raise SettingsError(f"unsupported store URL {url!r}: use sqlite:///… or postgresql://…")
    return env


def is_postgres(url: str) -> bool:
    return urlparse(url).scheme in {"postgresql", "postgres"}


SNAPSHOT_INTERVAL = 100  # sessions are tens of events; long ones load from a snapshot + a few events


def _fold(session: Any, events: Iterable[Any]) -> Any:
    """The library's projector, minus its per-event `isinstance` against a runtime Protocol (an
    assert that costs more than folding the event itself): our events are our own classes."""
    for event in events:
        session = event.mutate(session)
    return session


class SessionApplication(Application):
    name = APP_NAME
    # Snapshots are taken by EventStore.save from the session in hand: the library's interval
    # snapshots would reload the whole session from the store on every 100th save.
    is_snapshotting_enabled = True


class EventStore:
    """Sessions in, sessions out; everything else about storage stays in here."""

    def __init__(
        self, url: str, *, create_tables: bool = True, snapshot_every: int | None = SNAPSHOT_INTERVAL
    ) -> None:
        """`snapshot_every`: a save that crosses a multiple of it snapshots the session; None never
        does (loads then fold every event; `take_snapshot` still works)."""
        self.url = url
        self.snapshot_every = snapshot_every
        # The Application must live as long as the store: dropping it closes its connection pool.
        self.app = SessionApplication(env=store_env(url, create_tables=create_tables))

    # --- writing ---------------------------------------------------------------------------
    def save(self, session: Session) -> int:
        """Append the session's pending events atomically; return the last notification id."""
        first = session.version - len(session.pending_events) + 1  # save() drains pending events
        try:
            recordings = self.app.save(session)
        except IntegrityError:
            raise ConcurrentSessionWrite(
                f"session {session.id} was written by someone else since it was loaded "
                f"(tried to append from version {first}); "
                "nothing of this write was stored — reload and decide again"
            ) from None
        every = self.snapshot_every
        if every and session.version // every > (first - 1) // every:
            self._snapshot(session)  # this save crossed a multiple of the interval
        return recordings[-1].notification.id if recordings else 0

    def _snapshot(self, session: Session) -> None:
        snapshot = type(session).Snapshot.take(session)  # type: ignore[attr-defined]
        with contextlib.suppress(IntegrityError):  # one already taken at this version is kept
            self.app.snapshots.put([snapshot])

    def take_snapshot(self, session_id: str | UUID) -> None:
        """Snapshot the session at its current version (saves also snapshot every 100 events).

        Idempotent: a snapshot already taken at that version (by hand or by a save) is kept.
        """
        self._snapshot(self.load(session_id))

    # --- reading ---------------------------------------------------------------------------
    def load(self, session_id: str | UUID, version: int | None = None) -> Session:
        sid = parse_session_id(session_id)
        try:
            return self.app.repository.get(sid, version=version, projector_func=_fold)
        except AggregateNotFoundError:
            raise SessionNotFound(f"no session {session_id} in store {self.url}") from None

    def find(self, aggregate_id: UUID) -> Any | None:
        """Any aggregate in this store (a training run, a loop, a trigger log) by id, or None."""
        try:
            return self.app.repository.get(aggregate_id, projector_func=_fold)
        except AggregateNotFoundError:
            return None

    def load_at(self, session_id: str | UUID, at: datetime) -> Session:
        """The session as it was at time `at` (its last event not after `at`)."""
        sid = parse_session_id(session_id)
        version = 0
        for event in self.app.events.get(sid):
            if event.timestamp > at:
                break
            version = event.originator_version
        if version == 0:
            raise SessionNotFound(f"session {session_id} did not exist yet at {at.isoformat()}")
        return self.load(sid, version=version)

    def replay(self, session_id: str | UUID) -> Session:
        """The session folded from its events alone, ignoring snapshots (what audits trust)."""
        return _fold(None, self.domain_events(session_id))

    def domain_events(self, session_id: str | UUID) -> list[Any]:
        events = list(self.app.events.get(parse_session_id(session_id)))
        if not events:
            raise SessionNotFound(f"no session {session_id} in store {self.url}")
        return events

    def stored_events(self, session_id: str | UUID) -> list[StoredEvent]:
        return list(self.app.recorder.select_events(parse_session_id(session_id)))

    def decode_state(self, stored: StoredEvent) -> dict[str, Any]:
        """The raw stored state of an event (no upcasting): what its digest was computed over."""
        mapper = self.app.mapper
        data = stored.state
        if mapper.cipher:
            data = mapper.cipher.decrypt(data)
        if mapper.compressor:
            data = mapper.compressor.decompress(data)
        return mapper.transcoder.decode(data)

    def notifications(self, start: int, limit: int = 1000) -> list[Any]:
        """Up to `limit` notifications after position `start` (exclusive), in log order."""
        return list(self.app.recorder.select_notifications(start, limit, inclusive_of_start=False))

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return self.app.mapper.to_domain_event(stored)

    def max_position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def iter_session_ids(self, batch: int = 1000) -> Iterator[UUID]:
        """Every session id in first-event order, streamed from the log (never all events at once)."""
        position = 0
        while True:
            page = self.notifications(position, batch)
            if not page:
                return
            for notification in page:
                if notification.topic == SessionStarted.TOPIC:
                    yield notification.originator_id
            position = page[-1].id

    def close(self) -> None:
        self.app.close()


def parse_session_id(session_id: str | UUID) -> UUID:
    if isinstance(session_id, UUID):
        return session_id
    try:
        return UUID(str(session_id))
    except ValueError:
        raise SessionNotFound(f"{session_id!r} is not a session id") from None
