"""`distill-es doctor`: every preflight check of the workspace, its store and both endpoints.

The checks are `app/doctor.py`'s; this module picks the probes (none on the demo workspace, whose
teacher and student are offline stand-ins), prints the checks, and exits 1 when any failed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from distill_es.cli.console import out, print_error, print_json
from distill_es.cli.engines import is_demo, resolve_home
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import HomeOption, JsonOption, globals_of

if TYPE_CHECKING:  # the checks import tomlkit and the store: only `doctor` and `run` need them
    from distill_es.app.doctor import Check
    from distill_es.config.settings import StudentSettings


def run_doctor(home: Path, store_url: str | None) -> list[Check]:
    from distill_es.adapters import probes
    from distill_es.app.doctor import all_checks

    if is_demo(home):  # the shipped cassette and the deterministic student: nothing to reach
        return all_checks(home, store_url=store_url, environ=os.environ, teacher_probe=None, teacher_url="",
                          student_probe=None)  # fmt: skip

    def student(settings: StudentSettings, model: str) -> object:
        return probes.probe_student(home, settings, model)

    return all_checks(
        home,
        store_url=store_url,
        environ=os.environ,
        teacher_probe=probes.probe_teacher,
        teacher_url=probes.anthropic_base_url(),
        student_probe=student,
    )


INPUT_CHECKS = frozenset({"config", "benchmark", "traces"})  # files in the workspace (or --traces)


def require_preflight(home: Path, store_url: str | None, traces: Path | None = None) -> None:
    """`run`'s refusal, before a session is recorded: the first failed check that needs no network."""
    from distill_es.app.doctor import preflight

    check = preflight(home, store_url=store_url, traces=traces)
    if check is not None:
        hint = f"{check.hint}; `distill-es doctor` checks everything" if check.hint else ""
        # A workspace file the user must fix is a usage error (2), as for `enqueue`; a store or git
        # that does not work is an outside failure (1).
        code = 2 if check.name in INPUT_CHECKS else 1
        raise CliFailure(code, f"not starting a session: {check.name}: {check.detail}", hint)


def failures_line(checks: list[Check]) -> str:
    bad = [c.name for c in checks if not c.ok]
    if not bad:
        return f"all {len(checks)} checks passed"
    return f"{len(bad)} of {len(checks)} checks failed: {', '.join(bad)}"


def print_checks(checks: list[Check]) -> None:
    """One line a check (`ok` or `FAILED`, its name, the detail), a failed one's hint beneath it."""
    from distill_es.app.doctor import CHECK_NAMES

    width = max(len(name) for name in CHECK_NAMES)
    console = out()
    for check in checks:
        line = Text()
        line.append(f"{'ok' if check.ok else 'FAILED':<8}", style="green" if check.ok else "bold red")
        line.append(f"{check.name:<{width}}  {check.detail}")
        console.print(line, soft_wrap=True)
        if check.hint:
            console.print(Text(f"{'':<8}hint: {check.hint}", style="dim"), soft_wrap=True)


def doctor(ctx: typer.Context, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Check everything a session needs, before it starts: exit 1 if anything fails.

    The settings, config.toml and benchmark.jsonl parse; enough traces for [session] min_traces; the
    event store is reachable and its tables current; git and a reviewer name; the teacher's key and
    endpoint (its free models list, never a paid call); the student endpoint (a one-token request to
    its model). `run` refuses to start when a check that needs no network fails.
    """
    path = resolve_home(ctx, home)
    checks = run_doctor(path, globals_of(ctx).store)
    summary = failures_line(checks)
    ok = all(c.ok for c in checks)
    if json_output:
        print_json([c.to_json() for c in checks])
        if not ok:
            print_error(summary, code=1)
    else:
        print_checks(checks)
        out().print(Text(summary, style="green" if ok else "bold red"))
    if not ok:
        raise typer.Exit(1)
