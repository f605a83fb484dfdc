"""The `distill-es` command line: each command calls the engine and renders what it returns.

Exit codes (CONTRACT "Command line"): 0 success (a session resting completed or awaiting_review),
1 the session failed or an outside failure stopped the command (store unreachable, read-only or
full: fix it, run again), 2 usage error (a bad store URL too), 3 not found (a store a read command
was pointed at too), 4 illegal transition or conflict; 130 interrupted by Ctrl-C. Errors are one or
two lines on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from distill_es import __version__
from distill_es.adapters.terminal_safe import SafeConsole, inert, json_safe
from distill_es.cli import loop as cli_loop
from distill_es.cli import render as render
from distill_es.cli import transfer as cli_transfer
from distill_es.cli.training import build_training_app
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
from distill_es.domain.vocabulary import AutonomyMode, LearningSession, SessionStatus, Trigger, TriggerKind
from distill_es.workspace.scaffold import is_workspace

if TYPE_CHECKING:  # the engine pulls in the anthropic and openai SDKs: imported only when a command needs it
    from distill_es.api import Engine

TEACHER_METAVAR = "anthropic|cassette:PATH"
DEMO_MARKER = "# distill_es demo settings"
API_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def _console(stderr: bool = False) -> Console:
    """A console on the current stream (CliRunner swaps them per call). Pipes and logs get 120
    columns unless $COLUMNS says otherwise: rich's 80 would squeeze the edits table's reasons out.
    Outside text is printed inert (no markup, control characters escaped): see terminal_safe."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return SafeConsole(file=stream, width=120 if wide else None)


def out() -> Console:
    return _console()


def err() -> Console:
    return _console(stderr=True)


# --- errors ----------------------------------------------------------------------------------------


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
    from distill_es.store.app import store_fault

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
    # Messages embed outside strings (edit ids, file lines, server replies): one inert line each.
    err().print(Text(f"error: {inert(message)}", style="bold red"), soft_wrap=True)
    if hint := _hint_for(exc):
        err().print(Text(f"hint: {inert(hint)}"), soft_wrap=True)
    return exit_code_for(exc)


# The running invocation's root context, for mounted commands whose engine opener gets no context.
_ROOT_CONTEXT: ContextVar[typer.Context | None] = ContextVar("distill_es_cli_root", default=None)


class _Group(TyperGroup):
    """Turns any error escaping a command into its exit code and a short message."""

    def invoke(self, ctx: typer.Context) -> Any:
        token = _ROOT_CONTEXT.set(ctx)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: usage errors (2), explicit exits
        except Exception as exc:
            globals_ = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
            raise typer.Exit(report_error(exc, debug=globals_.debug)) from None
        finally:
            _ROOT_CONTEXT.reset(token)


# --- the app and its global options ------------------------------------------------------------------

app = typer.Typer(
    name="distill-es",
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Event-sourced learning sessions: a teacher model diagnoses a local student agent, plans typed "
    "edits to its workspace, and a benchmark gate keeps only the edits that help.\n\n"
    "Start with `distill-es demo` (offline, no API key).",
)
benchmark_app = typer.Typer(no_args_is_help=True, help="The personal benchmark (benchmark.jsonl).")
app.add_typer(benchmark_app, name="benchmark")


@dataclass
class Globals:
    home: Path | None = None
    store: str | None = None
    debug: bool = False


HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        help="The workspace. Default: the global --home, then $DISTILL_ES_HOME, then the current "
        "directory if it is a workspace.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON to stdout, nothing else.")
]
SessionArg = Annotated[
    str,
    typer.Argument(metavar="SESSION", help="A session id, or a unique prefix of one.", show_default=False),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"distill-es {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", metavar="DIR", show_default=False,
                     help="The workspace (else $DISTILL_ES_HOME, else the current directory)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="URL", envvar="DISTILL_ES_STORE", show_default=False,
                     help="Event store URL: sqlite:///path or postgresql://user@host:port/db. "
                     "Default: <home>/.distill_es/events.sqlite."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:  # fmt: skip
    ctx.obj = Globals(home=home, store=store, debug=debug)


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


# --- workspace, engine, session ids --------------------------------------------------------------------


def resolve_home(ctx: typer.Context, home: Path | None) -> Path:
    """--home (command, then global), then $DISTILL_ES_HOME, then the cwd if it is a workspace."""
    chosen = home or _globals(ctx).home or os.environ.get("DISTILL_ES_HOME") or None
    if chosen is not None:
        path = Path(chosen).expanduser().resolve()
        if not is_workspace(path):
            raise CliFailure(
                3,
                f"{path} is not a distill_es workspace (it needs config.toml and {SETTINGS_FILE})",
                f"create one with `distill-es init {shlex.quote(str(path))}`, or try `distill-es demo`",
            )
        return path
    cwd = Path.cwd()
    if is_workspace(cwd):
        return cwd.resolve()
    raise CliFailure(
        2,
        "no workspace: pass --home DIR or set DISTILL_ES_HOME (the current directory is not a workspace)",
        "create one with `distill-es init DIR`, or try `distill-es demo` for an offline example",
    )


def is_demo(home: Path) -> bool:
    path = home / SETTINGS_FILE
    try:
        return path.read_text(encoding="utf-8").startswith(DEMO_MARKER)
    except OSError:
        return False


def _open_demo(home: Path, store: str | None, teacher: Any, progress: render.StepProgress | None) -> Engine:
    """The demo's engine (shipped cassette + DemoStudent), so demo follow-ups stay offline."""
    from distill_es.api import Engine
    from distill_es.demo import world
    from distill_es.demo.run import CASSETTE, open_demo_engine

    if store is None:
        return open_demo_engine(home, teacher=teacher, **observers(progress))
    # open_demo_engine takes no store URL; build the same ports with the chosen store.
    from distill_es.adapters.cassette import CassetteTeacher

    chosen = teacher if teacher is not None else CassetteTeacher(CASSETTE)
    return Engine.open(
        home, teacher=chosen, student=world.DemoStudent(home), store_url=store, **observers(progress)
    )


def build_engine(
    ctx: typer.Context,
    home: Path,
    *,
    drives: bool = False,
    teacher: Any = None,
    progress: render.StepProgress | None = None,
    store: str | None = None,
    read_only: bool = False,
) -> Engine:
    """The engine on `home` (and `store`, else the global --store). Commands that drive a session
    (`drives`) on a demo workspace get the demo's teacher and student; read commands never build a
    teacher or student at all, and `read_only` ones create no store, table or folder either."""
    from distill_es.api import Engine

    store = store or _globals(ctx).store
    if drives and is_demo(home):
        return _open_demo(home, store, teacher, progress)
    return Engine.open(
        home, teacher=teacher, store_url=store, create_tables=not read_only, **observers(progress)
    )


def observers(progress: render.StepProgress | None) -> dict[str, Any]:
    """The engine's observers for the live display: every step, every task scored, every retry wait."""
    if progress is None:
        return {}
    return {"on_step": progress, "on_scoring": progress.scoring, "on_wait": progress.waiting}


@contextmanager
def open_engine(ctx: typer.Context, home: Path, **options: Any) -> Iterator[Engine]:
    """`build_engine`, closed when the command is done."""
    engine = build_engine(ctx, home, **options)
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
    matches = [sid for sid in engine.session_ids() if sid.startswith(ref)]  # damaged ones too
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SessionNotFound(f"no session of {engine.home} has an id starting with {ref!r}")
    shown = ", ".join(m[:13] for m in matches[:5]) + (" …" if len(matches) > 5 else "")
    raise CliFailure(
        2, f"session prefix {ref!r} is ambiguous: it matches {len(matches)} sessions ({shown})",
        "give more characters of the id",
    )  # fmt: skip


# --- teachers and triggers ---------------------------------------------------------------------------------


def _require_api_key() -> None:
    if not any(os.environ.get(name) for name in API_KEY_VARS):
        raise CliFailure(
            2,
            "the anthropic teacher needs ANTHROPIC_API_KEY, which is not set",
            "export ANTHROPIC_API_KEY=..., or replay a recording with --teacher cassette:PATH "
            "(`distill-es demo` runs offline)",
        )


class _LazyAnthropic:
    """The real teacher, built on first use: resuming a session past its teacher phases needs no key."""

    def __init__(self) -> None:
        self._client: Any = None

    @property
    def messages(self) -> Any:
        if self._client is None:
            from distill_es.adapters.teacher import default_teacher

            _require_api_key()
            self._client = default_teacher()
        return self._client.messages


def _teacher_spec(value: str | None) -> str | None:
    if value is None or value == "anthropic":
        return value
    if value.startswith("cassette:") and value[len("cassette:") :]:
        path = Path(value[len("cassette:") :]).expanduser()
        if not path.is_file():
            raise typer.BadParameter(f"cassette file {path} does not exist")
        return f"cassette:{path}"
    raise typer.BadParameter(f"{value!r} is neither 'anthropic' nor 'cassette:PATH'")


def build_teacher(spec: str | None, record: Path | None) -> Any:
    """None keeps the workspace's default (the demo's cassette, or Anthropic)."""
    teacher: Any = None
    if spec == "anthropic":
        teacher = _LazyAnthropic()
    elif spec is not None:
        from distill_es.adapters.cassette import CassetteTeacher

        teacher = CassetteTeacher(spec[len("cassette:") :])
    if record is None:
        return teacher
    from distill_es.adapters.cassette import RecordingTeacher

    return RecordingTeacher(teacher if teacher is not None else _LazyAnthropic(), record)


def build_trigger(kind: TriggerKind, trace_ids: list[str], description: str | None) -> Trigger:
    from distill_es.domain import triggers

    if kind == TriggerKind.USER_FLAG:
        if len(trace_ids) != 1:
            raise typer.BadParameter(
                "a user_flag trigger needs exactly one --trace-id", param_hint="--trace-id"
            )
        return triggers.UserFlagTrigger(trace_ids[0])
    if kind == TriggerKind.CLUSTER:
        text = description or "a failure cluster flagged from the command line"
        return triggers.ClusterTrigger(text, trace_ids=trace_ids)
    if kind == TriggerKind.SCHEDULED:
        return triggers.ScheduledTrigger()
    return triggers.OnDemandTrigger({"source": "distill-es run", "trace_ids": trace_ids} if trace_ids else {})


# --- output helpers ----------------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    """JSON alone on stdout (no rich: nothing may wrap or colour it)."""
    typer.echo(json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def session_exit(view: LearningSession, home: Path) -> None:
    """Exit 1 when the session failed, saying why on stderr."""
    if view.status != SessionStatus.FAILED:
        return
    failure = f"error: session {inert(view.id)} failed: {inert(view.error)}"
    err().print(Text(failure, style="bold red"), soft_wrap=True)
    if is_demo(home) and "no recorded response" in (view.error or ""):
        # The shipped cassette holds the first demo session only; later sessions ask other questions.
        err().print(
            "hint: the demo's recorded teacher knows only the first demo session; start a fresh one with "
            "`distill-es demo`, or use a real teacher with --teacher anthropic",
            soft_wrap=True,
        )
    raise typer.Exit(1)


def git_log(home: Path, limit: int = 20) -> str:
    result = subprocess.run(
        ["git", "-C", str(home), "log", "--oneline", f"-n{limit}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else f"(git log failed: {result.stderr.strip()})\n"


def _store_option(engine: Engine) -> str:
    """` --store URL` when the engine's store is not the workspace's own (a resume must find it);
    nothing for a URL with a password, which is not printed (it is in $DISTILL_ES_STORE or known)."""
    from urllib.parse import urlparse

    from distill_es.store.app import default_store_url

    url = engine.store.url
    if url == default_store_url(engine.home) or urlparse(url).password:
        return ""
    return f" --store {shlex.quote(url)}"


def drive(engine: Engine, session_id: str, progress: render.StepProgress, home: Path) -> LearningSession:
    """Run the session to rest under the live progress display; interruptions say how to resume."""
    resume = f"distill-es --home {shlex.quote(str(home))}{_store_option(engine)} resume {session_id}"
    try:
        with progress:
            return engine.run(session_id)
    except SessionInterrupted as exc:
        message = f"session {session_id} interrupted: {exc}"
        raise CliFailure(1, message, f"nothing was lost; continue with `{resume}`") from exc
    except StoreUnavailable as exc:  # the last recorded step stands; the one that failed is redone
        fix = exc.hint.partition(" Nothing of the failed write")[0]
        raise CliFailure(
            1, str(exc), f"{fix} Nothing of the failed step was stored; then continue with `{resume}`"
        ) from exc
    except KeyboardInterrupt:
        raise CliFailure(  # noqa: B904 - the interrupt itself says nothing more
            130, f"interrupted: session {session_id} stopped part-way", f"continue with `{resume}`"
        )


def act_on_session(
    ctx: typer.Context,
    home: Path | None,
    session: str,
    act: Callable[[Engine, str], LearningSession],
) -> tuple[LearningSession, Path]:
    """A review command's shared part: find the workspace and the session, `act` on it under the live
    progress display (the session may go on running), print the summary."""
    path = resolve_home(ctx, home)
    progress = render.StepProgress(err())
    with open_engine(ctx, path, drives=True, progress=progress) as engine:
        session_id = resolve_session(engine, session)
        with progress:
            view = act(engine, session_id)
    out().print(render.session_summary(view))
    return view, path


# --- commands: setup ---------------------------------------------------------------------------------------


@contextmanager
def _refusing_overwrite(target: Path) -> Iterator[None]:
    try:
        yield
    except WorkspaceConflict as exc:
        quoted = shlex.quote(str(target))
        raise CliFailure(
            4, str(exc), f"choose another directory, or use this one: `distill-es --home {quoted} sessions`"
        ) from exc


@app.command()
def init(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Argument(metavar="HOME", show_default=False,
                       help="Where to create the workspace. Default: --home, $DISTILL_ES_HOME, or the "
                       "current directory."),
    ] = None,
) -> None:  # fmt: skip
    """Create a workspace for your agent.

    Writes config.toml, agents/, tools/, empty traces.jsonl and benchmark.jsonl, distill_es.toml with
    commented defaults and .gitignore, and makes the baseline git commit. Refuses to overwrite an
    existing workspace (exit 4).
    """
    from distill_es.workspace.scaffold import create_workspace

    chosen = home or _globals(ctx).home or os.environ.get("DISTILL_ES_HOME") or Path.cwd()
    target = Path(chosen).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise CliFailure(2, f"{target} exists and is not a directory", "choose another path")
    target.mkdir(parents=True, exist_ok=True)
    with _refusing_overwrite(target):
        create_workspace(target)
    quoted = shlex.quote(str(target))
    out().print(Text(f"created a distill_es workspace in {target}", style="bold green"))
    out().print(
        "  config.toml, agents/assistant/, tools/descriptions.toml, traces.jsonl, benchmark.jsonl,\n"
        "  distill_es.toml (commented defaults), .gitignore, and the baseline commit\n\n"
        "next:\n"
        "  1. add your agent's traces to traces.jsonl and tasks to benchmark.jsonl (one JSON object a line)\n"
        "  2. export ANTHROPIC_API_KEY=...   and point DISTILL_ES_STUDENT_URL at your local model\n"
        f"  3. distill-es --home {quoted} run",
        soft_wrap=True,
    )


@app.command()
def demo(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", metavar="DIR", show_default=False,
                     help="Where to create the demo workspace. Default: a new temporary directory."),
    ] = None,
) -> None:  # fmt: skip
    """Run a full session offline: no network, no API key.

    Creates a demo workspace, runs one session with the recorded teacher cassette shipped in the
    package and a deterministic demo student, then shows the edits, the workspace's git log and
    the commands to try next.
    """
    from distill_es.demo import world
    from distill_es.domain.triggers import OnDemandTrigger

    chosen = home or _globals(ctx).home
    target = (
        Path(chosen).expanduser().resolve() if chosen else Path(tempfile.mkdtemp(prefix="distill-es-demo-"))
    )
    target.mkdir(parents=True, exist_ok=True)
    with _refusing_overwrite(target):
        world.create_demo_workspace(target)
    out().print(Text(f"demo workspace: {target}", style="bold"))
    out().print("teacher: recorded cassette shipped with distill_es (offline, no API key)")
    out().print(f"student: {world.DEMO_STUDENT_LABEL}")
    progress = render.StepProgress(err())
    with open_engine(ctx, target, drives=True, progress=progress) as engine:
        session_id = engine.start(OnDemandTrigger({"source": "distill-es demo"}))
        view = drive(engine, session_id, progress, target)
    out().print()
    out().print(render.session_summary(view))
    out().print(Text("\nworkspace git log (newest first):", style="bold"))
    out().print(git_log(target), end="", soft_wrap=True)
    _demo_next_steps(target, view)
    session_exit(view, target)


def _demo_next_steps(home: Path, view: LearningSession) -> None:
    base = f"distill-es --home {shlex.quote(str(home))}"
    pending = view.pending_edit_ids[0] if view.pending_edit_ids else "EDIT"
    lines = [
        ("see the edit waiting for you, with its diff", f"{base} review"),
        ("approve it (it is applied and gated now)", f"{base} approve {view.id} {pending} --by you"),
        ("read the audit timeline", f"{base} history {view.id}"),
        ("check that the event log is intact", f"{base} verify"),
        ("undo every applied edit of the session", f"{base} rollback {view.id}"),
    ]
    out().print(Text("\nwhat to try next:", style="bold"))
    for why, command in lines:
        out().print(f"  # {why}\n  {command}", soft_wrap=True)


# --- commands: sessions ------------------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    home: HomeOption = None,
    trigger: Annotated[TriggerKind, typer.Option("--trigger", help="What started this session.")] = (
        TriggerKind.ON_DEMAND
    ),
    trace_id: Annotated[
        list[str] | None,
        typer.Option("--trace-id", metavar="TRACE_ID", show_default=False,
                     help="A trace the session is about (user_flag: exactly one; cluster: any number)."),
    ] = None,
    cluster_description: Annotated[
        str | None,
        typer.Option("--cluster-description", metavar="TEXT", show_default=False,
                     help="For --trigger cluster: the failure cluster."),
    ] = None,
    autonomy: Annotated[
        AutonomyMode | None,
        typer.Option("--autonomy", help="Override session.autonomy_mode.", show_default=False),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", callback=_teacher_spec, metavar=TEACHER_METAVAR, show_default=False,
                     help="The teacher. Default: anthropic (needs ANTHROPIC_API_KEY); on a demo workspace "
                     "the shipped cassette."),
    ] = None,
    record_cassette: Annotated[
        Path | None,
        typer.Option("--record-cassette", metavar="PATH", show_default=False,
                     help="Append every teacher call to this cassette, to replay later offline."),
    ] = None,
) -> None:  # fmt: skip
    """Run one learning session, with live progress.

    Ends with a summary of the session's edits. Exit 0 when the session rests completed or
    awaiting_review, 1 when it failed.
    """
    path = resolve_home(ctx, home)
    chosen_trigger = build_trigger(trigger, list(trace_id or []), cluster_description)
    if teacher == "anthropic" or (teacher is None and not is_demo(path)):
        _require_api_key()  # before a session is recorded, not half-way through it
        teacher = teacher or "anthropic"
    elif teacher is None and record_cassette is not None:  # re-record the demo's own cassette
        from distill_es.demo.run import CASSETTE

        teacher = f"cassette:{CASSETTE}"
    progress = render.StepProgress(err())
    with open_engine(ctx, path, drives=True, teacher=build_teacher(teacher, record_cassette),
                     progress=progress) as engine:  # fmt: skip
        session_id = engine.start(chosen_trigger, autonomy=autonomy)
        err().print(Text(f"session {session_id} started on {path}", style="dim"), soft_wrap=True)
        view = drive(engine, session_id, progress, path)
    out().print(render.session_summary(view))
    session_exit(view, path)


