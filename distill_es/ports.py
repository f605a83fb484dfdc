"""The engine's view of the outside world: one Protocol per port, and the values that cross them.

Adapters in `distill_es.adapters` and `distill_es.workspace` implement these; tests and embedders
may pass any object that fits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from pydantic import Field

from distill_es.domain.vocabulary import AutonomyMode, Edit, EditRiskTier, LearningSession, Trigger, Value

A = TypeVar("A")  # an aggregate class a store lookup must find


class BenchmarkTask(Value):
    task_id: str = Field(min_length=1)
    query: str
    reference_answer: str
    category: str | None = None
    query_class: str | None = None


class TraceRecord(Value):
    trace_id: str
    query: str = ""
    result: str = ""
    agent: str | None = None
    model: str | None = None
    outcome: str | None = None  # "success" | "failure" | None
    feedback: float | None = None
    started_at: float | None = None  # epoch seconds
    query_class: str | None = None
    steps: list[Any] = Field(default_factory=list)
    total_tokens: int | None = None
    latency_seconds: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class StudentResult(Value):
    task_id: str
    output: str = ""
    model: str = ""
    latency_seconds: float = 0.0
    tokens_used: int = 0
    error: str | None = None  # set when the student could not answer (after retries)


class JudgeVerdict(Value):
    score: float = Field(ge=0.0, le=1.0)
    reasoning: str = ""


class TaskScore(Value):
    """One benchmark task scored on one workspace tree: the unit the gate is built from."""

    task_id: str
    score: float = Field(ge=0.0, le=1.0)
    output: str = ""
    model: str = ""
    error: str | None = None
    latency_seconds: float = 0.0


class EditCheck(Value):
    ok: bool
    reason: str = ""


class AppliedEdit(Value):
    commit_sha: str  # full 40-hex sha of the edit's own commit
    tree_sha: str  # tracked tree after the edit
    changed_files: list[str] = Field(default_factory=list)


# --- ports -------------------------------------------------------------------------------------


class MessagesAPI(Protocol):
    def create(self, **kwargs: Any) -> Any: ...


@runtime_checkable
class Teacher(Protocol):
    """Anything shaped like `anthropic.Anthropic()`: `teacher.messages.create(...)` returns a Message."""

    messages: MessagesAPI


@runtime_checkable
class TraceSource(Protocol):
    def count(self) -> int: ...

    def list(
        self, limit: int = 20, agent: str | None = None, outcome: str | None = None
    ) -> list[TraceRecord]: ...

    def get(self, trace_id: str) -> TraceRecord | None: ...

    def search(self, query: str, limit: int = 20) -> list[TraceRecord]: ...


@runtime_checkable
class StudentRunner(Protocol):
    """Runs the student agent, as the workspace currently configures it, on benchmark tasks."""

    def run(self, task: BenchmarkTask) -> StudentResult: ...

    def run_many(
        self, tasks: Sequence[BenchmarkTask], on_result: ResultObserver | None = None
    ) -> list[StudentResult]:
        """Results in the order of `tasks`, whatever order they completed in. `on_result(i, result)` is
        called as the answer to `tasks[i]` arrives, possibly from another thread. (Runners written
        before `on_result` existed still fit: callers check `accepts_keyword` first.)"""
        ...


@runtime_checkable
class Judge(Protocol):
    def score(self, task: BenchmarkTask, output: str) -> JudgeVerdict: ...


@runtime_checkable
class Scorer(Protocol):
    """Scores benchmark tasks against the current workspace; results in the order of `tasks`."""

    def score(
        self, tasks: Sequence[BenchmarkTask], on_scored: ScoreObserver | None = None
    ) -> list[TaskScore]:
        """`on_scored(i, score)` as `tasks[i]` is scored, possibly from another thread."""
        ...


ResultObserver = Callable[[int, StudentResult], None]
ScoreObserver = Callable[[int, TaskScore], None]


def run_in_turn(
    run: Callable[[BenchmarkTask], StudentResult],
    tasks: Sequence[BenchmarkTask],
    on_result: ResultObserver | None = None,
) -> list[StudentResult]:
    """`run_many` for a runner without concurrency: one task after another, each reported as done."""
    results = []
    for index, task in enumerate(tasks):
        results.append(run(task))
        if on_result is not None:
            on_result(index, results[-1])
    return results


def accepts_keyword(method: Callable[..., Any], name: str) -> bool:
    """Whether `method` takes the keyword argument `name` (ports may be older than an optional hook)."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


@runtime_checkable
class Workspace(Protocol):
    """The student's files under git. Every write is one commit that carries the edit's trailers."""

    root: Path

    def validate(self, edit: Edit) -> EditCheck: ...

    def preview(self, edit: Edit) -> str: ...

    def apply(self, edit: Edit, *, session_id: str, risk_tier: EditRiskTier) -> AppliedEdit: ...

    def revert(self, commit_sha: str, *, session_id: str, edit_id: str) -> str: ...

    def head_sha(self) -> str: ...

    def tree_sha(self) -> str: ...

    def find_edit_commit(self, session_id: str, edit_id: str) -> str | None: ...

    def find_revert_commit(self, session_id: str, edit_id: str) -> str | None: ...

    def restore(self, sha: str) -> None: ...

    def dirty_paths(self) -> list[str]: ...

    def read_prompt(self, agent: str) -> str | None:
        """The agent's system prompt as the workspace holds it; None when it has no prompt file.
        A path that would leave the workspace is refused (`InvalidEdit`)."""
        ...


# --- what loops, the daemon and workers need of the engine ------------------------------------------
class AggregateStore(Protocol):
    """The event store as loops and trigger logs use it (`distill_es.store.app.EventStore` fits)."""

    @property
    def url(self) -> str: ...

    def save(self, aggregate: Any) -> int: ...

    def find(self, aggregate_id: UUID) -> Any | None: ...

    def find_as(
        self, aggregate_id: UUID, kind: type[A], not_found: Callable[[str], Exception]
    ) -> A | None: ...

    def aggregate_ids(self, created_topic: str, batch: int = 1000) -> Iterator[UUID]: ...

    def stored_events(self, aggregate_id: str | UUID) -> list[Any]:
        """The aggregate's rows as stored (what a digest-chain check reads)."""
        ...

    def decode_state(self, stored: Any) -> dict[str, Any]: ...


class SessionRows(Protocol):
    """The session index's rows, newest first (`distill_es.store.projections.SessionIndex` fits)."""

    def rows(self, **filters: Any) -> list[dict[str, Any]]: ...


@runtime_checkable
class SessionRunner(Protocol):
    """What loops, the daemon and workers need of the engine: start sessions, run them to rest, and
    the workspace, store and read model they share (`app.loop`, `app.daemon`, `app.worker` import no
    engine). `distill_es.Engine` fits, and so does the bare runner the worker opens
    (`distill_es.compose.worker_opener`)."""

    @property
    def home(self) -> Path: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def store(self) -> AggregateStore: ...

    @property
    def index(self) -> SessionRows: ...

    @property
    def traces(self) -> TraceSource: ...

    def start(
        self,
        trigger: Trigger,
        *,
        autonomy: AutonomyMode | str | None = None,
        parent_session_id: str | None = None,
    ) -> str:
        """Record a new session (nothing else happens until `run`)."""
        ...

    def run(self, session_id: str) -> LearningSession:
        """Drive the session until it rests; `SessionBusy` while another process runs it."""
        ...

    def cost_ledger(self, session_id: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


# Opens a runner on a workspace and a store URL, creating no tables (the worker's engine opener).
RunnerOpener = Callable[[Path, str], SessionRunner]
