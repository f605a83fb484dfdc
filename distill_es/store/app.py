"""The event store: an `eventsourcing` Application, SQLite by default, PostgreSQL by URL.

Serves every chained aggregate in one log (sessions, training runs, loops, trigger logs): save with
optimistic concurrency, find by id, scan by the topic of their first event. Stored events are
zlib-compressed; every event class has an explicit topic, so renaming a class never orphans stored
events. URLs are `store.urls`, environment faults `store.faults`, PostgreSQL's side connections
`store.postgres`, the digest checks on the way out `store.chained`.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, StoredEvent

from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DamagedSession,
    DistillError,
    SessionNotFound,
    StoreMissing,
)
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.events import SessionStarted
from distill_es.store import sidecars
from distill_es.store.atomic import can_insert_together, insert_with_snapshot
from distill_es.store.chained import RAW_PAYLOAD, ChainMapper, check_chain, checked_fold, fold, short
from distill_es.store.faults import store_fault
from distill_es.store.postgres import (
    DDL_LOCK_KEY,
    asking_the_server_why,
    missing_tables,
    pg_probe,
    pg_tables_present,
    register_row_types,
)
from distill_es.store.snapshots import SessionSnapshot  # noqa: F401 - sessions snapshot in this form
from distill_es.store.urls import describe_store, is_postgres, sqlite_path, store_env

APP_NAME = "distill_es"

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A")


def _store_call(method: Callable[P, R]) -> Callable[P, R]:
    """An EventStore method whose environment failures surface as StoreErrors naming the store."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except DistillError:  # ours (a conflict, not found, a damaged session) say it already
            raise
        except Exception as exc:
            url = args[0].url  # type: ignore[attr-defined]
            fault = store_fault(exc, describe_store(url), sqlite_path(url))
            if fault is None:
                raise
            raise fault from exc

    return call


SNAPSHOT_INTERVAL = 100  # sessions are tens of events; long ones load from a snapshot + a few events


class SessionApplication(Application):
    name = APP_NAME
    # Snapshots are taken by EventStore.save from the session in hand: the library's interval
    # snapshots would reload the whole session from the store on every 100th save.
    is_snapshotting_enabled = True

    def construct_mapper(self) -> Mapper:  # type: ignore[type-arg]
        mapper = super().construct_mapper()
        return ChainMapper(mapper.transcoder, mapper.compressor, mapper.cipher)


