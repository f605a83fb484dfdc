"""`distill-es dev-servers` (also `python -m distill_es.testing.servers`): the demo world's scripted
teacher and student on 127.0.0.1, until Ctrl-C or SIGTERM (then exit 0).

stdout gets only shell lines (`export NAME=value` and `#` comments), so `. file` of it sets the
environment; with --json, one JSON object instead. What happens meanwhile goes to stderr.
"""

from __future__ import annotations

import errno
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from distill_es.cli.console import print_json, print_note
from distill_es.cli.errors import CliFailure
from distill_es.demo.dev_servers import (
    DEFAULT_STUDENT_PORT,
    DEFAULT_TEACHER_PORT,
    DevServers,
    create_dev_workspace,
    start_dev_servers,
)


def _start(teacher_port: int, student_port: int) -> DevServers:
    try:
        return start_dev_servers(teacher_port, student_port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise CliFailure(
            1,
            f"port {teacher_port} or {student_port} on 127.0.0.1 is taken ({exc.strerror})",
            "choose others with --teacher-port and --student-port (0 picks a free one)",
        ) from None


@contextmanager
def stop_signals() -> Iterator[list[str]]:
    """SIGINT and SIGTERM, caught from here on (before anything is printed: a script may signal as
    soon as it reads the lines); the list gets the name of each that came."""
    received: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for(received: list[str]) -> str:
    while not received:
        time.sleep(0.1)
    return received[0]


def shell_lines(servers: DevServers, home: Path | None) -> list[str]:
    lines = ["# distill_es dev servers on 127.0.0.1: the demo's scripted teacher and student (not models)"]
    env = servers.env()
    if home is not None:
        lines.append(f"# workspace {home}: the demo world's agent, traces and benchmark, pointed at them")
        env["DISTILL_ES_HOME"] = str(home)
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    return lines


def dev_servers(
    teacher_port: Annotated[
        int,
        typer.Option(
            "--teacher-port", metavar="PORT", min=0, max=65535, help="The teacher's port (0: any free one)."
        ),
    ] = DEFAULT_TEACHER_PORT,
    student_port: Annotated[
        int,
        typer.Option(
            "--student-port", metavar="PORT", min=0, max=65535, help="The student's port (0: any free one)."
        ),
    ] = DEFAULT_STUDENT_PORT,
    init: Annotated[
        Path | None,
        typer.Option("--init", metavar="DIR", show_default=False,
                     help="Also create a workspace in DIR with the demo world's agent, traces and benchmark, "
                     "its student pointed at these servers (an ordinary workspace: `run` calls them)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (urls, env, home) instead of shell lines.")
    ] = False,
) -> None:  # fmt: skip
    """Serve the demo's scripted teacher and student on 127.0.0.1 until Ctrl-C, to try the live path
    offline.

    The teacher speaks the Anthropic Messages API, the student OpenAI chat completions, as the real
    ones do. Prints the `export` lines that point distill-es at them (`ANTHROPIC_BASE_URL`,
    `ANTHROPIC_API_KEY`, `DISTILL_ES_STUDENT_URL`), e.g. `distill-es dev-servers > dev.env &` then
    `. ./dev.env`. Ctrl-C or SIGTERM stops them (exit 0).
    """
    with stop_signals() as received:
        servers = _start(teacher_port, student_port)
        try:
            _announce(servers, init, json_output)
            signame = wait_for(received)
            served = f"{servers.teacher.served} teacher and {servers.student.completed} student requests"
            print_note(f"stopped by {signame}: served {served}")
        finally:
            servers.close()


def _announce(servers: DevServers, init: Path | None, json_output: bool) -> None:
    """The workspace (with --init), then the lines that point distill-es at the servers."""
    home = create_dev_workspace(init.expanduser().resolve(), servers.student.base_url) if init else None
    if json_output:
        print_json({"teacher_url": servers.teacher.base_url, "student_url": servers.student.base_url,
                    "env": servers.env(), "home": str(home) if home is not None else None})  # fmt: skip
    else:
        typer.echo("\n".join(shell_lines(servers, home)))
    sys.stdout.flush()  # a script reading a pipe gets the lines now, not when the servers stop
    print_note("serving; Ctrl-C stops the servers")
