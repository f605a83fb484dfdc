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

from rich.text import Text

from distill_es.cli.console import err, print_error
from distill_es.domain.benchmark_run.errors import UnknownRef
from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DamagedSession,
    DistillError,
    IllegalTransition,
    NotAWorkspace,
    SessionInterrupted,
    SessionNotFound,
    SettingsError,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    WorkspaceConflict,
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
    if isinstance(exc, SessionNotFound | StoreMissing | NotAWorkspace):
        return 3
    if isinstance(exc, StoreUnavailable):
        return 1  # the machine or the database, not the command: fix it and run the command again
    if isinstance(exc, IllegalTransition | ConcurrentSessionWrite | WorkspaceConflict | DamagedSession):
        return 4  # a damaged session: refused like a conflict, nothing was done
    if isinstance(exc, SettingsError):
        return 2
    return 1


def _hint_for(exc: BaseException) -> str:
    if isinstance(exc, CliFailure | StoreError):
        return exc.hint
    if isinstance(exc, NotAWorkspace):
        return "create one with `distill-es init DIR`, or try `distill-es demo`"
    if isinstance(exc, UnknownRef):
        return "`git log` in the workspace lists its commits; WORKTREE names the working tree"
    if isinstance(exc, SessionNotFound):
        return "list this workspace's sessions with `distill-es sessions`"
    if isinstance(exc, IllegalTransition):
        return f"`distill-es show {exc.session_id or 'SESSION'}` shows where the session stands"
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
        err().print(Text("".join(traceback.format_exception(exc)), style="dim"), soft_wrap=True)
    message = exc.message if isinstance(exc, CliFailure) else str(exc)
    if not isinstance(exc, DistillError | CliFailure):
        message = f"unexpected {type(exc).__name__}: {message}"
    print_error(message, _hint_for(exc))
    return exit_code_for(exc)
