"""Workspace commands: `init`, `demo`, `diagram`, and the `benchmark` group."""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text
from typer.core import TyperCommand

from distill_es.cli import render
from distill_es.cli.console import out, print_json
from distill_es.cli.driving import drive, git_log, session_exit
from distill_es.cli.engines import open_engine, resolve_home
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import HomeOption, JsonOption, globals_of
from distill_es.cli.progress import step_progress
from distill_es.config.paths import resolve
from distill_es.domain.errors import TracesSourceNotFound, WorkspaceConflict, WorkspaceError

if TYPE_CHECKING:
    from distill_es.domain.vocabulary import LearningSession
    from distill_es.workspace.openjarvis import OpenJarvisImport

CREATED = ["config.toml", "agents/assistant/", "tools/descriptions.toml", "traces.jsonl", "benchmark.jsonl",
           "distill_es.toml", ".gitignore"]  # fmt: skip


@contextmanager
def _refusing_overwrite(target: Path) -> Iterator[None]:
    try:
        yield
    except WorkspaceConflict as exc:
        quoted = shlex.quote(str(target))
        raise CliFailure(
            4, str(exc), f"choose another directory, or use this one: `distill-es --home {quoted} sessions`"
        ) from exc


def init(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Argument(metavar="HOME", show_default=False,
                       help="Where to create the workspace. Default: --home, $DISTILL_ES_HOME, or the "
                       "current directory."),
    ] = None,
    openjarvis: Annotated[
        str | None,
        typer.Option("--openjarvis", metavar="[DIR]", show_default=False,
                     help="Set the workspace up for an OpenJarvis agent: read the traces in DIR's traces.db "
                     "where they are, and start from DIR's config.toml (agent, tools, prompt, model, "
                     "engine). DIR defaults to $OPENJARVIS_HOME, else ~/.openjarvis."),
    ] = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Create a workspace for your agent.

    Writes config.toml, agents/, tools/, empty traces.jsonl and benchmark.jsonl, distill_es.toml with
    commented defaults and .gitignore, and makes the baseline git commit. With --openjarvis, the
    workspace reads OpenJarvis's traces.db (never writing it) and starts from its agent configuration.
    Refuses to overwrite an existing workspace (exit 4).
    """
    from distill_es.workspace.scaffold import create_workspace

    chosen = home or globals_of(ctx).home or os.environ.get("DISTILL_ES_HOME") or Path.cwd()
    target = resolve(chosen)
    if target.exists() and not target.is_dir():
        raise CliFailure(2, f"{target} exists and is not a directory", "choose another path")
    found = _openjarvis_source(openjarvis) if openjarvis is not None else None
    target.mkdir(parents=True, exist_ok=True)
    with _refusing_overwrite(target):
        if found is None:
            create_workspace(target)
        else:
            from distill_es.workspace.openjarvis import create_openjarvis_workspace

            create_openjarvis_workspace(target, found.folder)
    if as_json:  # no session yet: what was made, and where
        print_json({"home": str(target), "created": CREATED})
        return
    quoted = shlex.quote(str(target))
    out().print(Text(f"created a distill_es workspace in {target}", style="bold green"))
    if found is None:
        out().print(
            "  config.toml, agents/assistant/, tools/descriptions.toml, traces.jsonl, benchmark.jsonl,\n"
            "  distill_es.toml (commented defaults), .gitignore, and the baseline commit\n\n"
            "next:\n"
            "  1. add your agent's traces to traces.jsonl and tasks to benchmark.jsonl "
            "(one JSON object a line)\n"
            "  2. export ANTHROPIC_API_KEY=...   and point DISTILL_ES_STUDENT_URL at your local model\n"
            f"  3. distill-es --home {quoted} run",
            soft_wrap=True,
        )
        return
    out().print(f"  from OpenJarvis in {found.folder}:", soft_wrap=True)
    for line in found.carried:
        out().print(Text(f"    {line}"), soft_wrap=True)
    for note in found.notes:
        out().print(Text(f"  note: {note}"), soft_wrap=True)
    out().print(
        "\nnext:\n"
        "  1. add tasks to benchmark.jsonl (one JSON object a line): the gate scores every edit on them\n"
        "  2. export ANTHROPIC_API_KEY=...\n"
        f"  3. distill-es --home {quoted} run",
        soft_wrap=True,
    )


OPENJARVIS_DEFAULT = "\x00default"  # `--openjarvis` given without a folder


class InitCommand(TyperCommand):
    """`init`, whose `--openjarvis` takes an optional value (typer has no such options): given last or
    before another option, it stands for the default folder."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        rewritten = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--openjarvis" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                rewritten[i] = f"--openjarvis={OPENJARVIS_DEFAULT}"
        return super().parse_args(ctx, rewritten)


def _openjarvis_source(value: str) -> OpenJarvisImport:
    """What `--openjarvis [DIR]` names, read before anything is created (a missing folder or traces
    database is exit 3)."""
    from distill_es.workspace.openjarvis import default_openjarvis_home, read_openjarvis

    folder = default_openjarvis_home() if value == OPENJARVIS_DEFAULT else resolve(value)
    if not folder.is_dir():
        raise CliFailure(
            3, f"{folder}: no OpenJarvis folder there",
            "pass the folder OpenJarvis keeps its traces.db in: `distill-es init --openjarvis DIR`",
        )  # fmt: skip
    try:
        return read_openjarvis(folder)
    except TracesSourceNotFound as exc:
        raise CliFailure(3, str(exc), "run your OpenJarvis agent with traces enabled first") from exc
    except WorkspaceError as exc:  # a usage error (2): a file of DIR that is not what OpenJarvis writes
        raise CliFailure(2, str(exc), "point --openjarvis at the folder of a working OpenJarvis") from exc


def demo(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", metavar="DIR", show_default=False,
                     help="Where to create the demo workspace. Default: a new temporary directory."),
    ] = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Run a full session offline: no network, no API key.

    Creates a demo workspace, runs one session with the recorded teacher cassette shipped in the
    package and a deterministic demo student, then shows the edits, the workspace's git log and
    the commands to try next.
    """
    from distill_es.demo import world
    from distill_es.domain.triggers import OnDemandTrigger

    chosen = home or globals_of(ctx).home
    target = resolve(chosen) if chosen else Path(tempfile.mkdtemp(prefix="distill-es-demo-"))
    target.mkdir(parents=True, exist_ok=True)
    with _refusing_overwrite(target):
        world.create_demo_workspace(target)
    if not as_json:
        out().print(Text(f"demo workspace: {target}", style="bold"))
        out().print("teacher: recorded cassette shipped with distill_es (offline, no API key)")
        out().print(f"student: {world.DEMO_STUDENT_LABEL}")
    progress = step_progress(ctx)
    with open_engine(ctx, target, drives=True, progress=progress) as engine:
        session_id = engine.start(OnDemandTrigger({"source": "distill-es demo"}))
        view = drive(engine, session_id, progress, target)
    if as_json:  # the session view, and where its workspace is (a new temporary directory by default)
        print_json({"home": str(target), **view.model_dump(mode="json")})
        session_exit(view, target)
        return
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


def diagram(as_json: JsonOption = False) -> None:
    """The session lifecycle as a Mermaid state diagram."""
    from distill_es.domain.session.lifecycle import mermaid

    if as_json:
        print_json({"format": "mermaid", "diagram": mermaid()})
        return
    typer.echo(mermaid(), nl=False)


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


benchmark_app = typer.Typer(no_args_is_help=True, help="The personal benchmark (benchmark.jsonl).")
benchmark_app.command("show")(benchmark_show)
