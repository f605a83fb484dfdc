"""Where the command line prints: the consoles for stdout and stderr, JSON output, error lines."""

from __future__ import annotations

import json
import os
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import typer

from distill_es.adapters.terminal_safe import inert, json_safe

if TYPE_CHECKING:  # rich is imported when something is printed for a person: --json output never loads it
    from rich.console import Console


def _console(stderr: bool = False) -> Console:
    """A console on the current stream (CliRunner swaps them per call). Pipes and logs get 120
    columns unless $COLUMNS says otherwise: rich's 80 would squeeze the edits table's reasons out.
    Outside text is printed inert (no markup, control characters escaped): see terminal_safe."""
    from distill_es.adapters.terminal_safe import SafeConsole

    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return SafeConsole(file=stream, width=120 if wide else None)


def out() -> Console:
    return _console()


def err() -> Console:
    return _console(stderr=True)


def print_json(data: Any) -> None:
    """JSON alone on stdout (no rich: nothing may wrap or colour it)."""
    typer.echo(json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


# Set for the whole invocation when `--json` is on its command line (cli/main.py), or by a command's own
# --json option: errors are then one JSON object on stderr, so a script reads them as it reads results.
JSON_ERRORS: ContextVar[bool] = ContextVar("distill_es_json_errors", default=False)


class ErrorsWritten:
    """Whether this invocation has written its error yet (cli/main.py makes one per invocation)."""

    def __init__(self) -> None:
        self.any = False


# Under --json an invocation writes exactly one error object: the first; a non-zero exit that wrote none
# gets one from cli/main.py.
errors_written: ContextVar[ErrorsWritten | None] = ContextVar("distill_es_errors_written", default=None)


def print_error(message: str, hint: str = "", code: int = 1) -> None:
    """`error: …` and, when there is one, `hint: …` on stderr: one inert line each (messages quote
    edit ids, file lines, server replies). Under --json: `{"error", "exit_code"[, "hint"]}` instead,
    once per invocation."""
    written = errors_written.get()
    if JSON_ERRORS.get():
        if written is not None:
            if written.any:
                return
            written.any = True
        data: dict[str, Any] = {"error": message, "exit_code": code}
        if hint:
            data["hint"] = hint
        typer.echo(json_safe(json.dumps(data, ensure_ascii=False, default=str)), err=True)
        return
    print_note(f"error: {inert(message)}", style="bold red")
    if hint:
        print_note(f"hint: {inert(hint)}", style="")


def print_note(line: str, style: str = "dim") -> None:
    """One styled line on stderr (never parsed as markup; outside text in it made inert by the caller)."""
    from rich.text import Text

    err().print(Text(line, style=style), soft_wrap=True)
