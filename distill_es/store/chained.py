"""Chained events on their way out of the store: the mapper that keeps an upcast event's payload as it
was stored (its digest covers that), and folds that check every digest on the way.

The genesis digest an aggregate's first event chains to is its class's (`genesis_for`): sessions,
loops and trigger logs share one namespace, training runs have their own.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

from eventsourcing.persistence import Mapper, PersistenceError, StoredEvent
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
    expected = chain.chain_digest(
        previous, event.TOPIC, state["originator_version"], state["timestamp"], payload, key
    )
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
    """The library's mapper, except that an event upcast on the way in keeps its payload as stored
    (the digest was computed over that, not over the upcast shape)."""

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        if getattr(cls, "class_version", 1) == 1:
            return super().to_domain_event(stored_event)
        raw = self.decoded(stored_event)
        event = super().to_domain_event(stored_event)
        event.__dict__[RAW_PAYLOAD] = {k: v for k, v in raw.items() if k not in NOT_PAYLOAD}
        return event

    def decoded(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The stored state as written (no upcasting): what the event's digest was computed over."""
        data = stored_event.state
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return self.transcoder.decode(data)


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
