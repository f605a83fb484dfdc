"""Errors to exit codes and short messages (CONTRACT "Command line").

0 success (a session resting completed or awaiting_review), 1 the session failed or an outside
failure stopped the command (store unreachable, read-only or full: fix it, run again), 2 usage error
(a bad store URL too), 3 not found (a store a read command was pointed at too), 4 illegal transition
or conflict; 130 interrupted by Ctrl-C. Errors are one or two lines on stderr; `--debug` adds the
traceback.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from distill_es.cli.console import print_error, print_note
from distill_es.domain.benchmark_run.errors import UnknownRef
from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DamagedSession,
    DistillError,
    EditNotFound,
    IllegalTransition,
    InvalidVersion,
    LockLost,
    NotAWorkspace,
    SessionInterrupted,
    SessionNotFound,
    SettingsError,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    TraceNotFound,
    TracesSourceInvalid,
    TracesSourceNotFound,
    VersionNotFound,
    WorkspaceConflict,
    WorkspaceFileInvalid,
    WorkspaceOwnedElsewhere,
)
from distill_es.domain.layout import SETTINGS_FILE


class CliFailure(Exception):
    """A problem the command line itself found (no workspace, ambiguous id): code, message, hint."""

    def __init__(self, code: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, CliFailure):
        return exc.code
    if isinstance(exc, SessionNotFound | StoreMissing | NotAWorkspace | TracesSourceNotFound | TraceNotFound):
        return 3
    if isinstance(exc, StoreUnavailable):
        return 1  # the machine or the database, not the command: fix it and run the command again
    if isinstance(exc, IllegalTransition | ConcurrentSessionWrite | WorkspaceConflict | DamagedSession):
        return 4  # a damaged session: refused like a conflict, nothing was done
    if isinstance(exc, SettingsError | InvalidVersion | TracesSourceInvalid | WorkspaceFileInvalid):
        return 2
    return 1


# The lifecycle's command names, in the words of the `distill-es` commands a person types. A command
# missing here is one the engine performs by itself: a person continues the session with `resume`.
USER_COMMANDS = {
    "approve_edit": "approve", "reject_edit": "reject", "request_rollback": "rollback",
    "roll_back_edit": "rollback", "cancel": "cancel",
}  # fmt: skip


def transition_message(exc: IllegalTransition) -> str:
    """An illegal transition said with user-facing words: no internal command names."""
    verb = USER_COMMANDS.get(exc.command, "continue")
    subject = f"session {exc.session_id}" if exc.session_id else "the session"
    edit = getattr(exc, "edit_id", "")
    reason = getattr(exc, "reason", "")
    because = f" ({reason})" if reason else ""
    possible = list(dict.fromkeys(USER_COMMANDS[c] for c in exc.legal if c in USER_COMMANDS))
    if not possible and exc.legal:  # only the engine's own steps: a person lets it go on
        possible = ["resume"]
    now = ", ".join(possible) if possible else "nothing (its lifecycle has ended)"
    if edit:
        it = f"edit {edit!r} of {subject}: it is {exc.state}{because}"
        return f"cannot {verb} {it}; possible for it now: {now}"
    return f"cannot {verb} {subject}: it is {exc.state}{because}; possible now: {now}"


def _hint_for(exc: BaseException) -> str:
    if isinstance(exc, CliFailure | StoreError | WorkspaceOwnedElsewhere):
        return exc.hint
    if isinstance(exc, TracesSourceNotFound | TracesSourceInvalid):
        return (
            "pass a traces.jsonl, an OpenJarvis traces.db, or a folder holding one (--traces PATH or "
            f"[traces] source in {SETTINGS_FILE}); `distill-es doctor` checks it"
        )
    if isinstance(exc, TraceNotFound):
        return "name a trace of the workspace's traces (traces.jsonl, --traces or [traces] source)"
    if isinstance(exc, NotAWorkspace):
        return "create one with `distill-es init DIR`, or try `distill-es demo`"
    if isinstance(exc, UnknownRef):
        return "`git log` in the workspace lists its commits; WORKTREE names the working tree"
    if isinstance(exc, VersionNotFound):
        return "`distill-es history SESSION` lists the session's versions"
    if isinstance(exc, EditNotFound):
        return "`distill-es show SESSION` lists the session's edits; `distill-es review` the pending ones"
    if isinstance(exc, SessionNotFound):
        return "list this workspace's sessions with `distill-es sessions`"
    if isinstance(exc, IllegalTransition):
        return f"`distill-es show {exc.session_id or 'SESSION'}` shows where the session stands"
    if isinstance(exc, LockLost):
        session = exc.session_id or "SESSION"
        return f"`distill-es resume {session}` goes on from the log once no other process runs it"
    if isinstance(exc, ConcurrentSessionWrite):
        return "another distill-es process is working on this session; wait for it, then try again"
    if isinstance(exc, SettingsError):
        return f"fix {SETTINGS_FILE} (every key is optional; see docs/getting-started.md)"
    if isinstance(exc, SessionInterrupted):
        return "nothing was lost: continue with `distill-es resume SESSION`"
    if isinstance(exc, DamagedSession):
        return ""  # one line: the message names the session and `distill-es verify`
    if not isinstance(exc, DistillError):
        return "this is a bug in distill-es; rerun with --debug to see the traceback"
    return ""


def environment_fault(exc: BaseException) -> BaseException:
    """A StoreError in place of a raw disk or database failure that escaped the store's own
    translation (a blob, a lock file, a git commit on a full disk); any other error as it is."""
    from distill_es.store.faults import store_fault

    if isinstance(exc, DistillError | CliFailure):  # ours already say what happened
        return exc
    filename = getattr(exc, "filename", None)
    where = str(filename) if filename else "a file of the workspace or its state"
    return store_fault(exc, where, Path(filename) if filename else None) or exc


def report_error(exc: BaseException, *, debug: bool) -> int:
    """Print the error as one or two lines (plus the traceback with --debug); return the exit code."""
    exc = environment_fault(exc)
    if debug:
        print_note("".join(traceback.format_exception(exc)))
    message = exc.message if isinstance(exc, CliFailure) else str(exc)
    if isinstance(exc, IllegalTransition):
        message = transition_message(exc)
    elif not isinstance(exc, DistillError | CliFailure):
        message = f"unexpected {type(exc).__name__}: {message}"
    code = exit_code_for(exc)
    print_error(message, _hint_for(exc), code)
    return code
