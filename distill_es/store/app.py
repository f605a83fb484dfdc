"""The event store: an `eventsourcing` Application, SQLite by default, PostgreSQL by URL.

`sqlite:///<path>` (default `<home>/.distill_es/events.sqlite`) or `postgresql://user@host:port/db`.
Stored events are zlib-compressed; every event class has an explicit topic, so renaming a class
never orphans stored events.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hmac
import shutil
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import ParseResult, unquote, urlparse
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, StoredEvent
from eventsourcing.utils import resolve_topic

from distill_es.domain import chain
from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DamagedSession,
    DistillError,
    SessionNotFound,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    StoreUrlError,
)
from distill_es.domain.layout import STATE_DIR
from distill_es.domain.session import events as ev
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.events import SessionStarted
from distill_es.store.snapshots import SessionSnapshot  # noqa: F401 - sessions snapshot in this form

APP_NAME = "distill_es"


def default_store_url(home: Path) -> str:
    return f"sqlite:///{(Path(home) / STATE_DIR / 'events.sqlite').resolve()}"


URL_FORMS = "sqlite:///path/to/events.sqlite or postgresql://user@host:port/db"
URL_HINT = f"pass --store {URL_FORMS} (or fix $DISTILL_ES_STORE)"


def _parse_url(url: str) -> ParseResult:
    """The URL split into parts, or a StoreUrlError naming what is wrong with it."""
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - a port that is not a number raises only when read
    except ValueError as exc:
        raise StoreUrlError(f"store URL {url!r} is malformed ({exc})", URL_HINT) from None
    if parsed.scheme not in {"sqlite", "postgresql", "postgres"}:
        scheme = f"scheme {parsed.scheme!r}" if parsed.scheme else "no scheme"
        raise StoreUrlError(f"store URL {url!r} has {scheme}: distill_es stores events in SQLite or "
                            "PostgreSQL only", URL_HINT)  # fmt: skip
    return parsed


def sqlite_path(url: str) -> Path | None:
    """The SQLite file a store URL names; None for a PostgreSQL URL."""
    parsed = _parse_url(url)
    if parsed.scheme != "sqlite":
        return None
    path = unquote(parsed.path)
    if path.startswith("//"):  # sqlite:////abs/path (four slashes) names /abs/path
        path = "/" + path.lstrip("/")
    if parsed.netloc or not path or path == "/":
        raise StoreUrlError(f"store URL {url!r} names no SQLite file (use sqlite:///path/to/file: three "
                            "slashes, then the path)", URL_HINT)  # fmt: skip
    return Path(path)


def describe_store(url: str) -> str:
    """The store for a message: its file, or its database and server (never the password)."""
    path = sqlite_path(url)
    if path is not None:
        return f"the event store {path}"
    parsed = _parse_url(url)
    return (f"the PostgreSQL store {parsed.path.lstrip('/')!r} at "
            f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5432}")  # fmt: skip


def store_env(url: str, *, create_tables: bool = True) -> dict[str, str]:
    """eventsourcing environment for a store URL. Without `create_tables` nothing is created: a
    SQLite file that does not exist is a StoreMissing (sqlite would otherwise create it)."""
    env = {
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "CREATE_TABLE": "y" if create_tables else "n",
    }
    parsed = _parse_url(url)
    path = sqlite_path(url)
    if path is not None:
        if create_tables:
            _make_parent(path)
        elif not path.is_file():
            raise StoreMissing(
                f"no event store at {path}: the file does not exist (nothing was created)",
                "check the path given to --store (or $DISTILL_ES_STORE); a store is created by the "
                "first `distill-es run`",
            )
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path), SQLITE_LOCK_TIMEOUT="10"
        )
    else:
        dbname = parsed.path.lstrip("/")
        if not dbname:
            raise StoreUrlError(
                f"store URL {url!r} names no database (postgresql://user@host:port/db)", URL_HINT
            )
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=dbname,
            POSTGRES_HOST=parsed.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parsed.port or 5432),
            POSTGRES_USER=unquote(parsed.username or "postgres"),
            POSTGRES_PASSWORD=unquote(parsed.password or ""),
            POSTGRES_CONNECT_TIMEOUT=str(PG_CONNECT_TIMEOUT),
            POSTGRES_POOL_SIZE="2",
            POSTGRES_MAX_OVERFLOW="4",
        )
    return env


PG_CONNECT_TIMEOUT = 5  # seconds: a server that does not answer is reported, not waited for


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store_fault(exc, f"the event store {path}") or StoreUnavailable(
            f"cannot create the folder {path.parent} for the event store: {exc.strerror or exc}",
            "choose another --store path, or create the folder yourself",
        ) from exc


# --- environment faults ---------------------------------------------------------------------------
# Failures of the machine or the database, told apart by errno, SQLSTATE, or (for sqlite3, which has
# neither) the message text; each becomes one StoreError that says what happened and what to do.
_READ_ONLY = ("readonly database", "read-only file system", "read-only transaction")
_FULL = ("database or disk is full", "no space left on device", "could not extend file", "disk quota")
_UNREACHABLE = ("connection refused", "couldn't get a connection", "timeout expired", "could not connect",
                "could not translate host name", "name or service not known", "connection timed out",
                "server closed the connection", "no route to host", "network is unreachable")  # fmt: skip
_SQLITE_CODES = (("SQLITE_FULL", "full"), ("SQLITE_READONLY", "read_only"), ("SQLITE_IOERR", "io"),
                 ("SQLITE_CANTOPEN", "cannot_open"), ("SQLITE_BUSY", "locked"))  # fmt: skip
_PG_STATES = {"53100": "full", "25006": "pg_read_only", "42P01": "no_tables", "3D000": "no_database",
              "28P01": "denied", "28000": "denied", "42501": "denied", "57P03": "unreachable"}  # fmt: skip


# Only errors of these (the OS, the database drivers, git) can be the machine's fault; a message of
# any other error that happens to say "connection refused" is not looked at.
_ENVIRONMENT_MODULES = ("sqlite3", "eventsourcing", "psycopg", "git")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and its causes, those raised by the OS, a database driver or git only."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) or type(current).__module__.startswith(_ENVIRONMENT_MODULES):
            yield current
        current = current.__cause__ or current.__context__


def _fault_kind(exc: BaseException) -> str | None:
    for link in _chain(exc):
        state = getattr(link, "sqlstate", None)
        if state in _PG_STATES:
            return _PG_STATES[state]
        name = getattr(link, "sqlite_errorname", "")  # SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED, …
        if kind := next((k for prefix, k in _SQLITE_CODES if name.startswith(prefix)), None):
            return kind
        if isinstance(link, OSError) and link.errno in {errno.ENOSPC, errno.EDQUOT}:
            return "full"
        if isinstance(link, OSError) and link.errno == errno.EROFS:
            return "read_only"
        if isinstance(link, OSError) and link.errno in {errno.EACCES, errno.EPERM}:
            return "no_permission"
    text = " ".join(str(link) for link in _chain(exc)).lower()
    if "password authentication failed" in text or ("role " in text and "does not exist" in text):
        return "denied"
    if "database " in text and "does not exist" in text:
        return "no_database"
    for kind, needles in (("read_only", _READ_ONLY), ("full", _FULL), ("unreachable", _UNREACHABLE)):
        if any(needle in text for needle in needles):
            return kind
    if "no such table" in text:
        return "no_tables"
    if "unable to open database file" in text:
        return "cannot_open"
    if "database is locked" in text:
        return "locked"
    if "disk i/o error" in text:  # sqlite's word for a WAL that cannot grow, or a failing disk
        return "io"
    return None


_NEXT = (
    " Nothing of the failed write was stored: once fixed, run the command again (a session stopped"
    " part-way continues with `distill-es resume SESSION`)."
)
_FAULTS: dict[str, tuple[type[StoreError], str, str]] = {
    "read_only": (
        StoreUnavailable,
        "{where} is read-only ({detail})",
        "make the file and its folder writable (chmod, chattr -i, or remount read-write)." + _NEXT,
    ),
    "pg_read_only": (
        StoreUnavailable,
        "{where} is read-only ({detail})",
        "point --store at a writable primary (not a standby), or turn the database's "
        "default_transaction_read_only off." + _NEXT,
    ),
    "no_permission": (
        StoreUnavailable,
        "{where}: permission denied ({detail})",
        "check the permissions of the file and its folder (chmod, chown, chattr -i)." + _NEXT,
    ),
    "full": (
        StoreUnavailable,
        "{where} cannot grow: the disk is full ({detail})",
        "free disk space (or move the store with --store)." + _NEXT,
    ),
    "io": (
        StoreUnavailable,
        "{where} could not be read or written: the disk refused ({detail})",
        "check that the disk has free space and that the file and its folder are writable (chmod, "
        "chattr -i, or remount read-write)." + _NEXT,
    ),
    "cannot_open": (
        StoreUnavailable,
        "cannot open {where} ({detail})",
        "check that the file and its folder exist and are readable and writable",
    ),
    "locked": (
        StoreUnavailable,
        "{where} is locked by another process ({detail})",
        "wait for the other distill-es process to finish, then try again",
    ),
    "unreachable": (
        StoreUnavailable,
        "cannot reach {where} ({detail})",
        "start the database server, or check host and port in --store / $DISTILL_ES_STORE; then try again",
    ),
    "no_database": (
        StoreUnavailable,
        "{where} does not exist on its server ({detail})",
        "create the database (e.g. `createdb NAME`), or fix the name in --store",
    ),
    "denied": (
        StoreUnavailable,
        "{where} refused access ({detail})",
        "check the user and password in --store / $DISTILL_ES_STORE and the database's grants",
    ),
    "no_tables": (
        StoreMissing,
        "{where} holds no distill_es event log yet ({detail})",
        "check --store / $DISTILL_ES_STORE; a store is created by the first `distill-es run` "
        "(a worker store by `distill-es worker --migrate`)",
    ),
}


def store_fault(exc: BaseException, where: str, path: Path | None = None) -> StoreError | None:
    """The StoreError for an environment failure of `where` (read-only, disk full, unreachable, …);
    None when `exc` is not one (a bug, or a domain error: let it through as it is). `path`, the
    file concerned, lets a vague disk I/O error be told as a full disk when it is one."""
    if isinstance(exc, StoreError):
        return exc
    kind = _fault_kind(exc)
    if kind is None:
        return None
    if kind == "io" and path is not None and _disk_is_full(path):
        kind = "full"
    error_type, message, hint = _FAULTS[kind]
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return error_type(message.format(where=where, detail=detail), hint)


def _disk_is_full(path: Path) -> bool:
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW_BYTES
    except OSError:
        return False


FULL_BELOW_BYTES = 64 * 1024  # less free space than a WAL append may need


P = ParamSpec("P")
R = TypeVar("R")


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


DDL_LOCK_KEY = 0x64697374696C6C  # pg_advisory_lock key of table creation ("distill" in hex)


def pg_connect(url: str) -> Any:
    """One direct autocommit connection to the store's database; a server that refuses or does not
    answer is a StoreUnavailable with the server's own reason (refused, no such database, …)."""
    import psycopg

    env = store_env(url, create_tables=False)
    try:
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=PG_CONNECT_TIMEOUT, autocommit=True,
        )  # fmt: skip
    except psycopg.Error as exc:
        raise store_fault(exc, describe_store(url)) or exc from exc


