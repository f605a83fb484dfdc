"""The plain records a session folds its events into: teacher calls, diagnose turns, edits.

They hold what was recorded and nothing else; where an edit is in its lifecycle is its `state`, which
only `evolve` assigns (see `edit_lifecycle` for the table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from distill_es.domain import teacher_reply
from distill_es.domain.session import edit_lifecycle
from distill_es.domain.vocabulary import Edit, EditOp, EditRiskTier


@dataclass
class TeacherCall:
    call_key: str
    purpose: str
    model: str
    request_digest: str
    response: dict[str, Any]
    usage: dict[str, int]
    cost_usd: float
    at: datetime


class ToolResult(NamedTuple):  # a tuple: cheap to rebuild by the thousand from a snapshot
    tool: str
    content: str
    is_error: bool


@dataclass
class DiagnoseTurn:
    """One diagnose turn: the teacher's response and the tool results that answer it."""

    call_key: str
    response: dict[str, Any]
    results: dict[str, ToolResult] = field(default_factory=dict)

    def tool_uses(self) -> list[dict[str, Any]]:
        return teacher_reply.tool_uses(self.response)


@dataclass
class GateRecord:
    delta: float
    cluster_deltas: dict[str, float]
    accepted: bool
    reason: str


@dataclass
class EditProgress:
    """Everything recorded about one planned edit, in the order it can happen, and its state."""

    edit: Edit
    risk_tier: EditRiskTier
    route: str | None = None
    preview: str = ""
    check_ok: bool | None = None
    check_reason: str = ""
    pre_sha: str | None = None
    pre_tree: str | None = None
    commit_sha: str | None = None
    tree_sha: str | None = None
    changed_files: list[str] = field(default_factory=list)
    applied_at: datetime | None = None
    gate: GateRecord | None = None
    revert_sha: str | None = None
    skipped_reason: str | None = None
    approved_by: str | None = None
    approval_note: str = ""
    rejected_by: str | None = None
    rejection_reason: str = ""
    rolled_back_sha: str | None = None
    training: dict[str, Any] | None = None  # lora_finetune: its training run's result
    state: str = edit_lifecycle.INITIAL

    @property
    def op(self) -> EditOp:
        return self.edit.op

    @property
    def outcome(self) -> str | None:
        """The contract's outcome status, or None while the edit is still on its way."""
        return edit_lifecycle.outcome(self.state)


@dataclass(frozen=True)
class RefusedEdit:
    """An edit the plan refused when it was frozen (one entry of `PlanFrozen.rejected`): it never
    joined the plan, and its lifecycle starts and ends in `refused`."""

    edit_id: str  # the teacher's id, or "edits[<index>]" when it gave none usable
    reason: str
    index: int | None = None  # its position in the teacher's `edits` list
    state: str = edit_lifecycle.EditState.REFUSED

    @classmethod
    def recorded(cls, rejection: dict[str, Any]) -> RefusedEdit:
        """From a stored rejection: `{"index", "edit_id", "reason", "raw"}` (older or hand-made
        entries may say `id` and omit the index)."""
        index = rejection.get("index")
        edit_id = rejection.get("edit_id") or rejection.get("id")
        if not isinstance(edit_id, str) or not edit_id:
            edit_id = f"edits[{index}]" if isinstance(index, int) else "edits[?]"
        return cls(edit_id=edit_id, reason=str(rejection.get("reason") or ""), index=index)

    @property
    def outcome(self) -> str | None:
        return edit_lifecycle.outcome(self.state)
