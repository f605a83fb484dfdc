"""Wiring: the default adapters an engine uses when it is given none, and the opening of a runner on
a workspace and a store (for `Engine.open` and for workers).

Adapters are built on first use, so that a read-only command never needs a teacher or a student (nor
imports their SDKs).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_es.config.paths import resolve
from distill_es.config.settings import Settings
from distill_es.domain.errors import NotAWorkspace
from distill_es.domain.layout import STATE_DIR
from distill_es.store.app import open_store
from distill_es.store.projections import SessionIndex
from distill_es.store.urls import default_store_url

# Each adapter's module is imported by the property that builds it, and the session runner's when a
# runner is opened: a read command imports neither the SDKs nor the phases (docs/performance.md).
if TYPE_CHECKING:
    from distill_es.adapters.retry import RetryPolicy, Wait, WaitObserver
    from distill_es.app.progress import ScoringObserver, StepObserver
    from distill_es.app.session_runner import Runner
    from distill_es.ports import Judge, Scorer, StudentRunner, TraceSource, Workspace


class DefaultAdapters:
    """The adapters given to `Engine.open`, and the defaults for the others, each built when first
    used: the Anthropic teacher, the OpenAI-compatible student, the exact-match judge (an LLM judge is
    wrapped to put its calls on the cost ledger), the student scorer, the workspace's traces and its
    git workspace."""

    def __init__(
        self,
        home: Path,
        settings: Settings,
        *,
        teacher: Any = None,
        student: StudentRunner | None = None,
        judge: Judge | None = None,
        scorer: Scorer | None = None,
        traces: TraceSource | None = None,
        workspace: Workspace | None = None,
        on_wait: WaitObserver | None = None,
    ) -> None:
        self.home, self.settings = home, settings
        self._teacher, self._student, self._judge = teacher, student, judge
        self._scorer, self._traces, self._workspace = scorer, traces, workspace
        self.on_wait = on_wait  # told before every retry wait of a teacher, judge or student call

    @property
    def teacher(self) -> Any:
        if self._teacher is None:
            from distill_es.adapters.teacher import default_teacher

            self._teacher = default_teacher()
        return self._teacher

    @property
    def student(self) -> StudentRunner:
        if self._student is None:
            from distill_es.adapters.student import OpenAIStudent  # the openai SDK: only when needed

            self._student = OpenAIStudent(
                self.home, self.settings.student, network=self.settings.network, on_wait=self.waiting
            )
        return self._student

    @property
    def judge(self) -> Judge:
        from distill_es.adapters.judge import MatchJudge
        from distill_es.app.ledger_judge import LedgerJudge

        if self._judge is None:
            self._judge = MatchJudge()
        elif hasattr(self._judge, "score_with_message") and not isinstance(self._judge, LedgerJudge):
            pricing = self.settings.recorded().get("pricing")
            self._judge = LedgerJudge(self._judge, self.retry_policy(), self.waiting, pricing)
        return self._judge

    def built_judge(self) -> Judge | None:
        return self._judge

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            from distill_es.adapters.scorer import StudentScorer

            self._scorer = StudentScorer(self.student, self.judge)
        return self._scorer

    @property
    def traces(self) -> TraceSource:
        if self._traces is None:
            from distill_es.adapters.traces import open_trace_source

            self._traces = open_trace_source(self.home, self.settings.traces_source(self.home))
        return self._traces

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from distill_es.workspace.git_workspace import GitWorkspace

            workspace = GitWorkspace(self.home)
            workspace.init()
            self._workspace = workspace
        return self._workspace

    def opened_workspace(self) -> Any:
        if self._workspace is None and (self.home / ".git").exists():
            from distill_es.workspace.git_history import GitHistory

            return GitHistory(self.home)  # read only: never `init` for a read, nor import GitPython
        return self._workspace

    def retry_policy(self) -> RetryPolicy:
        from distill_es.adapters.retry import RetryPolicy

        return RetryPolicy.from_settings(self.settings.network)

    def waiting(self, wait: Wait) -> None:
        if self.on_wait is not None:
            self.on_wait(wait)


def workspace_home(home: str | Path, *, create: bool) -> Path:
    """`home` expanded and resolved; a workspace there, or scaffolded there when `create`."""
    from distill_es.workspace.scaffold import create_workspace, is_workspace

    path = resolve(home)
    if is_workspace(path):
        return path
    if not create:
        raise NotAWorkspace(
            f"{path} is not a distill_es workspace (it needs config.toml and distill_es.toml); "
            f"create one with `distill-es init {path}`, or open it with create=True"
        )
    path.mkdir(parents=True, exist_ok=True)
    create_workspace(path)
    return path


def open_runner(
    home: str | Path,
    *,
    settings: Settings | Mapping[str, Any] | None = None,
    store_url: str | None = None,
    create_tables: bool = True,
    create: bool = False,
    on_step: StepObserver | None = None,
    on_scoring: ScoringObserver | None = None,
    read_only: bool = False,
    own: bool | None = None,
    **adapters: Any,
) -> Runner:
    """A runner on a workspace and a store; `adapters` are those given (teacher, student, judge,
    scorer, traces, workspace, on_wait), the defaults serve for the rest. `Engine.open` documents
    the arguments. `own` (default: `create_tables`): the workspace must belong to this store
    (recorded on first use); False lets `cancel` end a session stranded in another store."""
    home = workspace_home(home, create=create)
    if isinstance(settings, Settings):
        resolved = settings
    else:
        resolved = Settings.load(home, **dict(settings or {}))
    url = store_url or os.environ.get("DISTILL_ES_STORE") or default_store_url(home)
    create_tables = create_tables and not read_only
    if create_tables if own is None else own:  # writes: only the workspace's own store (exit 4)
        from distill_es.app.ownership import require_owner

        require_owner(home, url)
    store = open_store(
        url, create_tables=create_tables, missing_is_empty=url == default_store_url(home), read_only=read_only
    )
    state = home / STATE_DIR
    suffix = "" if url == default_store_url(home) else "-" + hashlib.sha256(url.encode()).hexdigest()[:12]
    index_path = state / f"views{suffix}.sqlite"
    # read_only: an index that is missing or cannot be written lives in memory (nothing is created)
    writable = index_path.is_file() and os.access(index_path, os.W_OK) and os.access(state, os.W_OK)
    memory = read_only and not writable
    try:
        index = SessionIndex(index_path, store, create=create_tables, memory=memory, own_store=not suffix)
    except BaseException:
        store.close()
        raise
    from distill_es.app.session_runner import Runner

    return Runner(
        home,
        settings=resolved,
        store=store,
        index=index,
        adapters=DefaultAdapters(home, resolved, **adapters),
        on_step=on_step,
        on_scoring=on_scoring,
    )


def worker_opener(home: Path, store_url: str) -> Runner:
    """How a worker opens a session's workspace: the default adapters, the worker's store, no tables
    created (the store must exist)."""
    return open_runner(home, store_url=store_url, create_tables=False, own=True)


# What running a session imports beyond opening a runner: the phases, the adapters with their SDKs and
# GitPython, and the HTTP transport the SDKs load at their first request (an SDK internal, so optional).
SESSION_MODULES = (
    "distill_es.app.session_runner",
    "distill_es.app.activities",
    "distill_es.adapters.teacher",
    "distill_es.adapters.student",
    "distill_es.adapters.scorer",
    "distill_es.adapters.judge",
    "distill_es.adapters.traces",
    "distill_es.workspace.git_workspace",
    "anthropic",
    "openai",
)
SDK_INTERNALS = ("httpcore2",)


def warm_up() -> None:
    """Import now what running a session will (about 1.5–3 s of CPU): a long-lived worker pays it once
    before it claims work, not inside its first session, where it would hold that session's locks,
    delay a takeover and compete for the CPU with the other workers' sessions."""
    for name in SESSION_MODULES:
        importlib.import_module(name)
    from distill_es.app.activities import HANDLERS

    for _ in HANDLERS.values():  # each step's handler module (the table imports them on first use)
        pass
    for name in SDK_INTERNALS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
