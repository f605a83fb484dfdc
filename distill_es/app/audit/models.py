"""What `regate` and `explain` return: plain pydantic values whose JSON (`model_dump(mode="json")`) is the
`--json` output of `distill-es regate` / `distill-es explain` and what the web view renders.

Field names are stable (docs/audit.md documents the shape); new fields may be added, none renamed.
Every string that came from the teacher, traces or files is kept as recorded except where a field says
it was scrubbed: renderers escape it (terminal: `terminal_safe.inert`; HTML: autoescape).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------------------------------------
# regate


class GatePolicy(_Model):
    """The two numbers the gate decides by (distill_es.toml `[gate]`)."""

    max_regression: float = Field(description="ε: the most any non-target cluster may drop")
    min_improvement: float = Field(description="the target cluster must improve by more than this")


class ClusterChange(_Model):
    """One cluster's score on the gate's before and after trees."""

    cluster_id: str = Field(description="the failure cluster's id (from the diagnosis)")
    before: float | None = Field(description="its score before the edit; None: no score recorded")
    after: float | None = Field(description="its score after the edit; None: no score recorded")
    delta: float | None = Field(description="after − before (None when either side is missing)")
    target: bool = Field(description="True for the cluster the edit meant to improve")


class RegatedGate(_Model):
    """One recorded gate, decided again under the what-if policy."""

    session_id: str = Field(description="the session the gate belongs to")
    edit_id: str = Field(description="the gated edit")
    version: int = Field(description="the event version of the recorded GateEvaluated")
    target_cluster: str = Field(description="the cluster the edit meant to improve")
    recorded_policy: GatePolicy = Field(description="the policy the session ran under (its frozen settings)")
    recorded_accepted: bool = Field(description="the recorded verdict: True kept, False rejected")
    recorded_reason: str = Field(description="the recorded gate's reason (engine text)")
    redecidable: bool = Field(description="False: this gate cannot be decided again (see `why_not`)")
    why_not: str | None = Field(default=None, description="why the gate cannot be re-decided, else None")
    scores_from: Literal["tasks_scored", "gate_snapshots", "none"] = Field(
        description="where the before/after readings come from: the recorded TasksScored (recomputed), "
        "the snapshots recorded in GateEvaluated (when task scores are missing), or none"
    )
    whatif_accepted: bool | None = Field(
        default=None, description="the verdict under the what-if policy (None when not re-decidable)"
    )
    whatif_reason: str | None = Field(default=None, description="the what-if decision's reason")
    flipped: bool = Field(description="True when the what-if verdict differs from the recorded one")
    delta: float | None = Field(default=None, description="overall score after − before")
    clusters: list[ClusterChange] = Field(
        default_factory=list, description="per-cluster before/after, target first, then by id"
    )
    after_a_flip: bool = Field(
        default=False,
        description="True when an earlier gate of the same session flipped: this gate was scored on a "
        "tree the what-if would not have had, so its what-if verdict assumes the recorded history",
    )
    caveats: list[str] = Field(
        default_factory=list, description="what this what-if verdict cannot tell (plain sentences)"
    )


class SessionRegate(_Model):
    """Every recorded gate of one session, re-decided."""

    session_id: str = Field(description="the session")
    status: str = Field(description="the session's status when read")
    recorded_policy: GatePolicy = Field(description="the policy the session ran under")
    policy: GatePolicy = Field(description="the what-if policy applied to this session")
    gates: list[RegatedGate] = Field(default_factory=list, description="its gates, in log order")
    flips: int = Field(description="how many of its gates would flip")


class RegateReport(_Model):
    """The answer of `regate`: what would have happened to recorded gates under another policy.
    Nothing was recorded, no model called, no workspace touched to produce it."""

    max_regression: float | None = Field(
        description="the what-if ε asked for; None: each session's own recorded value"
    )
    min_improvement: float | None = Field(
        description="the what-if minimum improvement asked for; None: each session's recorded value"
    )
    sessions: list[SessionRegate] = Field(
        default_factory=list, description="sessions with gates, newest first"
    )
    gates: int = Field(description="gates found in the sessions read")
    redecided: int = Field(description="gates that could be decided again")
    flips: int = Field(description="gates whose verdict would flip")
    skipped_sessions: list[str] = Field(
        default_factory=list, description="sessions not read, each 'id: why' (e.g. a damaged log)"
    )
    limits: list[str] = Field(
        default_factory=list, description="what any what-if cannot answer (plain sentences)"
    )

    @property
    def flipped(self) -> list[RegatedGate]:
        return [gate for session in self.sessions for gate in session.gates if gate.flipped]


# ----------------------------------------------------------------------------------------------
# explain


class Link(_Model):
    """One link of an edit's chain. A link that does not apply is present with `applies` False."""

    applies: bool = Field(description="False: this link does not apply to the edit (`note` says why)")
    note: str = Field(default="", description="a one-line summary, or why the link does not apply")
    versions: list[int] = Field(default_factory=list, description="the event versions the link is read from")


