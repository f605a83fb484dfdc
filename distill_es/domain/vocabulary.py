"""The words of a learning session: enums and value objects.

Same field names and meanings as the reference (OpenJarvis spec search §2), with its defects fixed:
models are frozen and refuse unknown keys, an edit's pillar must agree with its op, a plan refuses
duplicate edit ids, and benchmark scores are bounded to [0, 1].
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The enums live apart from the models (command-line options need them without pydantic).
from distill_es.domain.enums import (
    OP_PILLAR,
    AutonomyMode,
    EditOp,
    EditPillar,
    EditRiskTier,
    SessionStatus,
    TriggerKind,
)

EditOutcomeStatus = Literal[
    "applied",
    "rejected_by_gate",  # a gate ran and refused it
    "pending_review",
    "rejected_by_user",
    "rolled_back",
    "skipped",
    "refused",  # refused when the plan was frozen: never part of the plan
    "invalid",  # its check failed before it was applied
    "apply_failed",  # writing it to the workspace failed; nothing of it landed
]

Fraction = Field(ge=0.0, le=1.0)


class Value(BaseModel):
    """Base for value objects: immutable, unknown keys refused. Each model's validator is built on
    its first use (`defer_build`): a command that reads events but no views builds none of the ~50."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Edit(Value):
    id: str = Field(min_length=1, max_length=200)
    pillar: EditPillar
    op: EditOp
    target: str = Field(default="", max_length=500)
    payload: dict[str, Any] = Field(default_factory=dict)
    rationale: str = Field(default="", max_length=20_000)
    expected_improvement: str = Field(default="", max_length=200)  # a cluster id
    risk_tier: EditRiskTier = EditRiskTier.REVIEW  # advisory from the teacher; the engine assigns
    references: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _pillar_matches_op(self) -> Edit:
        expected = OP_PILLAR[self.op]
        if self.pillar != expected:
            raise ValueError(
                f"op {self.op.value!r} belongs to pillar {expected.value!r}, not {self.pillar.value!r}"
            )
        return self


class FailureCluster(Value):
    id: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    sample_trace_ids: list[str] = Field(default_factory=list, max_length=500)
    task_ids: list[str] = Field(default_factory=list, max_length=1000)
    student_failure_rate: float = Fraction
    teacher_success_rate: float = Fraction
    skill_gap: str = Field(default="", max_length=20_000)
    addressed_by_edit_ids: list[str] = Field(default_factory=list)

    @property
    def has_evidence(self) -> bool:
        """The reference drops clusters where both rates are zero: nothing was measured."""
        return not (self.student_failure_rate == 0.0 and self.teacher_success_rate == 0.0)


class LearningPlan(Value):
    session_id: str
    diagnosis_summary: str = ""
    failure_clusters: list[FailureCluster] = Field(default_factory=list)
    edits: list[Edit] = Field(default_factory=list)
    teacher_model: str = ""
    estimated_cost_usd: float = Field(default=0.0, ge=0.0)
    created_at: datetime | None = None

    @field_validator("edits")
    @classmethod
    def _unique_edit_ids(cls, edits: list[Edit]) -> list[Edit]:
        seen: set[str] = set()
        for edit in edits:
            if edit.id in seen:
                raise ValueError(f"duplicate edit id {edit.id!r}")
            seen.add(edit.id)
        return edits


class BenchmarkSnapshot(Value):
    benchmark_version: str
    overall_score: float = Fraction
    cluster_scores: dict[str, float] = Field(default_factory=dict)
    task_count: int = Field(ge=0)
    elapsed_seconds: float = Field(default=0.0, ge=0.0)
    tree_sha: str | None = None  # the tracked workspace tree that was scored

    @field_validator("cluster_scores")
    @classmethod
    def _bounded(cls, scores: dict[str, float]) -> dict[str, float]:
        for cluster_id, score in scores.items():
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"cluster score for {cluster_id!r} is {score}, outside [0, 1]")
        return scores


class EditOutcome(Value):
    edit_id: str
    status: EditOutcomeStatus
    benchmark_delta: float | None = None
    cluster_deltas: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    applied_at: datetime | None = None
    risk_tier: EditRiskTier | None = None
    commit_sha: str | None = None


class Trigger(Value):
    """What started a session: its kind and the facts that made it fire.

    The facts are read as attributes too, as OpenJarvis's trigger dataclasses have them
    (`UserFlagTrigger(trace_id="t1").trace_id`); they stay stored in `metadata` only, so stored
    events and equality are unchanged. A fact the trigger does not carry is an AttributeError."""

    kind: TriggerKind
    metadata: dict[str, Any] = Field(default_factory=dict)

    def _fact(self, name: str) -> Any:
        if name not in self.metadata:
            raise AttributeError(f"a {self.kind.value} trigger has no {name!r}")
        return self.metadata[name]

    @property
    def trace_id(self) -> str:  # user_flag
        return self._fact("trace_id")

    @property
    def cron(self) -> str:  # scheduled
        return self._fact("cron")

    @property
    def new_trace_count(self) -> int:  # scheduled
        return self._fact("new_trace_count")

    @property
    def cluster_description(self) -> str:  # cluster
        return self._fact("cluster_description")

    @property
    def trace_ids(self) -> list[str]:  # cluster
        return list(self._fact("trace_ids"))

    @property
    def failure_rate(self) -> float:  # cluster
        return self._fact("failure_rate")


class LearningSession(Value):
    """The current-state view of a session, folded from its events (never stored on its own)."""

    id: str
    parent_session_id: str | None = None
    trigger: TriggerKind
    trigger_metadata: dict[str, Any] = Field(default_factory=dict)
    status: SessionStatus
    autonomy_mode: AutonomyMode
    started_at: datetime
    ended_at: datetime | None = None
    version: int = 0
    diagnosis_markdown: str | None = None
    plan: LearningPlan | None = None
    benchmark_before: BenchmarkSnapshot | None = None
    benchmark_after: BenchmarkSnapshot | None = None
    edit_outcomes: list[EditOutcome] = Field(default_factory=list)
    git_checkpoint_pre: str | None = None
    git_checkpoint_post: str | None = None
    teacher_cost_usd: float = Field(default=0.0, ge=0.0)
    student_calls_made: int = 0
    student_calls_reused: int = 0
    error: str | None = None
    # While the last recorded fact is an outside failure (StepInterrupted): what failed, to resume.
    interruption: str | None = None

    @property
    def pending_edit_ids(self) -> list[str]:
        return [o.edit_id for o in self.edit_outcomes if o.status == "pending_review"]
