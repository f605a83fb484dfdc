"""The payload schema of every edit op, checked strictly before anything is routed or applied.

Names that become paths (agents, tools) are restricted to a safe character set here, so that a
name like `../../x` or `/etc` is refused at validation, before any file is touched.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError

from distill_es.domain.errors import InvalidEdit
from distill_es.domain.vocabulary import Edit, EditOp, Value

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


def _safe_name(value: str) -> str:
    if not _SAFE_NAME.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a safe name (letters, digits, '_', '-', '.'; no '..', no '/', not absolute)"
        )
    return value


def _key_name(value: str) -> str:
    if not _KEY_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid key (letters, digits, '_', '-')")
    return value


def _model_name(value: str) -> str:
    if not value or len(value) > 200 or any(ch in value for ch in '\n\r\t"\\'):
        raise ValueError(f"{value!r} is not a valid model name")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
KeyName = Annotated[str, AfterValidator(_key_name)]
ModelName = Annotated[str, AfterValidator(_model_name)]
Scalar = str | bool | int | float
ParamValue = Scalar | list[Scalar]


class SetModelForQueryClass(Value):
    query_class: KeyName
    model: ModelName


class SetModelParam(Value):
    model: ModelName
    param: KeyName
    value: ParamValue


class PatchSystemPrompt(Value):
    agent: SafeName
    diff: str = Field(min_length=1, max_length=200_000)


class ReplaceSystemPrompt(Value):
    agent: SafeName
    new_content: str = Field(max_length=200_000)


class SetAgentClass(Value):
    agent: SafeName
    new_class: str = Field(min_length=1, max_length=200)


class SetAgentParam(Value):
    agent: SafeName
    param: KeyName
    value: ParamValue


class Exemplar(Value):
    user: str = Field(min_length=1, max_length=50_000)
    assistant: str = Field(min_length=1, max_length=50_000)


class EditFewShotExemplars(Value):
    agent: SafeName
    exemplars: list[Exemplar] = Field(max_length=200)


class ToolOnAgent(Value):
    agent: SafeName
    tool_name: SafeName


class EditToolDescription(Value):
    tool_name: SafeName
    new_description: str = Field(min_length=1, max_length=20_000)


class LoraFinetune(Value):
    target_model: ModelName
    backend: Literal["peft-trl-orpo", "unsloth-orpo", "dry-run"] = "dry-run"
    training_mode: str = "orpo"
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)


PAYLOAD_MODELS: dict[EditOp, type[Value]] = {
    EditOp.SET_MODEL_FOR_QUERY_CLASS: SetModelForQueryClass,
    EditOp.SET_MODEL_PARAM: SetModelParam,
    EditOp.PATCH_SYSTEM_PROMPT: PatchSystemPrompt,
    EditOp.REPLACE_SYSTEM_PROMPT: ReplaceSystemPrompt,
    EditOp.SET_AGENT_CLASS: SetAgentClass,
    EditOp.SET_AGENT_PARAM: SetAgentParam,
    EditOp.EDIT_FEW_SHOT_EXEMPLARS: EditFewShotExemplars,
    EditOp.ADD_TOOL_TO_AGENT: ToolOnAgent,
    EditOp.REMOVE_TOOL_FROM_AGENT: ToolOnAgent,
    EditOp.EDIT_TOOL_DESCRIPTION: EditToolDescription,
    EditOp.LORA_FINETUNE: LoraFinetune,
}

_AGENT_OPS = {op for op, model in PAYLOAD_MODELS.items() if "agent" in model.model_fields}


def agent_from_target(target: str) -> str | None:
    """`agent.<name>` / `agents.<name>[.…]` names an agent, as the reference's targets do."""
    parts = target.split(".")
    if len(parts) >= 2 and parts[0] in {"agent", "agents"} and parts[1]:
        return parts[1]
    return None


def parse_payload(edit: Edit) -> Value:
    """The edit's payload as its typed model; `InvalidEdit` names the edit and the bad field."""
    data: dict[str, Any] = dict(edit.payload)
    if edit.op in _AGENT_OPS and "agent" not in data:
        agent = agent_from_target(edit.target)
        if agent is not None:
            data["agent"] = agent
    try:
        return PAYLOAD_MODELS[edit.op].model_validate(data)
    except ValidationError as exc:
        raise InvalidEdit(f"edit {edit.id!r} ({edit.op.value}): {describe_validation(exc)}") from None


def describe_validation(exc: ValidationError, limit: int = 3) -> str:
    """A pydantic error as one readable line: `field: message; field: message`."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
