"""Finding the workspace, opening the engine on it, and resolving session ids: the one way every
command (the mounted loop, transfer and training groups too) gets from its options to an engine."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer

from distill_es.cli import collector
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import ROOT_CONTEXT, globals_of
from distill_es.config.paths import resolve
from distill_es.domain.errors import SessionNotFound
from distill_es.domain.layout import SETTINGS_FILE

if TYPE_CHECKING:  # the engine pulls in the anthropic and openai SDKs: imported only when a command needs it
    from distill_es.api import Engine
    from distill_es.cli.progress import StepProgress
    from distill_es.ports import TraceSource

DEMO_MARKER = "# distill_es demo settings"
ID_LENGTH = 36  # a session id: a UUID in its canonical form


def resolve_home(ctx: typer.Context, home: Path | None) -> Path:
    """--home (command, then global), then $DISTILL_ES_HOME (`~` and `$VARS` expanded in both), then
    the nearest workspace at or above the current directory, as git finds its repository."""
    from distill_es.workspace.scaffold import is_workspace  # the settings models: not for --help

    chosen = home or globals_of(ctx).home or os.environ.get("DISTILL_ES_HOME") or None
    if chosen is not None:
        path = resolve(chosen)
        if not is_workspace(path):
            raise CliFailure(
                3,
                f"{path} is not a distill_es workspace (it needs config.toml and {SETTINGS_FILE})",
                f"create one with `distill-es init {shlex.quote(str(path))}`, or try `distill-es demo`",
            )
        return path
    found = find_workspace(Path.cwd())
    if found is not None:
        return found
    raise CliFailure(
        2,
        "no workspace: pass --home DIR or set DISTILL_ES_HOME (neither the current directory nor any "
        "folder above it is a workspace)",
        "create one with `distill-es init DIR`, or try `distill-es demo` for an offline example",
    )


def find_workspace(start: Path) -> Path | None:
    """The nearest workspace at `start` or above it; None when there is none up to the root."""
    from distill_es.workspace.scaffold import is_workspace

    here = start.resolve()
    for folder in (here, *here.parents):
        if is_workspace(folder):
            return folder
    return None


def is_demo(home: Path) -> bool:
    path = home / SETTINGS_FILE
    try:  # bytes: a settings file that is not UTF-8 is reported by the settings check, not here
        return path.read_bytes().startswith(DEMO_MARKER.encode())
    except OSError:
        return False


def _open_demo(
    home: Path, store: str | None, teacher: Any, progress: StepProgress | None, traces: TraceSource | None
) -> Engine:
    """The demo's engine (shipped cassette + DemoStudent), so demo follow-ups stay offline."""
    from distill_es.api import Engine
    from distill_es.demo import world
    from distill_es.demo.run import CASSETTE, open_demo_engine

    if store is None:
        return open_demo_engine(home, teacher=teacher, traces=traces, **observers(progress))
    # open_demo_engine takes no store URL; build the same ports with the chosen store.
    from distill_es.adapters.cassette import CassetteTeacher

    chosen = teacher if teacher is not None else CassetteTeacher(CASSETTE)
    return Engine.open(
        home, teacher=chosen, student=world.DemoStudent(home), store_url=store, traces=traces,
        **observers(progress),
    )  # fmt: skip


def traces_from(path: Path | None) -> TraceSource | None:
    """The source `--traces PATH` names (`~`, `$VARS` expanded; relative to the current directory),
    opened now so a wrong path stops the command before anything is recorded (missing: exit 3; not a
    traces source: exit 2)."""
    if path is None:
        return None
    from distill_es.adapters.traces import FLAG_ORIGIN, open_source_file

    return open_source_file(resolve(path), FLAG_ORIGIN)


def checked_traces(home: Path, flag: Path | None) -> TraceSource | None:
    """The traces a session-starting command reads, opened and read once now, before it records
    anything: `--traces`, else `[traces] source` (None: the workspace's own files, which the preflight
    checks). Missing: exit 3; unreadable or not traces: exit 2 — the message names the file and whether
    the flag or the setting named it. Settings that do not load are a usage error (2) as always."""
    from distill_es.adapters.traces import FLAG_ORIGIN, SETTING_ORIGIN, checked_source
    from distill_es.config.settings import Settings

    if flag is not None:
        return checked_source(resolve(flag), FLAG_ORIGIN)
    source = Settings.load(home).traces_source(home)
    return checked_source(source, SETTING_ORIGIN) if source is not None else None


