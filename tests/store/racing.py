"""The writer the two-process race runs in each child (a small module: children import little)."""

from __future__ import annotations

from typing import Any

from distill_es.domain.errors import ConcurrentSessionWrite
from distill_es.domain.session.aggregate import Session
from distill_es.store.app import EventStore

ROUNDS = 4  # races per pair of processes


def append_racing(url: str, session_id: str, name: str, barrier: Any, results: Any) -> None:
    """In a child process: each round, load, append three events, wait for the other writer, save."""
    store = EventStore(url, create_tables=False)
    try:
        for round_ in range(ROUNDS):
            session = store.load(session_id)
            for i in range(3):
                teacher_call(session, f"judge/{name}-{round_}-{i}", 0.01)
            barrier.wait(timeout=60)  # both hold a copy of the same version now
            try:
                store.save(session)
                results.put((round_, name, "saved"))
            except ConcurrentSessionWrite as exc:
                results.put((round_, name, f"conflict: {exc}"))
            barrier.wait(timeout=60)  # both are done before either loads again
    except BaseException as exc:
        results.put((-1, name, f"error: {exc!r}"))
        barrier.abort()
    finally:
        store.close()


def teacher_call(session: Session, key: str, cost: float) -> None:
    session.record_teacher_call(
        call_key=key,
        purpose=key.split("/")[0],
        model="claude-opus-4-6",
        request_digest="r" * 64,
        response={"content": []},
        usage={"input_tokens": 100, "output_tokens": 10},
        cost_usd=cost,
    )