class CitedTrace(_Model):
    """A trace the edit or its cluster cites."""

    trace_id: str = Field(description="the trace id as cited")
    cited_by: list[str] = Field(description="'edit' (its references) and/or 'cluster' (its sample traces)")
    found: bool = Field(description="False: no recorded text for this id")
    source: str = Field(
        description="where the excerpt comes from: 'log' (a diagnose tool result), "
        "'trace_source' (the workspace's traces), or '' when not found"
    )
    version: int | None = Field(
        default=None, description="the event version of the tool result, if from the log"
    )
    outcome: str | None = Field(default=None, description="the trace's outcome, when known")
    excerpt: str = Field(default="", description="at most 600 characters, secrets scrubbed")


class TracesLink(Link):
    traces: list[CitedTrace] = Field(default_factory=list, description="the cited traces, edit's first")


class ClusterLink(Link):
    cluster_id: str = Field(default="", description="the cluster the edit meant to improve")
    description: str = Field(default="", description="the teacher's description of the cluster")
    student_failure_rate: float | None = Field(default=None, description="measured by the teacher, 0–1")
    teacher_success_rate: float | None = Field(default=None, description="measured by the teacher, 0–1")
    skill_gap: str = Field(default="", description="the teacher's words on the gap")
    sample_trace_ids: list[str] = Field(default_factory=list, description="traces that show the failure")
    task_ids: list[str] = Field(default_factory=list, description="benchmark tasks that measure the cluster")


class TeacherCallLink(Link):
    call_key: str = Field(default="", description="the recorded call's key (e.g. 'plan')")
    purpose: str = Field(default="", description="diagnose | plan | self_run | judge")
    model: str = Field(default="", description="the teacher model that answered")
    request_digest: str = Field(default="", description="sha256 of the request (cassette key)")
    input_tokens: int = Field(default=0, description="usage.input_tokens")
    output_tokens: int = Field(default=0, description="usage.output_tokens")
    usage: dict[str, int] = Field(default_factory=dict, description="the recorded usage, as the API gave it")
    cost_usd: float = Field(default=0.0, description="the call's recorded cost")
    at: str | None = Field(default=None, description="when the call was recorded (ISO 8601)")


class EditLink(Link):
    op: str = Field(default="", description="the edit op")
    pillar: str = Field(default="", description="the edit pillar")
    target: str = Field(default="", description="what it targets")
    rationale: str = Field(default="", description="the teacher's rationale")
    payload: dict[str, Any] = Field(default_factory=dict, description="the edit payload")
    expected_improvement: str = Field(default="", description="the target cluster id")
    references: list[str] = Field(default_factory=list, description="trace ids the teacher cited")
    diff: str = Field(default="", description="the diff: the review preview, else the commit's diff from git")
    diff_source: str = Field(
        default="", description="'review_preview', 'git', or '' when no diff is available"
    )


