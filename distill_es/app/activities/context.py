"""What a step handler works with: the workspace's home, the store, the adapters (built on first use),
and the observer of scoring progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from distill_es.adapters.retry import RetryPolicy, Wait
from distill_es.app.ledger_judge import LedgerJudge
from distill_es.app.progress import ScoringObserver
from distill_es.domain.anchors import anchor_value
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.react import Outcome
from distill_es.ports import Judge, Scorer, StudentRunner, TraceSource, Workspace, accepts_keyword
from distill_es.store.app import EventStore


class Adapters(Protocol):
    """The outside world as the engine reaches it; each adapter is built the first time it is used
    (a read-only command never needs a teacher or a student). `distill_es.compose` wires the defaults."""

    @property
    def teacher(self) -> Any: ...

    @property
    def student(self) -> StudentRunner: ...

    @property
    def judge(self) -> Judge: ...

    @property
    def scorer(self) -> Scorer: ...

    @property
    def traces(self) -> TraceSource: ...

    @property
    def workspace(self) -> Workspace: ...

    def built_judge(self) -> Judge | None:
        """The judge if it was built, without building it."""
        ...

    def opened_workspace(self) -> Any:
        """The workspace if one was given or built, else a read-only look at the git repository in
        home, if any (reading anchors must never create a repository)."""
        ...

    def retry_policy(self) -> RetryPolicy: ...

    def waiting(self, wait: Wait) -> None:
        """Tell the observer of retry waits (if any) that a call waits before its next try."""
        ...


@dataclass(frozen=True)
class StepContext:
    home: Path
    store: EventStore
    adapters: Adapters
    on_scoring: ScoringObserver | None = None

    def ledger_judge(self) -> LedgerJudge | None:
        judge = self.adapters.built_judge()
        return judge if isinstance(judge, LedgerJudge) else None

    def judge_calls(self, version: int) -> tuple[dict[str, Any], ...]:
        """The judge's calls since the last step, as teacher calls to record (see `LedgerJudge`)."""
        judge = self.ledger_judge()
        return tuple(dict(call) for call in judge.paid_calls(version)) if judge is not None else ()


Handler = Callable[[StepContext, Session, Any], Outcome]


def log_head(session: Session, method: Any) -> dict[str, str]:
    """`log_head=` for a workspace commit, when the workspace takes it: the session's last saved
    event (a step starts with nothing pending; if something were, the saved head is unknown)."""
    if session.pending_events or not accepts_keyword(method, "log_head"):
        return {}
    return {"log_head": anchor_value(session.version, session.last_digest)}
