"""The live progress display of a running session: a spinner line on a terminal, short plain lines
in logs and pipes. Fed by the engine's observers (`on_step`, `on_scoring`, `on_wait`).

Edit ids and names in a step come from the teacher: every line goes through `terminal_safe.inert`.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from distill_es.adapters.terminal_safe import inert
from distill_es.cli.console import JSON_ERRORS, err
from distill_es.cli.options import globals_of
from distill_es.domain.step_words import STEP_WORDS

if TYPE_CHECKING:  # types only: importing the engine's modules here would slow every command's start
    from rich.console import Console
    from rich.status import Status

    from distill_es.adapters.retry import Wait
    from distill_es.app.progress import ScoringProgress
    from distill_es.domain.session.next_step import Step
    from distill_es.domain.vocabulary import LearningSession


LOGGED_STEPS = ("CallTeacher", "ScoreTree")  # in logs and pipes, only these get a line (unless --verbose)


def describe_step(view: LearningSession, step: Step, unpriced: str | None = None) -> str:
    """`diagnosing · asking the teacher diagnose · turn 2 · $0.0142`: phase, step, turn, cost so far (with
    `unpriced`, the teacher model without a known price: `$0.0142 (unknown price for M: …)`)."""
    parts = [view.status.value, STEP_WORDS.get(step.kind, "working")]
    for attr in ("purpose", "name", "edit_id", "label"):
        value = getattr(step, attr, None)
        if value:
            parts[-1] += f" {value}"
    if step.kind == "ScoreTree":  # "reused" is said only by `describe_reuse`, in the summary's own count
        total, missing = getattr(step, "total", 0), getattr(step, "missing", 0)
        known = f", {total - missing} already scored" if total > missing else ""
        parts.append(f"{missing}/{total} tasks on tree {str(step.tree_sha)[:10]}{known}")
    call_key = str(getattr(step, "call_key", "") or "")
    if call_key.startswith("diagnose/"):
        parts.append(f"turn {call_key.split('/', 1)[1]}")
    cost = f"${view.teacher_cost_usd:.4f}"
    if unpriced:
        cost += f" ({unknown_price(unpriced)})"
    parts.append(cost)
    return inert(" · ".join(parts))  # edit ids and names come from the teacher


def unknown_price(model: str) -> str:
    return f"unknown price for {model}: counted at the dearest known rate; set [pricing] to fix"


def describe_scoring(progress: ScoringProgress) -> str:
    """`scoring tree 3f9c2a1b07 · 12/50 tasks scored` (`· 8 already scored` when some were)."""
    known = f" · {progress.reused} already scored" if progress.reused else ""
    return (
        f"scoring tree {progress.tree_sha[:10]} · {progress.scored}/{progress.to_score} tasks scored{known}"
    )


def describe_reuse(view: LearningSession) -> str:
    """`student calls · 24 made, 8 reused`: the session's own count, the one its summary shows (reused:
    the calls an engine scoring every snapshot from scratch would have made on trees already scored)."""
    return f"student calls · {view.student_calls_made} made, {view.student_calls_reused} reused"


def describe_wait(wait: Wait) -> str:
    """`student http://127.0.0.1:8000/v1/chat/completions · waiting 30 s (rate limited)`."""
    return f"{wait.role} {wait.endpoint} · waiting {wait.seconds:.0f} s ({wait.reason})"


class StepProgress:
    """The live progress display fed by `Engine(on_step=...)`.

    On a terminal: a spinner line that changes with every step, and a kept line per phase. Elsewhere
    (logs, CI, pipes): one plain line per phase change and per teacher call, so the record stays short.
    """

    def __init__(self, console: Console, *, quiet: bool = False, verbose: bool = False) -> None:
        self.console = console
        self.unpriced: str | None = None  # the teacher model, when it has no known price
        self.quiet, self.verbose = quiet, verbose  # quiet: show nothing; verbose: a line for every step
        self._status: Status | None = None
        self._phase: str | None = None
        self._reused: dict[str, int] = {}  # per session: the reused count last shown

    def __enter__(self) -> StepProgress:
        if self.console.is_terminal and not self.quiet and not self.verbose:  # the spinner (rich.live)
            self._status = self.console.status("starting…")
            self._status.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._status is not None:
            self._status.stop()

    def scoring(self, progress: ScoringProgress) -> None:
        """Every task scored (from the scorer's threads; the engine serialises the calls)."""
        line = describe_scoring(progress)
        if self.quiet:
            return
        if self._status is not None:
            self._status.update(Text(line))  # a str status would be parsed as markup
        elif progress.scored == progress.to_score:  # logs: one line per tree, when it is done
            self.console.print(Text(f"  {line}", style="dim"))

    def waiting(self, wait: Wait) -> None:
        """Before every retry wait (from any thread): on a terminal the spinner says so; in logs a line
        for waits long enough to notice, so a frozen-looking run explains itself."""
        line = describe_wait(wait)
        if self.quiet:
            return
        if self._status is not None:
            self._status.update(line)
        elif wait.seconds >= 1:
            self.console.print(Text(f"  {line}", style="dim"))

    def __call__(self, view: LearningSession, step: Step) -> None:
        if self.quiet:
            return
        line = describe_step(view, step, self.unpriced)
        phase = view.status.value
        if phase != self._phase:
            self._phase = phase
            self.console.print(Text(f"▸ {phase}", style="bold"))
        if view.student_calls_reused > self._reused.get(view.id, 0):  # a snapshot served by scores on record
            self._reused[view.id] = view.student_calls_reused
            self.console.print(Text(f"  {describe_reuse(view)}", style="dim"))
        if self._status is not None:
            self._status.update(Text(line))
        elif self.verbose or step.kind in LOGGED_STEPS:
            self.console.print(Text(f"  {line}", style="dim"))


def step_progress(ctx: typer.Context) -> StepProgress:
    """The display a command's options ask for: none with --quiet or --json (stderr then holds at most
    the one JSON error), a line for every step with --verbose."""
    options = globals_of(ctx)
    return StepProgress(err(), quiet=options.quiet or JSON_ERRORS.get(), verbose=options.verbose)
