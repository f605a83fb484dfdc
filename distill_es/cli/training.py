"""`distill-es training list|show`: training runs and their lineage, read from the log.

`training_app` is the group the main app mounts: it opens the engine as every command does
(cli/engines.py: `--home`, the root's `--home` / `--store`, $DISTILL_ES_HOME, a workspace cwd), read
only. `build_training_app(opener)` builds it on another `opener(ctx, home)`: a context manager
yielding anything with `.store` (an `EventStore`) and `.home`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from distill_es.adapters.terminal_safe import inert, safe_text
from distill_es.cli.console import out
from distill_es.cli.engines import training_engine
from distill_es.cli.options import HomeOption, JsonOption

if TYPE_CHECKING:  # the service (and the engine under it) is imported by the commands that use it
    from distill_es.app.training.service import TrainingService
    from distill_es.domain.training.views import Lineage, TrainingRunView

Opener = Callable[[typer.Context, Path | None], AbstractContextManager[Any]]


def _short(value: str | None, n: int = 8) -> str:
    return (value or "")[:n]


def runs_table(views: list[TrainingRunView]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("RUN", "SESSION", "EDIT", "BACKEND", "STATE", "TRIES", "VERDICT", "DEPLOYABLE", "DETAIL"):
        table.add_column(column, overflow="fold")
    for v in views:
        deployable = "-" if v.deployable is None else ("yes" if v.deployable else "no")
        detail = v.reason_code or (f"delta {v.delta:+.3f}" if v.delta is not None else "")
        table.add_row(
            inert(_short(v.run_id)), inert(_short(v.session_id)), inert(v.edit_id), inert(v.backend),
            inert(v.state), str(v.attempts), inert(v.verdict or "-"), deployable, inert(detail),
        )  # fmt: skip
    return table


def lineage_text(lineage: Lineage) -> Group:
    run, spec, budget = lineage.run, lineage.spec, lineage.spec["budget"]
    trainer = json.dumps(lineage.trainer_command) if lineage.trainer_command else "(none: dry run)"
    parts: list[Any] = [
        safe_text(f"training run {run.run_id}", style="bold"),
        safe_text(f"  session {run.session_id}, edit {run.edit_id}; state {run.state}"),
        safe_text(f"  {run.summary}"),
        Text("spec", style="bold"),
        safe_text(
            f"  experiment {spec['experiment_id']}: {spec['backend']} / {spec['training_mode']} on "
            f"{spec['target_model_family']} ({spec['hardware_tier']})"
        ),
        safe_text("  hyperparameters " + ", ".join(f"{k}={v}" for k, v in spec["hyperparameters"].items())),
        Text(
            f"  budget {budget['max_wall_clock_minutes']:g} min, {budget['max_train_tokens']} tokens; "
            f"config {_short(spec['config_fingerprint'], 12)}, code {_short(spec['code_hash'], 12)}"
        ),
        safe_text(f"  trainer {trainer}"),
    ]
    if lineage.dataset:
        d = lineage.dataset
        counts = ", ".join(f"{k} {n}" for k, n in sorted(d["counts"].items())) or "empty"
        parts.append(Text("dataset", style="bold"))
        parts.append(
            safe_text(f"  {d['rows']} rows ({counts}), sha256 {_short(d['fingerprint'], 12)}: {d['path']}")
        )
        if d["benchmark_task_ids"]:
            parts.append(
                safe_text(f"  benchmark tasks in the data: {', '.join(d['benchmark_task_ids'])}", "yellow")
            )
    if lineage.attempts:
        parts.append(Text("attempts", style="bold"))
        for a in lineage.attempts:
            parts.append(safe_text(f"  #{a['attempt']} {a['started_at']}: {a['outcome']}"))
    if lineage.failure:
        f = lineage.failure
        parts.append(safe_text(f"failed ({f['reason_code']}): {f['message']}", style="red"))
    if lineage.dry_run:
        parts.append(safe_text(f"dry run: {lineage.dry_run['message']}"))
    if lineage.checkpoint:
        c = lineage.checkpoint
        parts.append(Text("checkpoint", style="bold"))
        parts.append(safe_text(f"  {c['checkpoint_id']} ({c['adapter_format']}): {c['artifact_path']}"))
    if lineage.eval:
        parts.append(safe_text(f"eval {lineage.eval['verdict']}: {lineage.eval['reason']}", style="bold"))
    if lineage.promotion:
        p = lineage.promotion
        parts.append(
            safe_text(f"promotion: {'deployable' if p['deployable'] else 'not deployable'} — {p['reason']}")
        )
    parts.append(Text("events", style="bold"))
    for e in lineage.events:
        line = f"  v{e['version']} {e['at']} {e['type']} {_short(e['digest'], 12)}"
        parts.append(safe_text(line, "dim"))
    return Group(*parts)


def build_training_app(opener: Opener | None = None) -> typer.Typer:
    open_workspace = opener or training_engine
    app = typer.Typer(
        no_args_is_help=True, help="Training runs of approved lora_finetune edits, with lineage."
    )

    @contextmanager
    def service(ctx: typer.Context, home: Path | None) -> Iterator[TrainingService]:
        with open_workspace(ctx, home) as engine:
            from distill_es.app.training.service import TrainingService

            yield TrainingService(engine.store, engine.home, None)

    @app.command("list")
    def list_runs(
        ctx: typer.Context,
        session: Annotated[
            str | None,
            typer.Option("--session", metavar="SESSION", help="Only runs of this session (id or prefix)."),
        ] = None,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Training runs of this workspace, newest first."""
        with service(ctx, home) as svc:
            views = svc.runs()
        if session:
            views = [v for v in views if v.session_id.startswith(session.strip().lower())]
        if as_json:
            typer.echo(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        elif not views:
            out().print("no training runs")
        else:
            out().print(runs_table(views))

    @app.command("show")
    def show_run(
        ctx: typer.Context,
        run: Annotated[
            str, typer.Argument(metavar="RUN", help="A training run id, or a unique prefix of one.")
        ],
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """A run's lineage: spec, dataset, attempts, checkpoint, eval, promotion, events."""
        with service(ctx, home) as svc:
            lineage = svc.lineage(svc.resolve(run))
        if as_json:
            typer.echo(json.dumps(lineage.model_dump(mode="json"), indent=2))
        else:
            out().print(lineage_text(lineage), soft_wrap=True)

    return app


training_app = build_training_app()
