"""The loop's decision rules, pure: when a finished session improved things, and when the loop stops.

Fixes the reference's `SpecSearchLoop` (spec §8.2, §11 item 18):
- a session left awaiting review stops the loop (pending edits must not pile up);
- a session without an after-score is "no improvement", never a score of 0 (and the record says so);
- the budget is the sum of the sessions' recorded cost ledgers, checked before each new session.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from distill_es.domain.loop.events import LoopSessionFinished
from distill_es.domain.vocabulary import SessionStatus


class StopReason(StrEnum):
    STAGNATION = "stagnation"  # k sessions in a row without improving the best gated score by > eps
    BUDGET = "budget"  # the sessions' recorded costs reached max_total_cost_usd
    FAILED = "failed"  # a session failed
    AWAITING_REVIEW = "awaiting_review"  # a session waits for a reviewer: nothing new until it is decided
    ROLLED_BACK = "rolled_back"  # a reviewer rolled the session back while the loop was running it


Stop = tuple[StopReason, str]


@dataclass(frozen=True)
class Verdict:
    improved: bool
    best: float | None
    streak: int
    note: str


def assess(
    *, after: float | None, before: float | None, best: float | None, streak: int, eps: float
) -> Verdict:
    """Did this session improve the best gated score by more than eps?

    Until a session has improved anything, the best is the baseline the loop started from (the
    first session's before-score): a session that leaves the score where it was is not progress.
    A session without an after-score (no edit reached the gate) is no improvement — not a 0.
    """
    reference = best if best is not None else before
    if after is None:
        note = "no after-score (no edit reached the gate): counted as no improvement, not as 0"
        return Verdict(False, reference, streak + 1, note)
    if reference is None:
        return Verdict(True, after, 0, f"first gated score {after:.4f}")
    if after > reference + eps:
        return Verdict(True, after, 0, f"improved the best score {reference:.4f} → {after:.4f}")
    note = f"after-score {after:.4f} does not beat the best {reference:.4f} by more than {eps:g}"
    return Verdict(False, reference, streak + 1, note)


def stop_after(last: LoopSessionFinished, *, stagnation_k: int, stagnation_eps: float) -> Stop | None:
    """The stop the last finished session calls for, if any (failure first, then stagnation)."""
    if last.status == SessionStatus.FAILED:
        return StopReason.FAILED, f"session {last.session_id} failed: {last.error or 'no error recorded'}"
    if last.status == SessionStatus.AWAITING_REVIEW:
        return StopReason.AWAITING_REVIEW, (
            f"session {last.session_id} awaits review; decide its pending edits "
            "(`distill-es review`), then start a new loop"
        )
    if last.status == SessionStatus.ROLLED_BACK:
        return StopReason.ROLLED_BACK, f"session {last.session_id} was rolled back"
    if last.streak >= stagnation_k:
        best = "none" if last.best_score is None else f"{last.best_score:.4f}"
        return StopReason.STAGNATION, (
            f"{stagnation_k} session(s) in a row without improving the best gated score ({best}) "
            f"by more than {stagnation_eps:g}"
        )
    return None


def budget_stop(*, spent: float, budget: float, sessions: int) -> Stop | None:
    """Stop before another session once the recorded costs reach the budget."""
    if spent < budget:
        return None
    return StopReason.BUDGET, (
        f"spent ${spent:.4f} of ${budget:.2f} over {sessions} session(s) (their cost ledgers)"
    )


def waiting_for_review(session_id: str) -> Stop:
    """Stop rather than start a session while another of the workspace awaits a reviewer."""
    return StopReason.AWAITING_REVIEW, (
        f"session {session_id} awaits review; decide its pending edits "
        "(`distill-es review`) before more sessions pile up"
    )
