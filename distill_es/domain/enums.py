"""The enums of a learning session's words, apart from its value objects (domain/vocabulary.py).

Command-line options and the package root need these names without paying for the pydantic models:
vocabulary.py re-exports every name here, so `distill_es.domain.vocabulary.SessionStatus` is this one.
"""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    INITIATED = "initiated"
    DIAGNOSING = "diagnosing"
    PLANNING = "planning"
    EXECUTING = "executing"
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class TriggerKind(StrEnum):
    SCHEDULED = "scheduled"
    CLUSTER = "cluster"
    USER_FLAG = "user_flag"
    ON_DEMAND = "on_demand"


class AutonomyMode(StrEnum):
    AUTO = "auto"  # every edit except the manual tier applies now
    TIERED = "tiered"  # auto tier applies now, review tier waits for a reviewer
    MANUAL = "manual"  # every edit waits for a reviewer


class EditPillar(StrEnum):
    INTELLIGENCE = "intelligence"
    AGENT = "agent"
    TOOLS = "tools"
    ENGINE = "engine"


class EditOp(StrEnum):
    SET_MODEL_FOR_QUERY_CLASS = "set_model_for_query_class"
    SET_MODEL_PARAM = "set_model_param"
    PATCH_SYSTEM_PROMPT = "patch_system_prompt"
    REPLACE_SYSTEM_PROMPT = "replace_system_prompt"
    SET_AGENT_CLASS = "set_agent_class"
    SET_AGENT_PARAM = "set_agent_param"
    EDIT_FEW_SHOT_EXEMPLARS = "edit_few_shot_exemplars"
    ADD_TOOL_TO_AGENT = "add_tool_to_agent"
    REMOVE_TOOL_FROM_AGENT = "remove_tool_from_agent"
    EDIT_TOOL_DESCRIPTION = "edit_tool_description"
    LORA_FINETUNE = "lora_finetune"


class EditRiskTier(StrEnum):
    AUTO = "auto"
    REVIEW = "review"
    MANUAL = "manual"


# Which pillar each op belongs to. LoRA fine-tuning changes the student's weights, the
# engine pillar; the reference left that pillar empty and never checked pillar against op.
OP_PILLAR: dict[EditOp, EditPillar] = {
    EditOp.SET_MODEL_FOR_QUERY_CLASS: EditPillar.INTELLIGENCE,
    EditOp.SET_MODEL_PARAM: EditPillar.INTELLIGENCE,
    EditOp.PATCH_SYSTEM_PROMPT: EditPillar.AGENT,
    EditOp.REPLACE_SYSTEM_PROMPT: EditPillar.AGENT,
    EditOp.SET_AGENT_CLASS: EditPillar.AGENT,
    EditOp.SET_AGENT_PARAM: EditPillar.AGENT,
    EditOp.EDIT_FEW_SHOT_EXEMPLARS: EditPillar.AGENT,
    EditOp.ADD_TOOL_TO_AGENT: EditPillar.TOOLS,
    EditOp.REMOVE_TOOL_FROM_AGENT: EditPillar.TOOLS,
    EditOp.EDIT_TOOL_DESCRIPTION: EditPillar.TOOLS,
    EditOp.LORA_FINETUNE: EditPillar.ENGINE,
}
