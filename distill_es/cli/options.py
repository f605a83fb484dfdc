"""The options every command shares, once: `--home`, `--json`, the session argument, and the root
command's global options (`--home`, `--store`, `--debug`) as the commands read them back."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

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
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON to stdout, nothing else.")
]
TracesOption = Annotated[
    Path | None,
    typer.Option(
        "--traces",
        metavar="PATH",
        help="Read the traces from here instead: a traces.jsonl, an OpenJarvis traces.db, or a folder "
        "holding one (~/.openjarvis). Default: distill_es.toml [traces] source, else the workspace's.",
        show_default=False,
    ),
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


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


# The running invocation's root context, for mounted commands whose engine opener gets no context.
ROOT_CONTEXT: ContextVar[typer.Context | None] = ContextVar("distill_es_cli_root", default=None)
