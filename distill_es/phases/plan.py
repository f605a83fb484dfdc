"""Freezing the teacher's `submit_plan` answer into a `LearningPlan` (the request is `plan_request.py`).

Fixes to the reference planner (spec search §5, §3.4, §11.12-13):
- any top-level shape is handled (an array or a string is a clear `InvalidTeacherOutput`, never an
  `AttributeError`), and each bad edit is rejected on its own, with its index, id and reason recorded;
- the teacher's risk tier is advisory: an invalid one ("yolo") is recorded and overwritten, not a reason
  to drop the edit; pillar must match op, unknown keys are refused, duplicate ids are rejected;
- an edit must target a surviving cluster;
- a patch must apply exactly to the current prompt, and a patch that rewrites more than half of the
  prompt becomes `replace_system_prompt` with the *patched text* (keeping `agent`), never the diff text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError

from distill_es.domain.errors import DistillError, InvalidEdit, InvalidTeacherOutput
from distill_es.domain.layout import prompt_path
from distill_es.domain.payloads import PAYLOAD_MODELS, PatchSystemPrompt, parse_payload
from distill_es.domain.policy import assign_tier
from distill_es.domain.prompt_diff import apply_unified_diff, changed_line_ratio
from distill_es.domain.vocabulary import (
    Edit,
    EditOp,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    Value,
)
from distill_es.phases.clusters import surviving_clusters
from distill_es.phases.teacher_protocol import describe_errors

MAX_EDITS = 50  # edits beyond this are rejected unread ("too many edits")
DOWNGRADE_THRESHOLD = 0.5  # a patch changing more than this share of lines becomes a replace
RAW_EXCERPT_CHARS = 2_000

# The agent's current prompt text, None when it has no prompt file (`Workspace.read_prompt`); a patch
# is checked against it. May raise OSError, ValueError or DistillError for a file it cannot read.
ReadPrompt = Callable[[str], str | None]


class RejectedEdit(Value):
    index: int  # position in the teacher's `edits` list
    edit_id: str | None
    reason: str
    raw: Any  # the raw item, JSON-safe; a truncated JSON string when it was large


class TierChange(Value):
    edit_id: str
    proposed: str  # whatever the teacher said, valid tier or not
    assigned: EditRiskTier


class FrozenPlan(Value):
    plan: LearningPlan  # accepted edits only, engine-assigned tiers, clusters linked to their edits
    rejected: list[RejectedEdit] = Field(default_factory=list)
    tier_changes: list[TierChange] = Field(default_factory=list)
    downgrades: list[str] = Field(default_factory=list)  # ids of patches frozen as replace_system_prompt


def _json_safe(value: Any, depth: int = 0) -> Any:
    if depth > 30:
        return "…"
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 256 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value]
    return repr(value)[:RAW_EXCERPT_CHARS]


def raw_excerpt(raw: Any, limit: int = RAW_EXCERPT_CHARS) -> Any:
    """`raw` as JSON data if it is small, else a truncated JSON string with its full length."""
    safe = _json_safe(raw)
    text = json.dumps(safe, ensure_ascii=False, sort_keys=True)
    if len(text) <= limit:
        return safe
    return f"{text[:limit]}...[truncated from {len(text)} chars]"


# An edit id goes into commit trailers (`Edit-ID: <id>`) and onto review screens: one short token,
# so no id can forge a trailer line or carry control characters.
_SAFE_EDIT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


def _check_edit_id(edit_id: Any) -> None:
    if isinstance(edit_id, str) and not _SAFE_EDIT_ID.fullmatch(edit_id):
        raise InvalidEdit(
            f"edit id {edit_id[:120]!r} is not allowed: an id is 1 to 100 letters, digits, '_', '.', ':' "
            "or '-', starting with a letter or digit (it goes into a git commit trailer)"
        )


def _edit_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
        return raw["id"][:200]
    return None


def _tier_text(proposed: Any) -> str:
    text = proposed if isinstance(proposed, str) else json.dumps(_json_safe(proposed))
    return text[:100]


def _edits_list(tool_input: Any) -> list[Any]:
    """The top-level `edits` list; anything else is an `InvalidTeacherOutput` for the session."""
    expected = 'expected {"edits": [{"id", "pillar", "op", "target", "payload", ...}, ...]}'
    if isinstance(tool_input, str):
        try:
            tool_input = json.loads(tool_input)
        except (ValueError, RecursionError):
            raise InvalidTeacherOutput(
                f"submit_plan input is a string that is not JSON; {expected}"
            ) from None
    if not isinstance(tool_input, dict):
        raise InvalidTeacherOutput(
            f"submit_plan input must be an object, got {type(tool_input).__name__}; {expected}"
        )
    if "edits" not in tool_input:
        raise InvalidTeacherOutput(f'submit_plan input has no "edits"; {expected}')
    edits = tool_input["edits"]
    if not isinstance(edits, list):
        raise InvalidTeacherOutput(
            f'submit_plan "edits" must be a list, got {type(edits).__name__}; {expected}'
        )
    return edits


class _Context:
    """What every edit is checked against while freezing one plan."""

    def __init__(
        self,
        kept: list[FailureCluster],
        dropped: list[FailureCluster],
        read_prompt: ReadPrompt,
    ) -> None:
        self.kept_ids = [c.id for c in kept]
        self.dropped_ids = {c.id for c in dropped}
        self.read_prompt = read_prompt
        self.seen_ids: set[str] = set()


def _freeze_one(raw: Any, ctx: _Context) -> tuple[Edit, bool]:
    """The accepted edit and whether it was downgraded; `InvalidEdit` says why it is rejected."""
    if not isinstance(raw, dict):
        raise InvalidEdit(f"an edit must be a JSON object, got {type(raw).__name__}")
    _check_edit_id(raw.get("id"))
    edit_id = _edit_id(raw)
    if edit_id is not None:
        if edit_id in ctx.seen_ids:
            raise InvalidEdit(f"duplicate edit id {edit_id!r}: an earlier edit already uses it")
        ctx.seen_ids.add(edit_id)

    data = {k: v for k, v in raw.items() if k != "risk_tier"}  # advisory: validated never, recorded only
    try:
        edit = Edit.model_validate(data)
    except ValidationError as exc:
        raise InvalidEdit(f"invalid edit: {describe_errors(exc)}") from None
    payload = parse_payload(edit)  # InvalidEdit names the edit and the field

    if edit.expected_improvement not in ctx.kept_ids:
        if edit.expected_improvement in ctx.dropped_ids:
            why = f"cluster {edit.expected_improvement!r} was dropped for insufficient evidence"
        elif not edit.expected_improvement:
            why = "expected_improvement is empty"
        else:
            why = f"expected_improvement names unknown cluster {edit.expected_improvement!r}"
        raise InvalidEdit(
            f"{why}; it must name one of the surviving clusters: {', '.join(ctx.kept_ids) or 'none'}"
        )

    downgraded = False
    if isinstance(payload, PatchSystemPrompt):
        payload, downgraded = _check_patch(payload, ctx)
    op = EditOp.REPLACE_SYSTEM_PROMPT if downgraded else edit.op
    frozen = edit.model_copy(
        update={"op": op, "payload": payload.model_dump(mode="json"), "risk_tier": assign_tier(op)}
    )
    return frozen, downgraded


def _check_patch(payload: PatchSystemPrompt, ctx: _Context) -> tuple[Value, bool]:
    where = prompt_path(payload.agent)
    try:
        original = ctx.read_prompt(payload.agent)
    except (OSError, ValueError, DistillError) as exc:  # a refused path, bad UTF-8, unreadable file
        raise InvalidEdit(f"cannot read {where}: {exc}") from None
    if original is None:
        raise InvalidEdit(f"{where} does not exist; use replace_system_prompt to create it")
    try:
        patched = apply_unified_diff(original, payload.diff)
    except InvalidEdit as exc:
        raise InvalidEdit(f"the diff does not apply to {where}: {exc}") from None
    if patched == original:
        raise InvalidEdit(f"the diff does not change {where}")
    if changed_line_ratio(original, patched) > DOWNGRADE_THRESHOLD:
        replacement = PAYLOAD_MODELS[EditOp.REPLACE_SYSTEM_PROMPT].model_validate(
            {"agent": payload.agent, "new_content": patched}
        )
        return replacement, True
    return payload, False


def freeze_plan(
    *,
    session_id: str,
    tool_input: Any,
    clusters: list[FailureCluster],
    diagnosis_markdown: str,
    teacher_model: str,
    cost_usd: float,
    read_prompt: ReadPrompt,
    created_at: datetime | None,
) -> FrozenPlan:
    """The teacher's `submit_plan` input, validated edit by edit, as an immutable plan.

    Raises only `InvalidTeacherOutput`, and only when there is no `edits` list at all; every bad
    item is rejected on its own and recorded.
    """
    items = _edits_list(tool_input)
    kept, dropped = surviving_clusters(clusters)
    ctx = _Context(kept, dropped, read_prompt)
    accepted: list[Edit] = []
    rejected: list[RejectedEdit] = []
    tier_changes: list[TierChange] = []
    downgrades: list[str] = []

    for index, raw in enumerate(items):
        edit_id = _edit_id(raw)
        if index >= MAX_EDITS:
            reason = f"too many edits: only the first {MAX_EDITS} are considered"
            rejected.append(RejectedEdit(index=index, edit_id=edit_id, reason=reason, raw=raw_excerpt(raw)))
            continue
        try:
            edit, downgraded = _freeze_one(raw, ctx)
        except InvalidEdit as exc:
            rejected.append(RejectedEdit(index=index, edit_id=edit_id, reason=str(exc), raw=raw_excerpt(raw)))
            continue
        accepted.append(edit)
        if downgraded:
            downgrades.append(edit.id)
        proposed = raw.get("risk_tier")
        if proposed is not None and proposed != edit.risk_tier.value:
            tier_changes.append(
                TierChange(edit_id=edit.id, proposed=_tier_text(proposed), assigned=edit.risk_tier)
            )

    kept_ids = {c.id for c in kept}
    dropped_by_id = {c.id: c for c in dropped}
    linked = [
        cluster.model_copy(
            update={"addressed_by_edit_ids": [e.id for e in accepted if e.expected_improvement == cluster.id]}
        )
        if cluster.id in kept_ids
        else dropped_by_id[cluster.id]
        for cluster in clusters
    ]
    plan = LearningPlan(
        session_id=session_id,
        diagnosis_summary=diagnosis_markdown,
        failure_clusters=linked,
        edits=accepted,
        teacher_model=teacher_model,
        estimated_cost_usd=cost_usd,
        created_at=created_at,
    )
    return FrozenPlan(plan=plan, rejected=rejected, tier_changes=tier_changes, downgrades=downgrades)
