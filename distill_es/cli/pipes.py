"""A closed pipe (`distill-es export --all | head -1`): the command ends quietly with exit 0, as git and
ls do, with no traceback and no "Exception ignored" from the flush at exit. cli/main.py applies it to
every command in one place; rich's consoles (ours and typer's help) re-raise the closed pipe to it
instead of exiting 1 themselves (`reraise_closed_pipes`)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

import typer
from rich.console import Console


def closed_pipe(exc: BaseException) -> bool:
    """The reader of our output went away (`distill-es export --all | head -1`)."""
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)


CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for git, ls or cat cut off by `| head`


def quiet_exit() -> typer.Exit:
    """End quietly with 141 on a closed pipe, as git and ls do (the shell reports them killed by
    SIGPIPE): never 0, since the command did not finish what it was asked (a `verify` that found damage
    must not pass because its reader left), and never 1, which says the session failed. stdout and
    stderr point at /dev/null from here on, so nothing more is written and the flush at exit cannot
    fail ("Exception ignored")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):  # tests' captured streams
                os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)
    return typer.Exit(CLOSED_PIPE)


def flush_quietly() -> None:
    """The last flush of stdout, which a closed pipe makes fail after the command was done."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and not closed_pipe(exc):
            raise
        if isinstance(exc, OSError):
            quiet_exit()


def _reraise(console: Console) -> None:
    console.quiet = True
    raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")


def reraise_closed_pipes() -> None:
    """rich answers a closed pipe with exit 1 of its own (`Console.on_broken_pipe`): make every console
    re-raise it instead, so the command line ends quietly with 0 (idempotent)."""
    Console.on_broken_pipe = _reraise  # type: ignore[method-assign]


def open_missing_streams() -> None:
    """A stdout or stderr closed before we started (`distill-es sessions >&-`): its output goes to
    /dev/null and the command runs to the end, so its exit code is its own (a `verify` that finds
    damage still exits 1), unlike a reader that leaves midway (141)."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
