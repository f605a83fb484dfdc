"""`distill-es queue`: the workers' queue on a store — queued, running, waiting to resume, drained.

distill-es --store postgresql://… queue [--json]     (or DISTILL_ES_STORE; else the workspace's store)
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from distill_es.cli.console import out, print_json
from distill_es.cli.engines import resolve_home
from distill_es.cli.options import JsonOption, globals_of
from distill_es.domain.layout import STATE_DIR


def queue(
    ctx: typer.Context,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Where a worker keeps its read models (read, never created).")
    ] = Path(".distill_es-worker"),
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Show the queue of the shared store (--store): sessions queued (initiated, not running) and the
    oldest one's age, sessions running (claimed by a worker or run in a terminal), sessions under way
    that nobody runs (waiting to resume), sessions finished in the last minute and 5 minutes, and the
    drain rate (sessions per minute over the last 5 minutes). Reads only."""
    from distill_es.app.queue_status import queue_status
    from distill_es.store.app import EventStore
    from distill_es.store.locks import Claims, lock_taken, session_lock
    from distill_es.store.projections import SessionIndex
    from distill_es.store.urls import default_store_url, describe_store

    url = globals_of(ctx).store or os.environ.get("DISTILL_ES_STORE")
    if not url:
        url = default_store_url(resolve_home(ctx, None))
    store = EventStore(url, create_tables=False)
    claims = Claims(url)
    try:
        index = SessionIndex(state_dir / "queue-views.sqlite", store, create=False)
        taken = claims.taken()

        def running(row: dict[str, Any]) -> bool:
            return lock_taken(taken, Path(row["workspace"]) / STATE_DIR, session_lock(row["session_id"])[0])

        status = {"store": describe_store(url), **queue_status(index, running, datetime.now(UTC))}
    finally:
        claims.close()
        store.close()
    if as_json:
        print_json(status)
        return
    oldest = status["oldest_queued_age_seconds"]
    lines = [
        f"store {status['store']}",
        f"queued {status['queued']}" + (f" (oldest {oldest:.0f} s)" if oldest is not None else ""),
        f"running {status['running']}",
        f"waiting to resume {status['waiting_to_resume']}",
        f"finished {status['finished_last_minute']} in the last minute, "
        f"{status['finished_last_5_minutes']} in the last 5 minutes "
        f"(drain rate {status['drain_rate_per_minute']:g} per minute)",
    ]
    for line in lines:
        out().print(line, highlight=False)