@contextlib.contextmanager
def _pg_probe(url: str) -> Iterator[Any]:
    """A direct connection beside the pool's, closed on the way out (with any session lock it took)."""
    connection = pg_connect(url)
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _asking_the_server_why(url: str) -> Iterator[None]:
    """The pool says only "couldn't get a connection" (after its timeout): on a failure, one direct
    connection gets the server's own reason (refused, no such database, bad password) as a
    StoreUnavailable; if that connection works, the pool's error stands."""
    try:
        yield
    except Exception:
        pg_connect(url).close()
        raise


def _pg_tables_present(app: Application, url: str) -> bool:
    tables = [f"{APP_NAME}_events", f"{APP_NAME}_snapshots"]
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with _asking_the_server_why(url), datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AS ok", tables)
        return bool(cursor.fetchone()["ok"])


def _missing_tables(url: str) -> tuple[str, str]:
    _, message, hint = _FAULTS["no_tables"]
    return message.format(where=describe_store(url), detail="no distill_es_events table"), hint


def is_postgres(url: str) -> bool:
    return _parse_url(url).scheme in {"postgresql", "postgres"}


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
_NOT_PAYLOAD = chain.ENVELOPE_KEYS | {"originator_id", "originator_version", _RAW_PAYLOAD}
_CHAINED = (chain.ChainedEvent, ev.SessionStarted)


