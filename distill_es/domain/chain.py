"""The digest chain every distill_es aggregate shares: canonical JSON, genesis and chained digests
(optionally HMAC-keyed), and the base event and recording mixin that apply them."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.domain.errors import SettingsError

# Keys of a stored event's state that are not part of its payload.
ENVELOPE_KEYS = frozenset({"timestamp", "digest", "class_version", "originator_topic"})


# One encoder for every digest: `json.dumps` with options builds a new encoder per call, which costs
# as much as encoding a small payload (loads recompute a digest per event).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def genesis_digest(session_id: str) -> str:
    """What a session's first event chains to: its own id, so events cannot move between sessions."""
    return hashlib.sha256(f"distill_es/session/{session_id}".encode()).hexdigest()


# An optional key kept outside the database: with it every digest is an HMAC, so a chain recomputed
# without the key no longer verifies (see docs/operations.md, "Tamper evidence").
HMAC_KEY_ENV = "DISTILL_ES_HMAC_KEY"
HMAC_KEY_FILE_ENV = "DISTILL_ES_HMAC_KEY_FILE"


_NO_KEY = b""


def chain_digest(
    previous: str, topic: str, version: int, timestamp: datetime, payload: dict, key: bytes | None = _NO_KEY
) -> str:
    """sha256 over the previous digest, the event's identity, its time and its canonical payload
    (HMAC-SHA256 under the configured key, when there is one; `key` saves a loop looking it up)."""
    material = "\n".join([previous, topic, str(version), timestamp.isoformat(), canonical_json(payload)])
    if key is _NO_KEY:
        key = digest_key()
    if key is not None:
        return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(material.encode()).hexdigest()


def digest_key() -> bytes | None:
    """The HMAC key: `DISTILL_ES_HMAC_KEY`, else the contents of `DISTILL_ES_HMAC_KEY_FILE`, else None."""
    key = os.environ.get(HMAC_KEY_ENV)
    if key:
        return key.encode()
    path = os.environ.get(HMAC_KEY_FILE_ENV)
    return _key_file(path) if path else None


@functools.lru_cache(maxsize=4)
def _key_file(path: str) -> bytes:
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SettingsError(f"{HMAC_KEY_FILE_ENV}={path}: the HMAC key file cannot be read ({exc})") from None
    if not key:
        raise SettingsError(f"{HMAC_KEY_FILE_ENV}={path}: the HMAC key file is empty")
    return key


class ChainedEvent(Aggregate.Event):
    """Base of every non-initial event of every distill_es aggregate (sessions, training runs, loops,
    trigger logs): an explicit topic registered on definition, a chained digest, and an `apply` that
    only hands the event to the aggregate's `evolve`."""

    TOPIC: ClassVar[str]
    digest: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TOPIC" in cls.__dict__:
            register_topic(cls.TOPIC, cls)

    def apply(self, aggregate: Any) -> None:
        aggregate.evolve(self)


class ChainedCreated(ChainedEvent, Aggregate.Created):
    """Base of every aggregate's first event: a `ChainedEvent` (topic, digest, apply) that creates the
    aggregate; its digest chains to the genesis of the aggregate's id. Fields stay in the stored
    order: the library's envelope, `originator_topic`, `digest`, then the payload."""


class ChainedRecording:
    """Mixin for the aggregates: record an event with its digest chained to `last_digest`."""

    last_digest: str
    # What an aggregate's first event chains to (training runs have their own namespace).
    _genesis_digest: ClassVar[Callable[[str], str]] = staticmethod(genesis_digest)

    @classmethod
    def _create_chained(cls, created_class: type[Any], aggregate_id: Any, **payload: Any) -> Any:
        """The aggregate's first event, its digest chained to the genesis digest of its id."""
        at, version = datetime.now(UTC), cls.INITIAL_VERSION  # type: ignore[attr-defined]
        genesis = cls._genesis_digest(str(aggregate_id))
        digest = chain_digest(genesis, created_class.TOPIC, version, at, payload)
        return cls._create(created_class, id=aggregate_id, timestamp=at, digest=digest, **payload)  # type: ignore[attr-defined]

    def _record(self, event_class: type[ChainedEvent], **payload: Any) -> None:
        at = datetime.now(UTC)
        digest = chain_digest(self.last_digest, event_class.TOPIC, self.version + 1, at, payload)  # type: ignore[attr-defined]
        self.trigger_event(event_class, timestamp=at, digest=digest, **payload)  # type: ignore[attr-defined]