@app.command()
def resume(
    ctx: typer.Context,
    session: SessionArg,
    home: HomeOption = None,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", callback=_teacher_spec, metavar=TEACHER_METAVAR, show_default=False,
                     help="The teacher, if the session still needs one (as for run)."),
    ] = None,
) -> None:  # fmt: skip
    """Continue an interrupted session from its last recorded step.

    A session that is already resting (awaiting_review, completed, failed) is just shown.
    """
    path = resolve_home(ctx, home)
    progress = render.StepProgress(err())
    chosen = build_teacher(teacher, None) if teacher else (None if is_demo(path) else _LazyAnthropic())
    with open_engine(ctx, path, drives=True, teacher=chosen, progress=progress) as engine:
        view = drive(engine, resolve_session(engine, session), progress, path)
    out().print(render.session_summary(view))
    session_exit(view, path)


@app.command()
def sessions(
    ctx: typer.Context,
    home: HomeOption = None,
    status: Annotated[
        SessionStatus | None,
        typer.Option("--status", help="Only sessions in this state.", show_default=False),
    ] = None,
    trigger: Annotated[
        TriggerKind | None,
        typer.Option("--trigger", help="Only sessions started so.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", min=1, help="At most this many.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List this workspace's sessions, newest first.

    A damaged session is listed on stderr as damaged (with what `distill-es verify` will detail);
    the others are listed as usual.
    """
    path = resolve_home(ctx, home)
    filters: dict[str, Any] = {"limit": limit}
    if trigger is not None:
        filters["trigger"] = trigger.value
    with open_engine(ctx, path, read_only=True) as engine:
        views, damaged = engine.sessions_and_damage(status=status, **filters)
    if as_json:
        listed = [view.model_dump(mode="json") for view in views]
        print_json(listed + [{"id": d.session_id, "status": "damaged", "error": str(d)} for d in damaged])
    elif not views and not damaged:
        out().print("no sessions yet: start one with `distill-es run` (or try `distill-es demo`)")
    elif views:
        out().print(render.sessions_table(views))
    for problem in [] if as_json else damaged:
        err().print(Text(f"damaged: {inert(problem)}", style="bold red"), soft_wrap=True)


def _parse_at(value: str) -> int | datetime:
    if value.isdigit():
        if int(value) < 1:
            raise typer.BadParameter("versions start at 1", param_hint="--at")
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a version number nor an ISO 8601 time",
                                 param_hint="--at") from None  # fmt: skip
    return moment.astimezone()  # a time without zone is local time


@app.command()
def show(
    ctx: typer.Context,
    session: SessionArg,
    home: HomeOption = None,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="VERSION|TIME", show_default=False,
                     help="The session as it was at this event version (or ISO 8601 time)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Show one session: state, benchmark, diagnosis and edits.

    With --at, the session as it was at that event version (see `history`) or time.
    """
    path = resolve_home(ctx, home)
    moment = _parse_at(at) if at is not None else None
    with open_engine(ctx, path, read_only=True) as engine:
        session_id = resolve_session(engine, session)
        if isinstance(moment, datetime):
            view = engine.get_at(session_id, moment)
        else:
            view = engine.get(session_id, version=moment)
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        out().print(render.session_detail(view))


@app.command()
def history(
    ctx: typer.Context, session: SessionArg, home: HomeOption = None, as_json: JsonOption = False
) -> None:
    """The audit timeline of a session: one line per event.

    Each line: version, time (UTC), who (engine, teacher, student or a reviewer), what.
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, read_only=True) as engine:
        entries = engine.history(resolve_session(engine, session))
    if as_json:
        print_json(entries)
    else:
        out().print(render.history_lines(entries), end="", soft_wrap=True)


@app.command()
def review(ctx: typer.Context, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Edits waiting for a reviewer, with their diff previews."""
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, read_only=True) as engine:
        items = engine.pending_reviews()
    if as_json:
        print_json(items)
        return
    if not items:
        out().print("nothing is waiting for review")
        return
    out().print(render.review_items(items))
    first = items[0]
    decide = f"distill-es approve {inert(first['session_id'])} {inert(first['edit_id'])} --by NAME"
    out().print(f"decide with: {decide}   (or reject … --by NAME --reason TEXT)", soft_wrap=True)


@app.command()
def approve(
    ctx: typer.Context,
    session: SessionArg,
    edit: Annotated[
        str, typer.Argument(metavar="EDIT", help="The pending edit's id, e.g. edit_003.", show_default=False)
    ],
    by: Annotated[
        str,
        typer.Option("--by", metavar="NAME", help="Who approves (recorded in the log).", show_default=False),
    ],
    note: Annotated[str, typer.Option("--note", metavar="TEXT", help="A note kept with the approval.")] = "",
    home: HomeOption = None,
) -> None:
    """Approve a pending edit: it is applied and gated now.

    The session then goes on: completed once no edit is pending any more.
    """
    view, path = act_on_session(
        ctx, home, session, lambda e, sid: e.approve(sid, edit, reviewer=by, note=note)
    )
    session_exit(view, path)


@app.command()
def reject(
    ctx: typer.Context,
    session: SessionArg,
    edit: Annotated[str, typer.Argument(metavar="EDIT", help="The pending edit's id.", show_default=False)],
    by: Annotated[
        str,
        typer.Option("--by", metavar="NAME", help="Who rejects (recorded in the log).", show_default=False),
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the log).", show_default=False)
    ],
    home: HomeOption = None,
) -> None:
    """Reject a pending edit; it is never applied.

    The session completes once no edit is pending any more.
    """
    view, path = act_on_session(
        ctx, home, session, lambda e, sid: e.reject(sid, edit, reviewer=by, reason=reason)
    )
    session_exit(view, path)


@app.command()
def rollback(
    ctx: typer.Context,
    session: SessionArg,
    by: Annotated[
        str, typer.Option("--by", metavar="NAME", help="Who asks for the rollback (recorded).")
    ] = "user",
    home: HomeOption = None,
) -> None:
    """Revert every applied edit of a session; it ends rolled_back.

    Edits are reverted newest first, one git revert commit each; the workspace's git log is shown.
    """
    _, path = act_on_session(ctx, home, session, lambda e, sid: e.rollback(sid, requested_by=by))
    out().print(Text("\nworkspace git log (newest first):", style="bold"))
    out().print(git_log(path), end="", soft_wrap=True)


@app.command()
def cancel(
    ctx: typer.Context,
    session: SessionArg,
    by: Annotated[
        str, typer.Option("--by", metavar="NAME", help="Who cancels (recorded).", show_default=False)
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the log).", show_default=False)
    ],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a session that cannot go on (initiated, diagnosing, planning or executing).

    It rests failed, reason `cancelled`, with who and why in its history. Edits it had committed but
    not gated are reverted; its accepted edits stay (`rollback` reverts them). Exit 0 once cancelled;
    4 if the session already rests (or another process is running it).
    """
    if not by.strip() or not reason.strip():
        raise CliFailure(2, "cancel needs a name (--by) and a reason (--reason)")
    path = resolve_home(ctx, home)
    with open_engine(ctx, path) as engine:
        view = engine.cancel(resolve_session(engine, session), by=by, reason=reason)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    out().print(render.session_summary(view))


@app.command()
def verify(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(
            metavar="SESSION", help="Only this session (id or prefix). Default: all.", show_default=False
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the event log: digests chain, sessions replay, projections agree, and every log head
    anchored in the workspace's git history (Distill-Log-Head trailers) is still in the log.

    Exit 1 when damage is found, listing session, position (event version) and kind. The anchors do
    not need the index: a cut or rewritten log is found with .distill_es/views*.sqlite deleted.
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, read_only=True) as engine:
        reports = engine.verify(resolve_session(engine, session) if session is not None else None)
    if as_json:
        print_json([report.model_dump(mode="json") for report in reports])
    else:
        out().print(render.verify_table(reports))
    if any(not report.ok for report in reports):
        if not as_json:
            err().print(Text("error: damage found in the event log (see the table above)", style="bold red"))
        raise typer.Exit(1)


@app.command()
def diagram() -> None:
    """The session lifecycle as a Mermaid state diagram."""
    from distill_es.domain.session.lifecycle import mermaid

    typer.echo(mermaid(), nl=False)


@benchmark_app.command("show")
def benchmark_show(ctx: typer.Context, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The benchmark tasks and the latest per-cluster scores.

    Scores come from the most recent session that measured the benchmark (before and after its edits).
    """
    from distill_es.adapters.benchmark import load_benchmark

    path = resolve_home(ctx, home)
    tasks = load_benchmark(path)
    with open_engine(ctx, path, read_only=True) as engine:
        latest = next((v for v in engine.sessions() if v.benchmark_before is not None), None)
    clusters = latest.plan.failure_clusters if latest and latest.plan else []
    task_clusters: dict[str, list[str]] = {}
    for cluster in clusters:
        for task_id in cluster.task_ids:
            task_clusters.setdefault(task_id, []).append(cluster.id)
    before = latest.benchmark_before if latest else None
    after = latest.benchmark_after if latest else None
    if as_json:
        print_json(
            {
                "tasks": [task.model_dump(mode="json") for task in tasks],
                "task_clusters": task_clusters,
                "latest": None
                if latest is None
                else {
                    "session_id": latest.id,
                    "before": before.model_dump(mode="json") if before else None,
                    "after": after.model_dump(mode="json") if after else None,
                },
            }
        )
        return
    out().print(render.benchmark_view(tasks, task_clusters, latest.id if latest else None, before, after))


# --- commands defined elsewhere, mounted here -----------------------------------------------------------


def _transfer_engine(
    ctx: typer.Context, home: Path | None, store: str | None, *, read_only: bool = False
) -> AbstractContextManager[Engine]:
    return open_engine(ctx, resolve_home(ctx, home), store=store, read_only=read_only)


def _loop_engine(home: Path | None, *, read_only: bool = False) -> Engine:
    """For `loop`, `loops`, `daemon`, `flag` (they close it): same home, store and demo rules as ours."""
    ctx = _ROOT_CONTEXT.get()
    if ctx is None:  # called outside a distill-es invocation
        raise CliFailure(2, "no distill-es command is running")
    if read_only:
        return build_engine(ctx, resolve_home(ctx, home), read_only=True)
    return build_engine(ctx, resolve_home(ctx, home), drives=True)


cli_transfer.register(app, _transfer_engine)
cli_loop.register(app, _loop_engine)


def _training_engine(ctx: typer.Context, home: Path | None) -> AbstractContextManager[Engine]:
    return open_engine(ctx, resolve_home(ctx, home), read_only=True)  # `training list` and `show` only read


app.add_typer(build_training_app(_training_engine), name="training")


@app.command()
def worker(
    ctx: typer.Context,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Where this worker keeps its read models.")
    ] = Path(".distill_es-worker"),
    poll: Annotated[float, typer.Option(help="Seconds between polls when there is nothing to run.")] = 1.0,
    exit_when_idle: Annotated[
        int | None, typer.Option("--exit-when-idle", help="Stop after this many idle polls (default: never).")
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Create the store's tables first (once per store).")] = False,
    backoff: Annotated[
        float, typer.Option(help="Seconds to leave a session interrupted by an outside failure alone "
                            "(doubling with each interruption in a row, at most an hour).")
    ] = 30.0,
) -> None:  # fmt: skip
    """Claim runnable sessions of any workspace from the shared store (--store) and run them.

    Several workers may share one PostgreSQL store: the database's advisory locks keep a session (and
    a workspace) to one worker at a time, and a dead worker's sessions are picked up by the others.
    A session interrupted by an outside failure (recorded in its log) is backed off by every worker.
    """
    from distill_es.app import worker as workers  # the engine and its SDKs load only when a worker runs

    store = _globals(ctx).store or os.environ.get("DISTILL_ES_STORE")
    if not store:
        raise CliFailure(
            2, "a worker needs a shared store: pass --store postgresql://… (or DISTILL_ES_STORE)"
        )
    if migrate:
        workers.migrate(store)
    report = workers.work(
        store,
        state_dir,
        poll_seconds=poll,
        idle_polls_before_exit=exit_when_idle,
        backoff=workers.Backoff(base_seconds=backoff),
    )
    out().print(
        f"finished {len(report.finished)} sessions, {len(report.interrupted)} interrupted, "
        f"{len(report.backed_off)} backed off after outside failures"
    )


def _undecodable_argument(argv: list[str]) -> str | None:
    """The first argument that is not UTF-8 text (Python keeps its bad bytes as lone surrogates, which
    no event, commit or JSON can hold), shown inert; None when every argument is text."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return inert(arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    return None


def main() -> None:
    """The `distill-es` entry point."""
    bad = _undecodable_argument(sys.argv[1:])
    if bad is not None:
        err().print(Text(f"error: the argument {bad} is not UTF-8 text"), soft_wrap=True)
        err().print(Text("hint: pass names, notes and reasons as UTF-8 text"), soft_wrap=True)
        raise SystemExit(2)
    app()


if __name__ == "__main__":
    main()
