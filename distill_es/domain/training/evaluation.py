"""Eval summary and promotion gate: pure rules over recorded values.

The candidate score is the trainer's own eval (its result's `eval` block); the baseline is the one
given when the run was requested. distill_es computes the verdict itself: a verdict the trainer
might report is not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill_es.domain.training.spec import EvalBlock

Verdict = Literal["pass", "fail", "compare_only"]
DEPLOYABLE_VERDICTS: frozenset[str] = frozenset({"pass", "compare_only"})


@dataclass(frozen=True)
class EvalSummary:
    baseline_score: float | None
    candidate_score: float | None
    delta: float | None
    verdict: Verdict
    reason: str
    benchmark_id: str | None = None
    mode: str | None = None


def summarize_eval(eval_block: EvalBlock | None, baseline: float | None, min_delta: float) -> EvalSummary:
    """pass: candidate − baseline > min_delta; fail: not better, or no candidate score at all;
    compare_only: a candidate score but no baseline to judge it against."""
    if eval_block is None:
        return EvalSummary(
            baseline, None, None, "fail", "the trainer reported no eval; nothing shows the checkpoint helps"
        )
    candidate = eval_block.candidate_score
    extra = {"benchmark_id": eval_block.benchmark_id, "mode": eval_block.mode}
    if baseline is None:
        reason = f"candidate scored {candidate:.3f}; no baseline was given, so it is recorded for comparison"
        return EvalSummary(None, candidate, None, "compare_only", reason, **extra)
    delta = round(candidate - baseline, 6)
    if delta > min_delta:
        reason = (
            f"candidate {candidate:.3f} beats baseline {baseline:.3f} by {delta:+.3f} (> {min_delta:+.3f})"
        )
        return EvalSummary(baseline, candidate, delta, "pass", reason, **extra)
    reason = f"candidate {candidate:.3f} vs baseline {baseline:.3f}: {delta:+.3f}, not above {min_delta:+.3f}"
    return EvalSummary(baseline, candidate, delta, "fail", reason, **extra)


def promotion(verdict: str) -> tuple[bool, str]:
    """(deployable, reason): the seed's gate — deployable only on pass or compare_only."""
    if verdict in DEPLOYABLE_VERDICTS:
        return True, f"eval verdict {verdict!r}: the checkpoint may be deployed"
    return False, f"eval verdict {verdict!r}: the checkpoint is kept for lineage but must not be deployed"