def build_engine(
    ctx: typer.Context,
    home: Path,
    *,
    drives: bool = False,
    teacher: Any = None,
    progress: StepProgress | None = None,
    store: str | None = None,
    read_only: bool = False,
    traces: Path | None = None,
    own: bool | None = None,
    source: TraceSource | None = None,
) -> Engine:
    """The engine on `home` (and `store`, else the global --store). Commands that drive a session
    (`drives`) on a demo workspace get the demo's teacher and student; read commands never build a
    teacher or student at all, and `read_only` ones create no store, table or folder either.
    `traces` (--traces) replaces the workspace's traces source; `source`, already opened, replaces both.
    `own=False`: the store need not be the workspace's owner (`cancel` of a session stranded in
    another store)."""
    from distill_es.api import Engine

    store = store or globals_of(ctx).store
    source = source if source is not None else traces_from(traces)
    if drives and is_demo(home):
        engine = _open_demo(home, store, teacher, progress, source)
    else:
        engine = Engine.open(
            home, teacher=teacher, store_url=store, create_tables=not read_only, traces=source,
            own=own, **observers(progress),
        )  # fmt: skip
    if progress is not None:
        progress.unpriced = unpriced_teacher(engine)
    return engine


def unpriced_teacher(engine: Engine) -> str | None:
    """The configured teacher model when neither the price table nor [pricing] knows it."""
    from distill_es.adapters.pricing import overrides_from, price_for

    settings = engine.settings
    model = settings.teacher.model
    pricing = overrides_from(settings.recorded().get("pricing"))
    return None if price_for(model, pricing).known else model


def observers(progress: StepProgress | None) -> dict[str, Any]:
    """The engine's observers for the live display: every step, every task scored, every retry wait."""
    if progress is None:
        return {}
    return {"on_step": progress, "on_scoring": progress.scoring, "on_wait": progress.waiting}


@contextmanager
def open_engine(ctx: typer.Context, home: Path, **options: Any) -> Iterator[Engine]:
    """`build_engine`, closed when the command is done."""
    engine = build_engine(ctx, home, **options)
    collector.settle()  # the engine's modules are imported too
    try:
        yield engine
    finally:
        engine.close()


def resolve_session(engine: Engine, ref: str) -> str:
    """A full id as given; a prefix resolved against this workspace's sessions."""
    ref = ref.strip().lower()
    if not ref:
        raise CliFailure(2, "the session id is empty", "list sessions with `distill-es sessions`")
    try:
        return str(UUID(ref))
    except ValueError:
        pass
    if len(ref) > ID_LENGTH:  # not an id nor a prefix of one: say so without echoing all of it
        raise CliFailure(
            2, f"{ref[:ID_LENGTH]!r}… ({len(ref):,} characters) is not a session id or prefix (an id has "
            f"{ID_LENGTH})", "list sessions with `distill-es sessions`",
        )  # fmt: skip
    matches = engine.session_ids(prefix=ref)  # damaged ones too
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SessionNotFound(f"no session of {engine.home} has an id starting with {ref!r}")
    shown = ", ".join(m[:13] for m in matches[:5]) + (" …" if len(matches) > 5 else "")
    raise CliFailure(
        2, f"session prefix {ref!r} is ambiguous: it matches {len(matches)} sessions ({shown})",
        "give more characters of the id",
    )  # fmt: skip


# --- the openers the mounted command groups are given ----------------------------------------------------


@contextmanager
def read_only_engine(ctx: typer.Context, home: Path) -> Iterator[Engine]:
    """The engine as read commands open it, its SQLite event store opened with mode=ro besides: a
    write could not reach it, and no file is left in the workspace (docs/audit.md "Read-only"). Used
    by `ui`, `report`, `regate` and `explain`."""
    from distill_es.api import Engine

    engine = Engine.open(home, store_url=globals_of(ctx).store, read_only=True)
    try:
        yield engine
    finally:
        engine.close()


def transfer_engine(
    ctx: typer.Context,
    home: Path | None,
    store: str | None,
    *,
    read_only: bool = False,
    own: bool | None = None,
) -> AbstractContextManager[Engine]:
    """For `export` and `import`: `store` replaces the global --store (import's own --store);
    `own=False` for `import` (copying sessions into any store is allowed; `--move` then makes it
    the workspace's owner)."""
    return open_engine(ctx, resolve_home(ctx, home), store=store, read_only=read_only, own=own)


def loop_engine(home: Path | None, *, read_only: bool = False, traces: Path | None = None) -> Engine:
    """For `loop`, `loops`, `daemon`, `flag` (they close it): same home, store and demo rules as ours;
    `traces` (their --traces) as for `run`, checked before anything is recorded."""
    ctx = ROOT_CONTEXT.get()
    if ctx is None:  # called outside a distill-es invocation
        raise CliFailure(2, "no distill-es command is running")
    if read_only:
        return build_engine(ctx, resolve_home(ctx, home), read_only=True)
    path = resolve_home(ctx, home)
    return build_engine(ctx, path, drives=True, source=checked_traces(path, traces))


def training_engine(ctx: typer.Context, home: Path | None) -> AbstractContextManager[Engine]:
    return open_engine(ctx, resolve_home(ctx, home), read_only=True)  # `training list` and `show` only read
