"""`benchmark run` and `benchmark compare`: score a workspace tree outside any session (a CI gate),
and compare two refs per cluster. `benchmark show` lives with the workspace commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from distill_es.cli.console import err, out, print_error, print_json
from distill_es.cli.engines import open_engine, resolve_home
from distill_es.cli.options import HomeOption, JsonOption, Number
from distill_es.cli.workspace import benchmark_app
from distill_es.domain.benchmark_run.views import BenchmarkComparison, BenchmarkRunView

RefOption = Annotated[
    str | None,
    typer.Option("--ref", metavar="REF", show_default=False,
                 help="Score this git ref's tree (branch, tag, sha). "
                 "Default: the working tree's managed files."),
]  # fmt: skip


MinScoreOption = Annotated[
    float | None,
    typer.Option("--min-score", metavar="X", parser=Number(0.0, 1.0), show_default=False,
                 help="Exit 1 when the overall score is below X (0-1): a CI gate."),
]  # fmt: skip


def _progress(done: int, total: int) -> None:
    err().print(f"scoring · {done}/{total} tasks scored", soft_wrap=True)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def _where(view: BenchmarkRunView) -> str:
    return f"{view.ref or 'working tree'} (tree {view.tree_sha[:10]})"


def render_run(view: BenchmarkRunView) -> Table:
    kind = "cluster" if view.grouping == "clusters" else "category"
    table = Table()
    table.add_column(kind)
    table.add_column("tasks", justify="right")
    table.add_column("score", justify="right")
    for group in view.groups:
        table.add_row(group.group, str(len(group.task_ids)), _score(group.score))
    table.add_row(
        Text("overall", style="bold"), str(view.task_count), Text(_score(view.overall_score), style="bold")
    )
    return table


def _summary(view: BenchmarkRunView) -> str:
    cache = f"{view.scored} scored, {view.reused} reused from the score cache"
    verdict = ""
    if view.passed is not None:
        verdict = f" · {'passed' if view.passed else 'BELOW'} --min-score {view.min_score:g}"
    return f"run {view.id} · {cache}{verdict}"


def benchmark_run(
    ctx: typer.Context,
    ref: RefOption = None,
    min_score: MinScoreOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score the workspace (or a git ref) on the benchmark, per cluster.

    Groups are the clusters of the latest diagnosis (task categories when there is none). Scores
    already recorded for the same tree (by sessions or earlier runs) are reused; the run is recorded
    in the event log. Exits 1 when the overall score is below --min-score.
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, drives=True) as engine:
        view = engine.benchmark(ref, min_score=min_score, on_scored=None if as_json else _progress)
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        out().print(f"benchmark · {_where(view)}", soft_wrap=True)
        out().print(render_run(view))
        out().print(_summary(view), soft_wrap=True)
    if view.passed is False:  # the CI gate: one line on stderr (the JSON error object under --json)
        score = "no score" if view.overall_score is None else f"{view.overall_score:.4f}"
        print_error(f"the overall score {score} is below --min-score {view.min_score:g}", code=1)
        raise typer.Exit(1)


def render_comparison(comparison: BenchmarkComparison) -> Table:
    before, after = comparison.before, comparison.after
    kind = "cluster" if before.grouping == "clusters" else "category"
    table = Table()
    for name in (kind, "before", "after", "delta"):
        table.add_column(name, justify="left" if name == kind else "right")
    for row in comparison.groups:
        table.add_row(row.group, _score(row.before), _score(row.after), _delta(row.delta))
    table.add_row(
        Text("overall", style="bold"), _score(before.overall_score), _score(after.overall_score),
        Text(_delta(comparison.overall_delta), style="bold"),
    )  # fmt: skip
    return table


def benchmark_compare(
    ctx: typer.Context,
    before: Annotated[str, typer.Argument(metavar="A", help="The ref before (WORKTREE: the working tree).")],
    after: Annotated[str, typer.Argument(metavar="B", help="The ref after (WORKTREE: the working tree).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score two git refs on the benchmark and print per-cluster before, after and delta.

    Both are scored with the same tasks and groups (each a recorded benchmark run, reusing the
    score cache).
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, drives=True) as engine:
        comparison = engine.benchmark_compare(before, after, on_scored=None if as_json else _progress)
    if as_json:
        print_json(comparison.model_dump(mode="json"))
        return
    out().print(f"benchmark · {_where(comparison.before)} → {_where(comparison.after)}", soft_wrap=True)
    out().print(render_comparison(comparison))
    out().print(
        f"before: {_summary(comparison.before)}\nafter:  {_summary(comparison.after)}", soft_wrap=True
    )


def register(benchmark_app: typer.Typer) -> None:
    benchmark_app.command("run")(benchmark_run)
    benchmark_app.command("compare")(benchmark_compare)


# The `benchmark` group as the app mounts it (cli/main.py): `show` is cli/workspace.py's.
benchmark_group = benchmark_app
register(benchmark_group)
