"""The two tables that decide what happens to an edit: its risk tier, and where it goes.

Each lives here and only here (the reference kept two copies of its routing loop).
"""

from __future__ import annotations

from enum import StrEnum

from distill_es.domain.vocabulary import AutonomyMode, EditOp, EditRiskTier

TIER_TABLE: dict[EditOp, EditRiskTier] = {
    EditOp.SET_MODEL_FOR_QUERY_CLASS: EditRiskTier.AUTO,
    EditOp.SET_MODEL_PARAM: EditRiskTier.AUTO,
    EditOp.PATCH_SYSTEM_PROMPT: EditRiskTier.REVIEW,
    EditOp.REPLACE_SYSTEM_PROMPT: EditRiskTier.REVIEW,
    EditOp.SET_AGENT_CLASS: EditRiskTier.REVIEW,
    EditOp.SET_AGENT_PARAM: EditRiskTier.AUTO,
    EditOp.EDIT_FEW_SHOT_EXEMPLARS: EditRiskTier.REVIEW,
    EditOp.ADD_TOOL_TO_AGENT: EditRiskTier.AUTO,
    EditOp.REMOVE_TOOL_FROM_AGENT: EditRiskTier.AUTO,
    EditOp.EDIT_TOOL_DESCRIPTION: EditRiskTier.AUTO,
    EditOp.LORA_FINETUNE: EditRiskTier.MANUAL,
}


def assign_tier(op: EditOp) -> EditRiskTier:
    """The engine's tier for an op. The teacher's proposed tier is advisory and never used."""
    return TIER_TABLE[op]


class Route(StrEnum):
    APPLY = "apply"  # validate, apply, gate now
    REVIEW = "review"  # wait for a named reviewer


# autonomy × tier → route. The manual tier always waits for an explicit approval, in every mode;
# `auto` applies everything else (the reference skipped the manual tier outright and called
# that "all tiers auto-apply").
ROUTING_TABLE: dict[tuple[AutonomyMode, EditRiskTier], Route] = {
    (AutonomyMode.AUTO, EditRiskTier.AUTO): Route.APPLY,
    (AutonomyMode.AUTO, EditRiskTier.REVIEW): Route.APPLY,
    (AutonomyMode.AUTO, EditRiskTier.MANUAL): Route.REVIEW,
    (AutonomyMode.TIERED, EditRiskTier.AUTO): Route.APPLY,
    (AutonomyMode.TIERED, EditRiskTier.REVIEW): Route.REVIEW,
    (AutonomyMode.TIERED, EditRiskTier.MANUAL): Route.REVIEW,
    (AutonomyMode.MANUAL, EditRiskTier.AUTO): Route.REVIEW,
    (AutonomyMode.MANUAL, EditRiskTier.REVIEW): Route.REVIEW,
    (AutonomyMode.MANUAL, EditRiskTier.MANUAL): Route.REVIEW,
}


def route(autonomy: AutonomyMode, tier: EditRiskTier) -> Route:
    return ROUTING_TABLE[(autonomy, tier)]