class EventStore:
    """Chained aggregates in, chained aggregates out; everything else about storage stays in here."""

    def __init__(
        self,
        url: str,
        *,
        create_tables: bool = True,
        snapshot_every: int | None = SNAPSHOT_INTERVAL,
        read_only: bool = False,
    ) -> None:
        """`snapshot_every`: a save that crosses a multiple of it snapshots the session; None never
        does (loads then fold every event; `take_snapshot` still works).

        Without `create_tables` nothing is created: a missing SQLite file (or PostgreSQL tables) is a
        StoreMissing. A server that does not answer, a read-only or full disk: StoreUnavailable."""
        self.url = url
        self.snapshot_every = snapshot_every
        self.never_created = False
        env = store_env(url, create_tables=create_tables and not read_only, read_only=read_only)
        # read_only SQLite: the -wal/-shm a mode=ro reader creates are removed on close (store.sidecars)
        path = sqlite_path(url) if read_only else None
        self._tidy = path if path is not None and sidecars.absent(path) else None
        # The Application must live as long as the store: dropping it closes its connection pool.
        self.app = self._open(env, create_tables)

    @_store_call
    def _open(self, env: dict[str, str], create_tables: bool) -> SessionApplication:
        if not is_postgres(self.url):
            return SessionApplication(env=env)
        # PostgreSQL: tables are looked for over the pool's own connection (no extra connect on the
        # usual path) and created only when missing, under an advisory lock, looked for again once it
        # is held — concurrent CREATE TABLE IF NOT EXISTS race in the catalog ("tuple concurrently
        # updated"), so only the first process to hold the lock issues any DDL (docs/operations.md).
        with asking_the_server_why(self.url):
            app = SessionApplication(env={**env, "CREATE_TABLE": "n"})  # connects: type adapters
        try:
            if not pg_tables_present(app, self.url):
                if not create_tables:
                    raise StoreMissing(*missing_tables(self.url))
                with pg_probe(self.url) as probe:
                    probe.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
                    if not pg_tables_present(app, self.url):  # whoever held the lock made them
                        app.recorder.create_table()
                        app.snapshots.recorder.create_table()  # type: ignore[union-attr]
            # The pool learns the row type the tables use when it connects; a process that connected
            # while another was creating them must learn it now (else "Composite type … not found").
            register_row_types(app)
        except BaseException:
            app.close()
            raise
        return app

    @classmethod
    def empty(cls, url: str) -> EventStore:
        """A store with no events that refuses writes: what a read sees where no store was created
        yet (a workspace that never ran a session). Lives in memory; nothing touches the disk."""
        store = cls.__new__(cls)
        store.url, store.snapshot_every, store.never_created = url, None, True
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:", "CREATE_TABLE": "y"}
        store.app = SessionApplication(env=env)
        return store

    def _refuse_if_never_created(self) -> None:
        if self.never_created:
            raise StoreMissing(
                f"{describe_store(self.url)} does not exist yet, and this engine was opened without "
                "creating it (create_tables=False); nothing was written",
                "open the engine with create_tables=True (any `distill-es run` does) to create the store",
            )

    # --- writing ---------------------------------------------------------------------------
    @_store_call
    def save(self, aggregate: Any) -> int:
        """Append the aggregate's pending events atomically; return the last notification id.

        Someone else's write since it was loaded is a `ConcurrentSessionWrite` naming the aggregate
        and the version it tried to append from; nothing of this write is stored then."""
        self._refuse_if_never_created()
        if not aggregate.pending_events:  # nothing to append: no empty write transaction
            return 0
        first = aggregate.version - len(aggregate.pending_events) + 1  # save() drains pending events
        every = self.snapshot_every
        crosses = isinstance(aggregate, Session) and _crosses(first, aggregate.version, every)
        together = crosses and can_insert_together(self.app)
        try:
            if together:  # this save crossed a multiple of the interval: events and snapshot, one write
                return self._save_with_snapshot(aggregate)
            recordings = self.app.save(aggregate)
        except IntegrityError:
            raise ConcurrentSessionWrite(
                f"{_noun(type(aggregate))} {aggregate.id} was written by someone else since it was loaded "
                f"(tried to append from version {first}); "
                "nothing of this write was stored — reload and decide again"
            ) from None
        if crosses:
            self._snapshot(aggregate)
        return recordings[-1].notification.id if recordings else 0

    def _save_with_snapshot(self, session: Session) -> int:
        snapshot = type(session).Snapshot.take(session)  # type: ignore[attr-defined]  # the state after them
        mapper = self.app.mapper
        events = [mapper.to_stored_event(e) for e in session.collect_events()]
        stored_snapshot = self.app.snapshots.mapper.to_stored_event(snapshot)  # type: ignore[union-attr]
        return insert_with_snapshot(self.app, is_postgres(self.url), events, stored_snapshot)

    @_store_call
    def _snapshot(self, session: Session) -> None:
        """Only sessions have a snapshot format: the other aggregates are a few dozen events and fold
        from them (the library's generic snapshot cannot encode their state)."""
        self._refuse_if_never_created()
        snapshot = type(session).Snapshot.take(session)  # type: ignore[attr-defined]
        with contextlib.suppress(IntegrityError):  # one already taken at this version is kept
            self.app.snapshots.put([snapshot])

    def take_snapshot(self, session_id: str | UUID) -> None:
        """Snapshot the session at its current version (saves also snapshot every 100 events).

        Idempotent: a snapshot already taken at that version (by hand or by a save) is kept.
        """
        self._snapshot(self.load(session_id))

    # --- reading ---------------------------------------------------------------------------
    @_store_call
    def load(self, session_id: str | UUID, version: int | None = None) -> Session:
        """The session, its events checked on the way: `DamagedSession` when they do not decode,
        fold, chain, or make a valid session."""
        sid = parse_session_id(session_id)
        try:
            session = self.app.repository.get(
                sid, version=version, projector_func=lambda s, e: checked_fold(s, e, str(sid))
            )
        except AggregateNotFoundError:
            raise SessionNotFound(f"no session {session_id} in store {self.url}") from None
        try:
            session.view()  # a fold that ends in an invalid state (a forged cost, a bad field)
        except Exception as exc:
            raise DamagedSession(
                str(sid), f"its state is invalid: {type(exc).__name__}: {short(exc)}", kind="invalid"
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
        except DamagedSession:
            raise
        except Exception as exc:
            raise DamagedSession(str(sid), f"event {version} cannot be read back: {short(exc)}") from exc

    @_store_call
    def find(self, aggregate_id: UUID) -> Any | None:
        """Any aggregate in this store (a training run, a loop, a trigger log) by id, or None."""
        try:
            return self.app.repository.get(aggregate_id, projector_func=fold)
        except AggregateNotFoundError:
            return None

    def find_as(self, aggregate_id: UUID, kind: type[A], not_found: Callable[[str], Exception]) -> A | None:
        """`find`, for an id that must name a `kind`: None when nothing has that id, `not_found(detail)`
        raised when something else does (a loop id given where a training run is expected)."""
        found = self.find(aggregate_id)
        if found is not None and not isinstance(found, kind):
            raise not_found(f"{aggregate_id} is not a {_noun(kind)} (it is a {_noun(type(found))})")
        return found

    @_store_call
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
        return fold(None, self.domain_events(session_id))

    @_store_call
    def domain_events(self, session_id: str | UUID, *, checked: bool = False) -> list[Any]:
        """The session's events in order. `checked`: each must decode and chain to the one before,
        else `DamagedSession` (what a command that acts on them needs)."""
        sid = parse_session_id(session_id)
        try:
            events = list(self.app.events.get(sid))
        except (PersistenceError, DamagedSession):  # the mapper's own verdict on a row says it already
            raise
        except Exception as exc:
            if not checked or store_fault(exc, self.url) is not None:
                raise  # the machine's or the file's fault (not a database, locked…): said by _store_call
            raise DamagedSession(str(sid), f"its events cannot be read back: {short(exc)}") from exc
        if not events:
            raise SessionNotFound(f"no session {session_id} in store {self.url}")
        if checked:
            check_chain(str(sid), events)
        for event in events:
            event.__dict__.pop(RAW_PAYLOAD, None)
        return events

    @_store_call
    def stored_events(self, aggregate_id: str | UUID) -> list[StoredEvent]:
        """Any aggregate's rows as stored, in version order."""
        return list(self.app.recorder.select_events(parse_session_id(aggregate_id)))

    def decode_state(self, stored: StoredEvent) -> dict[str, Any]:
        """The raw stored state of an event (no upcasting): what its digest was computed over."""
        return self.app.mapper.decoded(stored)  # type: ignore[attr-defined]  # always a ChainMapper

    def encode_state(self, state: dict[str, Any]) -> bytes:
        """The bytes this store writes for an event's state (the inverse of `decode_state`).
        ValueError when the state would not come back as it went in: the transcoder gives some
        object shapes a meaning ({"_type_": …}), and such a payload would be a different event."""
        mapper = self.app.mapper
        data = mapper.transcoder.encode(state)
        if mapper.transcoder.decode(data) != state:
            raise ValueError("payload does not survive the store's encoding unchanged")
        if mapper.compressor:
            data = mapper.compressor.compress(data)
        if mapper.cipher:
            data = mapper.cipher.encrypt(data)
        return data

    @_store_call
    def has_events(self, aggregate_id: str | UUID) -> bool:
        return bool(self.app.recorder.select_events(parse_session_id(aggregate_id), limit=1))

    @_store_call
    def insert_rows(self, rows: list[StoredEvent]) -> None:
        """Append already-encoded rows of one aggregate in one atomic insert (an import); rows that
        someone else wrote first: ConcurrentSessionWrite, and nothing of these is stored."""
        self._refuse_if_never_created()
        try:
            self.app.recorder.insert_events(rows)
        except IntegrityError:
            where = rows[0].originator_id if rows else "?"
            raise ConcurrentSessionWrite(
                f"{where} was written by someone else; nothing of this write was stored"
            ) from None

    @_store_call
    def notifications(self, start: int, limit: int = 1000) -> list[Any]:
        """Up to `limit` notifications after position `start` (exclusive), in log order."""
        return list(self.app.recorder.select_notifications(start, limit, inclusive_of_start=False))

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return self.app.mapper.to_domain_event(stored)

    @_store_call
    def max_position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def iter_session_ids(self, batch: int = 1000) -> Iterator[UUID]:
        """Every session id in first-event order, streamed from the log (never all events at once)."""
        return self.aggregate_ids(SessionStarted.TOPIC, batch)

    def aggregate_ids(self, created_topic: str, batch: int = 1000) -> Iterator[UUID]:
        """Every id of the aggregates whose first event has `created_topic`, oldest first, streamed
        from the log (read by topic: no other event is decoded)."""
        position = 0
        while True:
            page = self._notifications_of(created_topic, position, batch)
            if not page:
                return
            for notification in page:
                yield UUID(str(notification.originator_id))
            position = page[-1].id

    def scan(self, topic: str, batch: int = 1000) -> Iterator[Any]:
        """Every stored event with `topic`, as domain events, in log order (read by topic: no other
        event is decoded; digests are not checked here: `verify` does that)."""
        position = 0
        while True:
            page = self._notifications_of(topic, position, batch)
            if not page:
                return
            for notification in page:
                yield self.to_domain_event(notification)
            position = page[-1].id

    @_store_call
    def _notifications_of(self, topic: str, start: int, limit: int) -> list[Any]:
        return list(
            self.app.recorder.select_notifications(start, limit, topics=[topic], inclusive_of_start=False)
        )

    def close(self) -> None:
        self.app.close()
        if getattr(self, "_tidy", None) is not None:
            sidecars.tidy(self._tidy)


def _crosses(first: int, last: int, every: int | None) -> bool:
    """Whether appending versions first..last passes a multiple of `every` (a snapshot is due)."""
    return bool(every) and last // every > (first - 1) // every  # type: ignore[operator]


def _noun(kind: type) -> str:
    """How a message names an aggregate class: Session -> session, TrainingRun -> training run."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", kind.__name__).lower()


def parse_session_id(session_id: str | UUID) -> UUID:
    if isinstance(session_id, UUID):
        return session_id
    try:
        return UUID(str(session_id))
    except ValueError:
        raise SessionNotFound(f"{session_id!r} is not a session id") from None


def open_store(
    url: str, *, create_tables: bool = True, missing_is_empty: bool = False, read_only: bool = False
) -> EventStore:
    """The store at `url`. `missing_is_empty`: a store that was never created (and may not be now)
    reads as an empty one instead of a StoreMissing — a workspace's own default store, before its
    first session."""
    try:
        return EventStore(url, create_tables=create_tables, read_only=read_only)
    except StoreMissing:
        if create_tables or not missing_is_empty:
            raise
        return EventStore.empty(url)
