"""Workers: claim runnable sessions from a shared store and run them.

Any number of workers may share one PostgreSQL store. They coordinate only through the database:
`Engine.run` holds a session-level advisory lock for the session and one for its workspace, so two
workers never run the same session (or two sessions on one workspace) at once. The server drops a
dead worker's locks with its connection, so another worker picks its session up on its next poll.

    python -m distill_es.worker --store postgresql://postgres@127.0.0.1:5432/db --state-dir DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_es.domain.errors import DamagedSession, DistillError, SessionBusy, SessionInterrupted
from distill_es.engine import Engine
from distill_es.store.app import EventStore
from distill_es.store.projections import SessionIndex
from distill_es.terminal_safe import InertFormatter

RUNNABLE = ("initiated", "diagnosing", "planning", "executing")
log = logging.getLogger("distill_es.worker")

EngineOpener = Callable[[Path, str], Engine]


def default_opener(home: Path, store_url: str) -> Engine:
    return Engine.open(home, store_url=store_url, create_tables=False)


def migrate(store_url: str) -> None:
    """Create the store's tables once, before workers start (they run with table creation off, so
    several starting at the same moment never race on DDL)."""
    EventStore(store_url, create_tables=True).close()


@dataclass
class WorkerReport:
    finished: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    busy_skips: int = 0
    damaged: list[str] = field(default_factory=list)  # skipped for this worker's lifetime


def runnable_sessions(index: SessionIndex) -> list[dict[str, Any]]:
    """Sessions not yet at rest, oldest first (fairness: a queue, not a stack)."""
    rows = [row for status in RUNNABLE for row in index.rows(status=status)]
    return sorted(rows, key=lambda row: (row["started_at"], row["session_id"]))


def work(
    store_url: str,
    state_dir: Path,
    *,
    open_engine: EngineOpener = default_opener,
    poll_seconds: float = 0.5,
    idle_polls_before_exit: int | None = None,
    max_sessions: int | None = None,
) -> WorkerReport:
    """Run sessions until idle for `idle_polls_before_exit` polls (None: forever) or `max_sessions` done."""
    store = EventStore(store_url, create_tables=False)
    index = SessionIndex(Path(state_dir) / "worker-views.sqlite", store)
    report = WorkerReport()
    idle = 0
    try:
        while max_sessions is None or len(report.finished) < max_sessions:
            ran = False
            busy_workspaces: set[str] = set()  # one busy session there means the workspace is taken
            for row in runnable_sessions(index):
                if row["workspace"] in busy_workspaces or row["session_id"] in report.damaged:
                    continue
                if _run_one(row, store_url, open_engine, report):
                    ran = True
                    break  # re-read the queue: others may have finished sessions meanwhile
                busy_workspaces.add(row["workspace"])
            if ran:
                idle = 0
                continue
            idle += 1
            if idle_polls_before_exit is not None and idle >= idle_polls_before_exit:
                break
            time.sleep(poll_seconds)
    finally:
        store.close()
    return report


def _run_one(row: dict[str, Any], store_url: str, open_engine: EngineOpener, report: WorkerReport) -> bool:
    session_id = row["session_id"]
    engine = open_engine(Path(row["workspace"]), store_url)
    try:
        session = engine.run(session_id)
    except SessionBusy:
        report.busy_skips += 1  # another worker holds it (or its workspace): try the next one
        return False
    except DamagedSession as exc:
        log.error("session %s skipped: %s", session_id, exc)  # no retry can mend a damaged log
        report.damaged.append(session_id)
        return False
    except SessionInterrupted as exc:
        log.warning("session %s interrupted: %s", session_id, exc)
        report.interrupted.append(session_id)
        return False
    except DistillError as exc:
        log.error("session %s could not run: %s", session_id, exc)
        report.interrupted.append(session_id)
        return False
    finally:
        engine.close()
    log.info("session %s rests %s", session_id, session.status.value)
    report.finished.append(session_id)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill_es.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="postgresql://user@host:port/db (or sqlite:///path)")
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="where this worker keeps its read models"
    )
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls when idle")
    parser.add_argument("--exit-when-idle", type=int, default=None, metavar="POLLS")
    parser.add_argument("--migrate", action="store_true", help="create the store's tables first")
    args = parser.parse_args(argv)
    # Only our own records: transitions logs every callback at INFO, which costs real CPU here.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:  # messages quote errors from outside: print them inert
        handler.setFormatter(InertFormatter("%(asctime)s %(name)s %(message)s"))
    log.setLevel(logging.INFO)
    if args.migrate:
        migrate(args.store)
    report = work(
        args.store, args.state_dir, poll_seconds=args.poll, idle_polls_before_exit=args.exit_when_idle
    )
    print(f"finished {len(report.finished)} sessions, {len(report.interrupted)} interrupted", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
