"""Chained events on their way out of the store: the mapper that keeps an upcast event's payload as it
was stored (its digest covers that), and folds that check every digest on the way.

The genesis digest an aggregate's first event chains to is its class's (`genesis_for`): sessions,
loops and trigger logs share one namespace, training runs have their own.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Mapper, PersistenceError, StoredEvent, find_id_convertor
from eventsourcing.utils import resolve_topic

from distill_es.domain import chain
from distill_es.domain.errors import DamagedSession
from distill_es.domain.session import events as ev


def fold(session: Any, events: Iterable[Any]) -> Any:
    """The library's projector, minus its per-event `isinstance` against a runtime Protocol (an
    assert that costs more than folding the event itself): our events are our own classes."""
    for event in events:
        event.__dict__.pop(RAW_PAYLOAD, None)
        session = event.mutate(session)
    return session


# Where `ChainMapper` keeps an upcast event's payload as it was stored (its digest covers that).
RAW_PAYLOAD = "__distill_raw_payload__"
NOT_PAYLOAD = chain.ENVELOPE_KEYS | {"originator_id", "originator_version", RAW_PAYLOAD}
CHAINED = (chain.ChainedEvent, ev.SessionStarted)


def checked_fold(session: Any, events: Iterable[Any], sid: str = "") -> Any:
    """`fold` that checks, on the way, that each session event chains to the one before it (the
    snapshot's digest, or the genesis), and turns any event that does not decode or fold into
    `DamagedSession`. Only the events after the snapshot are read, so the check costs one digest
    per event actually folded."""
    version, key = 0, chain.digest_key()
    try:
        for event in events:
            version = event.originator_version
            if isinstance(event, CHAINED):
                if session is None:
                    sid = str(event.originator_id)
                previous = session.last_digest if session is not None else chain.genesis_digest(sid)
                if not chains_to(previous, event, key):
                    raise DamagedSession(
                        str(event.originator_id), unchained(previous, event, key), "unchained"
                    )
                event.__dict__.pop(RAW_PAYLOAD, None)
            session = event.mutate(session)
    except (DamagedSession, PersistenceError):
        raise
    except Exception as exc:  # hostile stored bytes: any failure to decode or fold is damage
        sid = str(session.id) if session is not None else sid
        where = f"event {version}" if version else "its first event"
        raise DamagedSession(
            sid, f"{where} cannot be read back: {type(exc).__name__}: {short(exc)}", kind="unreadable"
        ) from exc
    return session


def chains_to(previous: str, event: Any, key: bytes | None) -> bool:
    """Whether `event`'s recorded digest is the one computed from `previous` and its own content."""
    state = event.__dict__
    payload = state.get(RAW_PAYLOAD)
    if payload is None:
        payload = {k: v for k, v in state.items() if k not in NOT_PAYLOAD}
    try:
        expected = chain.chain_digest(
            previous, event.TOPIC, state["originator_version"], state["timestamp"], payload, key
        )
    except (KeyError, TypeError, ValueError, AttributeError):  # a payload no JSON digest covers
        return False
    return hmac.compare_digest(expected, str(state.get("digest")))


def unchained(previous: str, event: Any, key: bytes | None) -> str:
    """Why `event` does not chain, saying so when the HMAC key is what differs."""
    reason = f"event {event.originator_version} does not chain to the one before it"
    if key is not None and chains_to(previous, event, None):
        reason += " under the HMAC key: it was recorded (or rewritten) without it"
    return reason


def short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ChainMapper(Mapper):  # type: ignore[type-arg]
    """The library's mapper, except that every stored event is checked to be one on the way out
    (`DamagedSession`, kind `undecodable`, when its bytes, shape, fields or their types are not an
    event's), and an event upcast on the way in keeps its payload as stored (the digest was computed
    over that, not over the upcast shape). The one decode path: nothing else reads stored state."""

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """The library's conversion, on a state decoded (once) and checked by `decoded`."""
        cls = _event_class(stored_event)
        if cls is None:
            raise _undecodable(stored_event, f"no event type is registered as {stored_event.topic!r}")
        raw = self.decoded(stored_event)
        old_shape = getattr(cls, "class_version", 1) != 1
        state = dict(raw) if old_shape else raw  # an upcast must not change what the digest covers
        try:
            convert = find_id_convertor(cls, type(stored_event.originator_id))  # type: ignore[arg-type]
            state["originator_id"] = convert(stored_event.originator_id)
            state["originator_version"] = stored_event.originator_version
            class_version = getattr(cls, "class_version", 1)
            from_version = state.pop("class_version", 1)
            while from_version < class_version:
                getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
                from_version += 1
        except Exception as exc:  # an old shape the upcasters cannot take
            raise _undecodable(stored_event, exc) from exc
        if old_shape:
            check_event_state(stored_event, cls, state)  # the upcast shape must be a valid event too
            state[RAW_PAYLOAD] = {k: v for k, v in raw.items() if k not in NOT_PAYLOAD}
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def decoded(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The stored state as written (no upcasting): what the event's digest was computed over.
        `DamagedSession` (kind `undecodable`) when it is not an event's state."""
        try:
            data = stored_event.state
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = self.transcoder.decode(data)
        except Exception as exc:
            raise _undecodable(stored_event, exc) from exc
        cls = _event_class(stored_event)
        if getattr(cls, "class_version", 1) != 1:  # an old shape: its fields are the upcasters' business
            check_envelope(stored_event, state)
        else:
            check_event_state(stored_event, cls, state)
        return state  # type: ignore[no-any-return]


def _undecodable(stored: StoredEvent, why: BaseException | str) -> DamagedSession:
    reason = why if isinstance(why, str) else f"{type(why).__name__}: {short(why)}"
    where = f"event {stored.originator_version}"
    return DamagedSession(
        str(stored.originator_id), f"{where} is not a valid event ({reason})", "undecodable"
    )


def _event_class(stored: StoredEvent) -> type | None:
    try:
        return resolve_topic(stored.topic)  # type: ignore[no-any-return]
    except Exception:
        return None  # a topic no class is registered under: the row says nothing we can check


def check_envelope(stored: StoredEvent, state: Any) -> None:
    """A stored state must be an object with string keys and an aware-or-naive datetime `timestamp`."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise _undecodable(stored, f"its state is a {type(state).__name__}, not an object")
    if not isinstance(state.get("timestamp"), datetime):
        raise _undecodable(stored, "it has no valid timestamp")


def check_event_state(stored: StoredEvent, cls: type | None, state: Any) -> None:
    """`DamagedSession` unless `state` holds every field `cls` requires, each of a type it allows
    (only plain annotations are checked: str, int, float, bool, dict, list, None and unions of them)."""
    check_envelope(stored, state)
    if cls is None:
        return
    required, types = _fields_of(cls)
    missing = sorted(name for name in required if name not in state)
    if missing:
        raise _undecodable(stored, f"{cls.__name__} lacks {', '.join(missing)}")
    for name, allowed in types:
        if name in state and not isinstance(state[name], allowed):
            kind = type(state[name]).__name__
            raise _undecodable(stored, f"{cls.__name__}.{name} is a {kind}")


_PLAIN = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (dict,),
          "list": (list,), "None": (type(None),)}  # fmt: skip
_SET_BY_MAPPER = frozenset({"originator_id", "originator_version"})


@functools.lru_cache(maxsize=256)
def _fields_of(cls: type) -> tuple[frozenset[str], tuple[tuple[str, tuple[type, ...]], ...]]:
    """(fields a stored state must carry, (field, allowed types) for plainly annotated ones)."""
    if not dataclasses.is_dataclass(cls):
        return frozenset(), ()
    required, types = set(), []
    for field in dataclasses.fields(cls):
        if field.name in _SET_BY_MAPPER:
            continue
        no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if no_default:
            required.add(field.name)
        allowed = _plain_types(field.type)
        if allowed is not None:
            types.append((field.name, allowed))
    return frozenset(required), tuple(types)


def _plain_types(annotation: Any) -> tuple[type, ...] | None:
    if not isinstance(annotation, str):
        return None
    allowed: tuple[type, ...] = ()
    for part in annotation.split("|"):
        base = part.strip().split("[", 1)[0]
        if base not in _PLAIN:
            return None  # Any, a class, a Literal…: not checked here (the fold and the digest are)
        allowed += _PLAIN[base]
    return allowed


def genesis_for(aggregate_topic: str | None) -> Callable[[str], str]:
    """The genesis digest function of the aggregate class stored under `aggregate_topic` (the
    `originator_topic` of its first event); sessions' when the topic is unknown or missing."""
    try:
        cls = resolve_topic(aggregate_topic) if aggregate_topic else None
    except Exception:  # a topic no class is registered under: a damaged row, reported elsewhere
        cls = None
    genesis: Callable[[str], str] = getattr(cls, "_genesis_digest", chain.genesis_digest)
    return genesis


def check_chain(sid: str, events: list[Any]) -> None:
    """Each event must be there and chain to the one before (the first to its class's genesis)."""
    first = getattr(events[0], "originator_topic", None) if events else None
    previous, key = genesis_for(first)(sid), chain.digest_key()
    for expected_version, event in enumerate(events, start=1):
        if event.originator_version != expected_version:
            raise DamagedSession(sid, f"event {expected_version} is missing", kind="unchained")
        if not chains_to(previous, event, key):
            raise DamagedSession(sid, unchained(previous, event, key), kind="unchained")
        previous = event.digest
