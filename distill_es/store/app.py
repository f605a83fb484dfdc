"""The event store: an `eventsourcing` Application, SQLite by default, PostgreSQL by URL.

`sqlite:///<path>` (default `<home>/.distill_es/events.sqlite`) or `postgresql://user@host:port/db`.
Stored events are zlib-compressed; every event class has an explicit topic, so renaming a class
never orphans stored events.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, StoredEvent
from eventsourcing.utils import resolve_topic

from distill_es.domain import events as ev
from distill_es.domain.errors import ConcurrentSessionWrite, DamagedSession, SessionNotFound, SettingsError
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
        event.__dict__.pop(_RAW_PAYLOAD, None)
        session = event.mutate(session)
    return session


# Where `_ChainMapper` keeps an upcast event's payload as it was stored (its digest covers that).
_RAW_PAYLOAD = "__distill_raw_payload__"
_NOT_PAYLOAD = ev.ENVELOPE_KEYS | {"originator_id", "originator_version", _RAW_PAYLOAD}
_CHAINED = (ev.ChainedEvent, ev.SessionStarted)


def _checked_fold(session: Any, events: Iterable[Any], sid: str = "") -> Any:
    """`_fold` that checks, on the way, that each session event chains to the one before it (the
    snapshot's digest, or the genesis), and turns any event that does not decode or fold into
    `DamagedSession`. Only the events after the snapshot are read, so the check costs one digest
    per event actually folded."""
    version, key = 0, ev.digest_key()
    try:
        for event in events:
            version = event.originator_version
            if isinstance(event, _CHAINED):
                if session is None:
                    sid = str(event.originator_id)
                previous = session.last_digest if session is not None else ev.genesis_digest(sid)
                if not chains_to(previous, event, key):
                    raise DamagedSession(
                        str(event.originator_id), _unchained(previous, event, key), "unchained"
                    )
                event.__dict__.pop(_RAW_PAYLOAD, None)
            session = event.mutate(session)
    except (DamagedSession, PersistenceError):
        raise
    except Exception as exc:  # hostile stored bytes: any failure to decode or fold is damage
        sid = str(session.id) if session is not None else sid
        where = f"event {version}" if version else "its first event"
        raise DamagedSession(
            sid, f"{where} cannot be read back: {type(exc).__name__}: {_short(exc)}", kind="unreadable"
        ) from exc
    return session


def chains_to(previous: str, event: Any, key: bytes | None) -> bool:
    """Whether `event`'s recorded digest is the one computed from `previous` and its own content."""
    state = event.__dict__
    payload = state.get(_RAW_PAYLOAD)
    if payload is None:
        payload = {k: v for k, v in state.items() if k not in _NOT_PAYLOAD}
    expected = ev.chain_digest(
        previous, event.TOPIC, state["originator_version"], state["timestamp"], payload, key
    )
    return hmac.compare_digest(expected, str(state.get("digest")))


def _unchained(previous: str, event: Any, key: bytes | None) -> str:
    """Why `event` does not chain, saying so when the HMAC key is what differs."""
    reason = f"event {event.originator_version} does not chain to the one before it"
    if key is not None and chains_to(previous, event, None):
        reason += " under the HMAC key: it was recorded (or rewritten) without it"
    return reason


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ChainMapper(Mapper):  # type: ignore[type-arg]
    """The library's mapper, except that an event upcast on the way in keeps its payload as stored
    (the digest was computed over that, not over the upcast shape)."""

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        if getattr(cls, "class_version", 1) == 1:
            return super().to_domain_event(stored_event)
        raw = self._decoded(stored_event)
        event = super().to_domain_event(stored_event)
        event.__dict__[_RAW_PAYLOAD] = {k: v for k, v in raw.items() if k not in _NOT_PAYLOAD}
        return event

    def _decoded(self, stored_event: StoredEvent) -> dict[str, Any]:
        data = stored_event.state
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return self.transcoder.decode(data)


class SessionApplication(Application):
    name = APP_NAME
    # Snapshots are taken by EventStore.save from the session in hand: the library's interval
    # snapshots would reload the whole session from the store on every 100th save.
    is_snapshotting_enabled = True

    def construct_mapper(self) -> Mapper:  # type: ignore[type-arg]
        mapper = super().construct_mapper()
        return _ChainMapper(mapper.transcoder, mapper.compressor, mapper.cipher)


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
        """The session, its events checked on the way: `DamagedSession` when they do not decode,
        fold, chain, or make a valid session."""
        sid = parse_session_id(session_id)
        try:
            session = self.app.repository.get(
                sid, version=version, projector_func=lambda s, e: _checked_fold(s, e, str(sid))
            )
        except AggregateNotFoundError:
            raise SessionNotFound(f"no session {session_id} in store {self.url}") from None
        try:
            session.view()  # a fold that ends in an invalid state (a forged cost, a bad field)
        except Exception as exc:
            raise DamagedSession(
                str(sid), f"its state is invalid: {type(exc).__name__}: {_short(exc)}", kind="invalid"
            ) from exc
        return session

    def head_digest(self, session_id: str | UUID, version: int) -> str | None:
        """The digest recorded by the session's event at `version` (None if there is no such event)."""
        sid = parse_session_id(session_id)
        rows = self.app.recorder.select_events(sid, gt=version - 1, lte=version)
        if not rows:
            return None
        try:
            return str(self.decode_state(rows[0]).get("digest"))
        except Exception as exc:
            raise DamagedSession(str(sid), f"event {version} cannot be read back: {_short(exc)}") from exc

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

    def domain_events(self, session_id: str | UUID, *, checked: bool = False) -> list[Any]:
        """The session's events in order. `checked`: each must decode and chain to the one before,
        else `DamagedSession` (what a command that acts on them needs)."""
        sid = parse_session_id(session_id)
        try:
            events = list(self.app.events.get(sid))
        except PersistenceError:
            raise
        except Exception as exc:
            if not checked:
                raise
            raise DamagedSession(str(sid), f"its events cannot be read back: {_short(exc)}") from exc
        if not events:
            raise SessionNotFound(f"no session {session_id} in store {self.url}")
        if checked:
            _check_chain(str(sid), events)
        for event in events:
            event.__dict__.pop(_RAW_PAYLOAD, None)
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


def _check_chain(sid: str, events: list[Any]) -> None:
    previous, key = ev.genesis_digest(sid), ev.digest_key()
    for expected_version, event in enumerate(events, start=1):
        if event.originator_version != expected_version:
            raise DamagedSession(sid, f"event {expected_version} is missing", kind="unchained")
        if not chains_to(previous, event, key):
            raise DamagedSession(sid, _unchained(previous, event, key), kind="unchained")
        previous = event.digest


def parse_session_id(session_id: str | UUID) -> UUID:
    if isinstance(session_id, UUID):
        return session_id
    try:
        return UUID(str(session_id))
    except ValueError:
        raise SessionNotFound(f"{session_id!r} is not a session id") from None
