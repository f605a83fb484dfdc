"""The worker's two documented command lines, one behaviour (`run_worker`):

    distill-es --store URL worker [--state-dir DIR] [--migrate] …      (the `worker` command)
    python -m distill_es.worker --store URL --state-dir DIR [--migrate] …   (`main`, argparse)

The second is the older, operations-facing spelling (docs/operations.md): its flags, defaults,
logging and output stay as they were. The workers themselves are distill_es.app.worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from distill_es.cli.console import out, print_json
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import JsonOption, Number, globals_of

if TYPE_CHECKING:
    from distill_es.app.worker import Notes, WorkerNote, WorkerReport

PROG = "python -m distill_es.worker"
DESCRIPTION = "Workers: claim runnable sessions from a shared store and run them."


# Bounds of the numeric options, checked before anything is opened or recorded (a bad value is exit 2):
# a poll or a backoff longer than a day is a typo, and time.sleep refuses nan, inf and negatives.
POLL = Number(0.0, 86400.0)
BACKOFF = Number(0.0, 86400.0)
IDLE_POLLS = Number(0, 1_000_000_000, integer=True)


def usable_state_dir(state_dir: Path) -> str:
    """Why `state_dir` cannot hold the worker's read models ("" when it can): created if missing."""
    if not str(state_dir).strip():
        return "an empty path"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if not state_dir.is_dir():
        return "not a directory"
    if not os.access(state_dir, os.W_OK | os.X_OK):
        return "not writable"
    return ""


def _check_state_dir(state_dir: Path) -> Path:
    why = usable_state_dir(state_dir)
    if why:
        raise typer.BadParameter(f"cannot keep the worker's state in {str(state_dir)!r}: {why}")
    return state_dir


def run_worker(
    store: str,
    state_dir: Path,
    *,
    poll: float,
    exit_when_idle: int | None,
    migrate: bool,
    backoff: float,
    notes: Notes | None = None,
) -> str:
    """Create the tables first if asked, run workers until idle (or forever); the summary line."""
    return summary(
        work(
            store, state_dir, poll=poll, exit_when_idle=exit_when_idle, migrate=migrate, backoff=backoff,
            notes=notes,
        )
    )  # fmt: skip


def work(
    store: str,
    state_dir: Path,
    *,
    poll: float,
    exit_when_idle: int | None,
    migrate: bool,
    backoff: float,
    notes: Notes | None = None,
) -> WorkerReport:
    """Create the tables first if asked, run workers until idle (or forever); what they did."""
    from distill_es.app import worker as workers  # the engine and its SDKs load only when a worker runs
    from distill_es.compose import warm_up, worker_opener

    if migrate:
        workers.migrate(store)
    return workers.work(
        store,
        state_dir,
        open_runner=worker_opener,
        poll_seconds=poll,
        idle_polls_before_exit=exit_when_idle,
        backoff=workers.Backoff(base_seconds=backoff),
        notes=notes,
        warm_up=warm_up,  # once the store answers, before the first claim
    )


def note_line(note: WorkerNote) -> str:
    """A worker's log line in plain text: when, who, what, which session and workspace, how long."""
    from distill_es.adapters.terminal_safe import inert  # workspace paths and errors come from outside

    head = f"{note.at.isoformat(timespec='milliseconds')} worker {note.worker} {note.event}"
    if note.event == "claimed":
        return (
            f"{head} session {note.session_id} workspace {inert(note.workspace)} "
            f"({note.status}, queued {note.queued_seconds:.2f} s)"
        )
    if note.event == "finished":
        why = f": {inert(note.detail)}" if note.detail else ""
        return (
            f"{head} session {note.session_id} workspace {inert(note.workspace)} "
            f"{note.outcome} after {note.run_seconds:.2f} s{why}"
        )
    return f"{head}: {inert(note.detail)}" if note.detail else head


def note_json(note: WorkerNote) -> str:
    """The same line as one JSON object (empty fields left out)."""
    from distill_es.adapters.terminal_safe import json_safe

    data = {k: v for k, v in asdict(note).items() if v not in ("", None)}
    data["at"] = note.at.isoformat(timespec="milliseconds")
    return json_safe(json.dumps(data, ensure_ascii=False, sort_keys=True))


def notes_to_stderr(as_json: bool) -> Notes:
    """Each note as one line on stderr, flushed at once (a supervisor or `tail -f` reads them live)."""

    def write(note: WorkerNote) -> None:
        sys.stderr.write((note_json(note) if as_json else note_line(note)) + "\n")
        sys.stderr.flush()

    return write


def summary(report: WorkerReport) -> str:
    return (
        f"finished {len(report.finished)} sessions, {len(report.interrupted)} interrupted, "
        f"{len(report.backed_off)} backed off after outside failures"
    )


