"""The live progress display: every task scored moves the line on a terminal; logs stay short."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from distill_es.app.progress import ScoringProgress
from distill_es.cli.progress import StepProgress
from tests.cli.conftest import cli


def ticks(to_score: int, total: int) -> list[ScoringProgress]:
    return [ScoringProgress("s1", "ab" * 20, n, to_score, total) for n in range(1, to_score + 1)]


def test_a_terminal_sees_every_task_scored() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    shown: list[str] = []
    with StepProgress(console) as progress:
        assert progress._status is not None
        for tick in ticks(3, 5):
            progress.scoring(tick)
            shown.append(str(progress._status.status))
    assert shown == [f"scoring tree ababababab · {n}/3 tasks scored · 2 already scored" for n in (1, 2, 3)]


def test_a_log_gets_one_line_per_tree_when_it_is_scored() -> None:
    out = io.StringIO()
    with StepProgress(Console(file=out, force_terminal=False, width=200)) as progress:
        for tick in ticks(4, 4):
            progress.scoring(tick)
    assert out.getvalue().splitlines() == ["  scoring tree ababababab · 4/4 tasks scored"]


def test_progress_says_reused_in_the_summarys_own_count(tmp_path: Path) -> None:
    """No line says "0 reused" while the summary says 8: the reused count is shown as the summary shows it."""
    result = cli("demo", "--home", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    summary = re.search(r"student calls (\d+) made, (\d+) reused", result.stdout)
    assert summary and int(summary.group(2)) > 0
    reuse_lines = re.findall(r"student calls · (\d+) made, (\d+) reused", result.stderr)
    assert reuse_lines and reuse_lines[-1] == summary.groups()
    assert not re.search(r"\b0 reused", result.stderr)