class RoutingLink(Link):
    proposed_tier: str | None = Field(default=None, description="the tier the teacher proposed (advisory)")
    risk_tier: str | None = Field(default=None, description="the tier the engine assigned")
    autonomy_mode: str = Field(default="", description="the session's autonomy mode")
    route: str | None = Field(default=None, description="apply | review (None: never routed)")
    why: str = Field(default="", description="the routing rule that decided it, in words")


class ValidationLink(Link):
    ok: bool | None = Field(default=None, description="the check's verdict (None: never validated)")
    reason: str = Field(default="", description="the check's reason")


class CommitLink(Link):
    pre_sha: str | None = Field(default=None, description="the commit the edit was applied on")
    commit_sha: str | None = Field(default=None, description="the edit's commit")
    tree_sha: str | None = Field(default=None, description="the tree after the edit")
    changed_files: list[str] = Field(default_factory=list, description="files the commit changed")
    reconciled: bool = Field(
        default=False, description="found in git after a crash, not applied by this process"
    )
    trailers: dict[str, list[str]] = Field(
        default_factory=dict, description="the commit's trailers as read from git ({} when not found)"
    )
    trailers_found: bool = Field(
        default=False, description="False: the commit is not in the workspace's history"
    )


class GateLink(Link):
    task_ids: list[str] = Field(default_factory=list, description="the gate's benchmark subsample")
    seed: int | None = Field(default=None, description="the subsample's seed")
    policy: GatePolicy | None = Field(default=None, description="the ε and minimum improvement it ran under")
    accepted: bool | None = Field(default=None, description="its verdict")
    reason: str = Field(default="", description="its reason")
    before_overall: float | None = Field(default=None, description="overall score before the edit")
    after_overall: float | None = Field(default=None, description="overall score after the edit")
    delta: float | None = Field(default=None, description="after − before")
    clusters: list[ClusterChange] = Field(default_factory=list, description="per-cluster before/after")


class ReviewLink(Link):
    decision: Literal["approved", "rejected", "pending"] | None = Field(
        default=None, description="the reviewer's decision (None: no review)"
    )
    reviewer: str | None = Field(default=None, description="who decided")
    at: str | None = Field(default=None, description="when (ISO 8601)")
    comment: str = Field(default="", description="the reviewer's approval note or rejection reason")


class UndoLink(Link):
    kind: Literal["reverted", "rolled_back"] | None = Field(
        default=None,
        description="reverted (by its gate) or rolled_back (by a session rollback); None: neither",
    )
    revert_sha: str | None = Field(default=None, description="the commit that undid it")
    at: str | None = Field(default=None, description="when (ISO 8601)")
    requested_by: str | None = Field(default=None, description="who asked for the rollback")


class EditLineage(_Model):
    """The causal chain of one edit, from the traces that motivated it to its fate. Read from the
    session's recorded events (and, for trailers, diff and trace excerpts, the workspace's git and traces,
    read only)."""

    session_id: str = Field(description="the session")
    edit_id: str = Field(description="the edit")
    status: str | None = Field(description="the edit's outcome (as `show`), None while on its way")
    session_version: int = Field(description="the session's last event version when read")
    traces: TracesLink = Field(description="the traces cited")
    cluster: ClusterLink = Field(description="the failure cluster it targets")
    teacher_call: TeacherCallLink = Field(description="the teacher call that proposed it")
    edit: EditLink = Field(description="the edit itself")
    routing: RoutingLink = Field(description="its tier and route, and why")
    validation: ValidationLink = Field(description="its validation")
    commit: CommitLink = Field(description="its commit and trailers")
    gate: GateLink = Field(description="its gate")
    review: ReviewLink = Field(description="the reviewer's decision")
    undo: UndoLink = Field(description="any revert or rollback")

    # The links in chain order (renderers walk them so).
    LINKS: ClassVar[tuple[str, ...]] = (
        "traces",
        "cluster",
        "teacher_call",
        "edit",
        "routing",
        "validation",
        "commit",
        "gate",
        "review",
        "undo",
    )