def worker(
    ctx: typer.Context,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", callback=_check_state_dir,
                           help="Where this worker keeps its read models (created if missing).")
    ] = Path(".distill_es-worker"),
    poll: Annotated[float, typer.Option(parser=POLL, metavar="SECONDS",
                                        help="Seconds between polls when there is nothing to run (0-86400).")
    ] = 1.0,
    exit_when_idle: Annotated[
        int | None, typer.Option("--exit-when-idle", parser=IDLE_POLLS, metavar="POLLS",
                                 help="Stop after this many idle polls, 0 or more (default: never).")
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Create the store's tables first (once per store).")] = False,
    backoff: Annotated[
        float, typer.Option(parser=BACKOFF, metavar="SECONDS",
                            help="Seconds to leave a session interrupted by an outside failure alone "
                            "(doubling with each interruption in a row, at most an hour; 0-86400).")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Claim runnable sessions of any workspace from the shared store (--store) and run them.

    One line per session claimed and finished goes to stderr (id, workspace, wait in the queue, run
    time, outcome); with --json each is a JSON object. The summary goes to stdout at exit.

    Several workers may share one PostgreSQL store: the database's advisory locks keep a session (and
    a workspace) to one worker at a time, and a dead worker's sessions are picked up by the others.
    A session interrupted by an outside failure (recorded in its log) is backed off by every worker.
    """
    store = globals_of(ctx).store or os.environ.get("DISTILL_ES_STORE")
    if not store:
        raise CliFailure(
            2, "a worker needs a shared store: pass --store postgresql://… (or DISTILL_ES_STORE)"
        )
    report = work(
        store, state_dir, poll=poll, exit_when_idle=exit_when_idle, migrate=migrate, backoff=backoff,
        notes=notes_to_stderr(as_json),
    )  # fmt: skip
    if as_json:
        print_json(asdict(report))
    else:
        out().print(summary(report))


def _argparse_type(kind: Number, option: str) -> Callable[[str], float | int]:
    """A Number as an argparse type: a bad value is argparse's usage error (exit 2)."""

    def convert(text: str) -> float | int:
        try:
            return kind(text)
        except typer.BadParameter as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    convert.__name__ = option  # argparse names the type in "invalid <name> value"
    return convert


def _parser() -> argparse.ArgumentParser:
    from distill_es.app.worker import BACKOFF_SECONDS

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--store", required=True, help="postgresql://user@host:port/db (or sqlite:///path)")
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="where this worker keeps its read models"
    )
    parser.add_argument(
        "--poll", type=_argparse_type(POLL, "seconds"), default=0.5, help="seconds between polls when idle"
    )
    parser.add_argument(
        "--exit-when-idle", type=_argparse_type(IDLE_POLLS, "polls"), default=None, metavar="POLLS"
    )
    parser.add_argument("--migrate", action="store_true", help="create the store's tables first")
    parser.add_argument(
        "--json", action="store_true", help="log lines on stderr as JSON objects (one per line)"
    )
    parser.add_argument(
        "--backoff",
        type=_argparse_type(BACKOFF, "seconds"),
        default=BACKOFF_SECONDS,
        metavar="SECONDS",
        help="leave a session interrupted by an outside failure alone this long (doubling, capped at 1 h)",
    )
    return parser


class _JsonLogFormatter(logging.Formatter):
    """Under --json every stderr line is one JSON object: log records too (`event` "log")."""

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        from distill_es.adapters.terminal_safe import json_safe

        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        data = {"event": "log", "at": at, "level": record.levelname.lower(), "message": record.getMessage()}
        return json_safe(json.dumps(data, ensure_ascii=False, sort_keys=True))


def _log_to_stderr(as_json: bool = False) -> None:
    """Only our own records: transitions logs every callback at INFO, which costs real CPU here."""
    from distill_es.adapters.terminal_safe import InertFormatter
    from distill_es.app.worker import log

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:  # messages quote errors from outside: print them inert
        handler.setFormatter(
            _JsonLogFormatter() if as_json else InertFormatter("%(asctime)s %(name)s %(message)s")
        )
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """`python -m distill_es.worker`: argparse flags, log lines on stderr, the summary on stdout."""
    parser = _parser()
    args = parser.parse_args(argv)
    why = usable_state_dir(args.state_dir)
    if why:  # checked before anything is opened or recorded, like every other flag
        where = str(args.state_dir)
        parser.error(f"argument --state-dir: cannot keep the worker's state in {where!r}: {why}")
    _log_to_stderr(args.json)
    line = run_worker(
        args.store,
        args.state_dir,
        poll=args.poll,
        exit_when_idle=args.exit_when_idle,
        migrate=args.migrate,
        backoff=args.backoff,
        notes=notes_to_stderr(args.json),
    )
    print(line, flush=True)
    return 0
