"""`distill-es enqueue`: record a session for the workers without running it (the queue is the store's
`initiated` sessions; `distill-es worker` runs them, `sessions --status initiated` lists them)."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Annotated

import typer

from distill_es.cli.console import out
from distill_es.cli.doctor import require_preflight
from distill_es.cli.driving import print_view
from distill_es.cli.engines import open_engine, resolve_home
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import (
    AutonomyOption,
    ClusterDescriptionOption,
    HomeOption,
    JsonOption,
    Number,
    TraceIdOption,
    TriggerOption,
    globals_of,
)
from distill_es.cli.sessions import build_trigger
from distill_es.domain.errors import SessionBusy
from distill_es.domain.vocabulary import AutonomyMode, Trigger, TriggerKind

if TYPE_CHECKING:
    from distill_es.api import Engine

# A workspace whose own files are wrong is a usage error (fix them, enqueue again); a store or git
# that does not work stays an outside failure (1), as for `run`.
WORKSPACE_CHECKS = {"config", "benchmark", "traces"}


def enqueue(
    ctx: typer.Context,
    home: HomeOption = None,
    trigger: TriggerOption = TriggerKind.ON_DEMAND,
    trace_id: TraceIdOption = None,
    cluster_description: ClusterDescriptionOption = None,
    autonomy: AutonomyOption = None,
    wait: Annotated[
        float,
        typer.Option("--wait", metavar="SECONDS", parser=Number(0.0, 86400.0),
                     help="How long to wait while another process holds the workspace (starting or "
                     "running a session) before giving up with exit 4 (0-86400)."),
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Record a session for the workers to run, and print its id (nothing else happens here).

    The session waits as `initiated` until a `distill-es worker` on the same store picks it up;
    `distill-es sessions --status initiated` lists the queue with how long each session has waited.
    The workspace is checked first, as by `run`: nothing is recorded when a file does not parse (exit 2),
    the store or git does not work (exit 1), or the workspace belongs to another store (exit 4).
    """
    path = resolve_home(ctx, home)
    chosen = build_trigger(trigger, list(trace_id or []), cluster_description)
    try:
        require_preflight(path, globals_of(ctx).store)
    except CliFailure as failure:
        if failure.message.removeprefix("not starting a session: ").split(":")[0] in WORKSPACE_CHECKS:
            message = failure.message.replace("not starting", "not queueing")
            raise CliFailure(2, message, failure.hint) from None
        raise
    with open_engine(ctx, path) as engine:  # no teacher, no student: a worker builds its own
        session_id = _start_waiting(engine, chosen, autonomy, wait)
        view = engine.get(session_id) if as_json else None
    if view is not None:
        print_view(view, as_json=True)
    else:
        out().print(session_id, soft_wrap=True)


def _start_waiting(engine: Engine, trigger: Trigger, autonomy: AutonomyMode | None, wait: float) -> str:
    """`engine.start`, tried again while the workspace lock is held: a start holds it for a moment
    (many enqueues at once take turns), a running session for as long as it runs."""
    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        try:
            return engine.start(trigger, autonomy=autonomy)
        except SessionBusy:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause * (0.5 + random.random()))  # jitter: racers do not retry in lock-step
            pause = min(pause * 2, 1.0)
