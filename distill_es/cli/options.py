"""The options every command shares, once: `--home`, `--json`, `--by`, the session argument, and the root
command's global options (`--home`, `--store`, `--debug`, `--quiet`, `--verbose`) as the commands read
them back."""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from distill_es.cli.console import JSON_ERRORS
from distill_es.domain.enums import AutonomyMode, TriggerKind

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        help="The workspace. Default: the global --home, then $DISTILL_ES_HOME, then the nearest "
        "workspace at or above the current directory.",
        show_default=False,
    ),
]


def _json_errors(ctx: typer.Context, value: bool) -> bool:
    """Under --json, errors too are JSON (cli/console.py), for commands mounted on any app: until the
    command is done (the main app also sets it for the whole invocation, usage errors included)."""
    if value:
        token = JSON_ERRORS.set(True)
        ctx.call_on_close(lambda: JSON_ERRORS.reset(token))
    return value


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        callback=_json_errors,
        help="Print machine-readable JSON to stdout, nothing else; errors as one JSON object on stderr.",
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        metavar="NAME",
        show_default=False,
        help="Who does it (recorded in the log). Default: git's user.name, then $USER.",
    ),
]


def _traces_path(text: str) -> Path:
    """--traces PATH: an empty one is a usage error, not the current directory (Path("") is ".")."""
    if not str(text).strip():
        raise typer.BadParameter("an empty path: name a traces.jsonl, a traces.db or a folder holding one")
    return Path(text)


TracesOption = Annotated[
    Path | None,
    typer.Option(
        "--traces",
        metavar="PATH",
        parser=_traces_path,
        help="Read the traces from here instead: a traces.jsonl, an OpenJarvis traces.db, or a folder "
        "holding one (~/.openjarvis). Default: distill_es.toml \\[traces] source, else the workspace's.",
        show_default=False,
    ),
]
# What starts a session, shared by `run` and `enqueue`.
TriggerOption = Annotated[TriggerKind, typer.Option("--trigger", help="What started this session.")]
TraceIdOption = Annotated[
    list[str] | None,
    typer.Option("--trace-id", metavar="TRACE_ID", show_default=False,
                 help="A trace the session is about (user_flag: exactly one; cluster: any number)."),
]  # fmt: skip
ClusterDescriptionOption = Annotated[
    str | None,
    typer.Option("--cluster-description", metavar="TEXT", show_default=False,
                 help="For --trigger cluster: the failure cluster."),
]  # fmt: skip
AutonomyOption = Annotated[
    AutonomyMode | None,
    typer.Option("--autonomy", help="Override session.autonomy_mode.", show_default=False),
]
SessionArg = Annotated[
    str,
    typer.Argument(metavar="SESSION", help="A session id, or a unique prefix of one.", show_default=False),
]


@dataclass
class Globals:
    """The root command's options (`distill-es --home DIR --store URL --debug COMMAND …`)."""

    home: Path | None = None
    store: str | None = None
    debug: bool = False
    quiet: bool = False  # no progress lines or notes on stderr: results and errors only
    verbose: bool = False  # a progress line for every step, also in logs and pipes


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


# The running invocation's root context, for mounted commands whose engine opener gets no context.
ROOT_CONTEXT: ContextVar[typer.Context | None] = ContextVar("distill_es_cli_root", default=None)


class Number:
    """A number option checked by the command line before anything is opened or recorded: finite
    (nan and inf decide nothing; 1e309 is inf), within [low, high], no `_` digit separators (`1_0`
    is a typo, not 10), and -0 read as 0. A bad value is a usage error (exit 2) naming the option.
    Use it as `typer.Option(parser=Number(…))`, or `.check` in a callback."""

    def __init__(self, low: float = 0.0, high: float | None = None, *, integer: bool = False) -> None:
        self.low, self.high, self.integer = low, high, integer

    def __call__(self, value: object) -> float | int:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.check(value)  # a default, already a number
        text = str(value).strip()
        try:
            if "_" in text:
                raise ValueError(text)
            number: float | int = int(text) if self.integer else float(text)
        except ValueError:
            kind = "a whole number" if self.integer else "a number"
            raise typer.BadParameter(f"{value!r} is not {kind}") from None
        return self.check(number, value)

    def check(self, number: float | int, given: object = None) -> float | int:
        """`number` within the bounds (else a usage error), -0.0 as 0.0."""
        if not math.isfinite(number) or number < self.low or (self.high is not None and number > self.high):
            shown = number if given is None else given
            if self.high is None:
                raise typer.BadParameter(f"must be a finite number at least {self.low:g}, got {shown!r}")
            raise typer.BadParameter(f"must be a number from {self.low:g} to {self.high:g}, got {shown!r}")
        return int(number) if self.integer else float(number) + 0.0  # + 0.0 turns -0.0 into 0.0