def _checked_fold(session: Any, events: Iterable[Any], sid: str = "") -> Any:
    """`_fold` that checks, on the way, that each session event chains to the one before it (the
    snapshot's digest, or the genesis), and turns any event that does not decode or fold into
    `DamagedSession`. Only the events after the snapshot are read, so the check costs one digest
    per event actually folded."""
    version, key = 0, chain.digest_key()
    try:
        for event in events:
            version = event.originator_version
            if isinstance(event, _CHAINED):
                if session is None:
                    sid = str(event.originator_id)
                previous = session.last_digest if session is not None else chain.genesis_digest(sid)
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
    expected = chain.chain_digest(
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
        raw = self.decoded(stored_event)
        event = super().to_domain_event(stored_event)
        event.__dict__[_RAW_PAYLOAD] = {k: v for k, v in raw.items() if k not in _NOT_PAYLOAD}
        return event

    def decoded(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The stored state as written (no upcasting): what the event's digest was computed over."""
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
        does (loads then fold every event; `take_snapshot` still works).

        Without `create_tables` nothing is created: a missing SQLite file (or PostgreSQL tables) is a
        StoreMissing. A server that does not answer, a read-only or full disk: StoreUnavailable."""
        self.url = url
        self.snapshot_every = snapshot_every
        self.never_created = False
        env = store_env(url, create_tables=create_tables)
        # The Application must live as long as the store: dropping it closes its connection pool.
        self.app = self._open(env, create_tables)

    @_store_call
    def _open(self, env: dict[str, str], create_tables: bool) -> SessionApplication:
        if not is_postgres(self.url):
            return SessionApplication(env=env)
        # PostgreSQL: tables are looked for over the pool's own connection (no extra connect on the
        # usual path) and created only when missing, under an advisory lock — concurrent CREATE
        # TABLE IF NOT EXISTS race in the catalog ("tuple concurrently updated").
        with _asking_the_server_why(self.url):
            app = SessionApplication(env={**env, "CREATE_TABLE": "n"})  # connects: type adapters
        try:
            if not _pg_tables_present(app, self.url):
                if not create_tables:
                    raise StoreMissing(*_missing_tables(self.url))
                with _pg_probe(self.url) as probe:
                    probe.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
                    app.recorder.create_table()
                    app.snapshots.recorder.create_table()  # type: ignore[union-attr]
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
    def save(self, session: Session) -> int:
        """Append the session's pending events atomically; return the last notification id."""
        self._refuse_if_never_created()
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

    @_store_call
    def _snapshot(self, session: Session) -> None:
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

    @_store_call
    def find(self, aggregate_id: UUID) -> Any | None:
        """Any aggregate in this store (a training run, a loop, a trigger log) by id, or None."""
        try:
            return self.app.repository.get(aggregate_id, projector_func=_fold)
        except AggregateNotFoundError:
            return None

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
        return _fold(None, self.domain_events(session_id))

    @_store_call
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

    @_store_call
    def stored_events(self, session_id: str | UUID) -> list[StoredEvent]:
        return list(self.app.recorder.select_events(parse_session_id(session_id)))

    def decode_state(self, stored: StoredEvent) -> dict[str, Any]:
        """The raw stored state of an event (no upcasting): what its digest was computed over."""
        return self.app.mapper.decoded(stored)  # type: ignore[attr-defined]  # always a _ChainMapper

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
    previous, key = chain.genesis_digest(sid), chain.digest_key()
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


def open_store(url: str, *, create_tables: bool = True, missing_is_empty: bool = False) -> EventStore:
    """The store at `url`. `missing_is_empty`: a store that was never created (and may not be now)
    reads as an empty one instead of a StoreMissing — a workspace's own default store, before its
    first session."""
    try:
        return EventStore(url, create_tables=create_tables)
    except StoreMissing:
        if create_tables or not missing_is_empty:
            raise
        return EventStore.empty(url)
