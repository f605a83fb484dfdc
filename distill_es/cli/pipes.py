"""A closed pipe (`distill-es export --all | head -1`): the command ends quietly with exit 0, as git and
ls do, with no traceback and no "Exception ignored" from the flush at exit. cli/main.py applies it to
every command in one place; rich's consoles (ours and typer's help) re-raise the closed pipe to it
instead of exiting 1 themselves (`reraise_closed_pipes`)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
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
    re-raise it instead, so the command line ends quietly (idempotent). rich is imported only when
    something is printed for a person (typer imports it for help and errors), so the patch is made
    when `rich.console` is first imported, or now if it already is."""
    console = sys.modules.get("rich.console")
    if console is not None:
        console.Console.on_broken_pipe = _reraise  # type: ignore[method-assign]
    elif not any(isinstance(finder, _PatchRichConsole) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchRichConsole())


class _PatchRichConsole:
    """An import hook for one module: finds `rich.console` as the path finder does, and patches its
    `Console` right after the module has run, before any code can make a console."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname != "rich.console":
            return None
        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            module.Console.on_broken_pipe = _reraise

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's loader only
        return spec


def open_missing_streams() -> None:
    """A stdout or stderr closed before we started (`distill-es sessions >&-`): its output goes to
    /dev/null and the command runs to the end, so its exit code is its own (a `verify` that finds
    damage still exits 1), unlike a reader that leaves midway (141)."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
