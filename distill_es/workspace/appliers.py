"""One applier per edit op: validate, preview (a unified diff) and apply (atomic file writes, no git).

Each applier only computes the files it would change (`changes`); validate, preview and apply are
the same computation, so what a reviewer sees is exactly what gets written. Git belongs to
`git_workspace.GitWorkspace`.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from distill_es.domain.errors import DistillError, InvalidEdit, OpNotAvailable, WorkspaceError
from distill_es.domain.layout import few_shot_path, prompt_path
from distill_es.domain.payloads import (
    EditFewShotExemplars,
    EditToolDescription,
    LoraFinetune,
    PatchSystemPrompt,
    ReplaceSystemPrompt,
    SetAgentClass,
    SetAgentParam,
    SetModelForQueryClass,
    SetModelParam,
    ToolOnAgent,
    parse_payload,
)
from distill_es.domain.prompt_diff import apply_unified_diff
from distill_es.domain.vocabulary import Edit, EditOp, Value
from distill_es.ports import EditCheck
from distill_es.workspace import toml_config
from distill_es.workspace.files import atomic_write_text, read_text, resolve_inside

CONFIG = toml_config.CONFIG
DESCRIPTIONS = toml_config.DESCRIPTIONS

P = TypeVar("P", bound=Value)


@dataclass(frozen=True)
class FileChange:
    path: str  # relative to the workspace root, '/'-separated
    before: str | None  # None: the file does not exist yet
    after: str


class Applier:
    """Base: subclasses implement `changes`; everything else is shared."""

    op: EditOp

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        """The files this edit would write (unchanged files left out); raises `InvalidEdit`."""
        raise NotImplementedError

    def validate(self, edit: Edit, root: Path) -> EditCheck:
        """Never raises: whatever is wrong with the edit becomes `EditCheck(ok=False, reason=...)`."""
        try:
            self._checked_changes(edit, Path(root))
        except DistillError as exc:
            return EditCheck(ok=False, reason=_about(edit, str(exc)))
        except Exception as exc:  # a bad payload must never crash the engine
            return EditCheck(ok=False, reason=_about(edit, f"{type(exc).__name__}: {exc}"))
        return EditCheck(ok=True)

    def preview(self, edit: Edit, root: Path) -> str:
        """A unified diff (`a/…`, `b/…`) of what `apply` would write; `InvalidEdit` if it cannot."""
        return "".join(unified_diff(change) for change in self._checked_changes(edit, Path(root)))

    def apply(self, edit: Edit, root: Path) -> list[str]:
        """Write the edit's files atomically; returns their relative paths."""
        root = Path(root)
        written: list[str] = []
        for change in self._checked_changes(edit, root):
            atomic_write_text(resolve_inside(root, change.path), change.after)
            written.append(change.path)
        return written

    def _checked_changes(self, edit: Edit, root: Path) -> list[FileChange]:
        if edit.op != self.op:
            raise InvalidEdit(f"edit {edit.id!r} is a {edit.op.value} edit, not {self.op.value}")
        try:
            changes = [c for c in self.changes(edit, root) if c.before != c.after]
        except (InvalidEdit, WorkspaceError) as exc:  # same type, message naming the edit
            raise type(exc)(_about(edit, str(exc))) from None
        if not changes:
            raise InvalidEdit(f"edit {edit.id!r} changes nothing ({edit.op.value}: already so)")
        for change in changes:
            resolve_inside(root, change.path)  # a second barrier behind the payload's safe names
        return changes


def _about(edit: Edit, message: str) -> str:
    return (
        message
        if message.startswith(f"edit {edit.id!r}")
        else f"edit {edit.id!r} ({edit.op.value}): {message}"
    )


def _payload(edit: Edit, model: type[P]) -> P:
    payload = parse_payload(edit)
    if not isinstance(payload, model):  # only if the payload table and this registry disagree
        raise InvalidEdit(f"edit {edit.id!r}: expected a {model.__name__} payload")
    return payload


def _read(root: Path, rel: str) -> str | None:
    return read_text(resolve_inside(root, rel))


def _read_config(root: Path) -> str:
    text = _read(root, CONFIG)
    if text is None:
        raise WorkspaceError(f"{CONFIG} not found in {root}")
    return text


def _require_agent(root: Path, agent: str) -> None:
    """Prompt and few-shot edits need an agent the workspace knows: its directory or its table."""
    directory = resolve_inside(root, "agents", agent)
    if directory.is_dir():
        return
    config = _read(root, CONFIG)
    if config is not None and agent in toml_config.agent_names(config):
        return
    raise InvalidEdit(f"unknown agent {agent!r}: no agents/{agent}/ directory and no [agent.{agent}] table")


def unified_diff(change: FileChange) -> str:
    before = change.before or ""
    old = before.splitlines(keepends=True)
    new = change.after.splitlines(keepends=True)
    fromfile = f"a/{change.path}" if change.before is not None else "/dev/null"
    lines = difflib.unified_diff(old, new, fromfile=fromfile, tofile=f"b/{change.path}")
    out = []
    for line in lines:
        # difflib leaves a missing final newline unmarked; mark it as `diff` does.
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


# --- intelligence ------------------------------------------------------------------------------


class SetModelForQueryClassApplier(Applier):
    op = EditOp.SET_MODEL_FOR_QUERY_CLASS

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, SetModelForQueryClass)
        text = _read_config(root)
        return [FileChange(CONFIG, text, toml_config.set_query_class_model(text, p.query_class, p.model))]


class SetModelParamApplier(Applier):
    op = EditOp.SET_MODEL_PARAM

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, SetModelParam)
        text = _read_config(root)
        return [FileChange(CONFIG, text, toml_config.set_model_param(text, p.model, p.param, p.value))]


# --- agent --------------------------------------------------------------------------------------


class PatchSystemPromptApplier(Applier):
    op = EditOp.PATCH_SYSTEM_PROMPT

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, PatchSystemPrompt)
        path = prompt_path(p.agent)
        original = _read(root, path)
        if original is None:
            raise InvalidEdit(f"{path} not found: there is no prompt to patch (use replace_system_prompt)")
        return [FileChange(path, original, apply_unified_diff(original, p.diff))]


class ReplaceSystemPromptApplier(Applier):
    op = EditOp.REPLACE_SYSTEM_PROMPT

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, ReplaceSystemPrompt)
        _require_agent(root, p.agent)
        path = prompt_path(p.agent)
        return [FileChange(path, _read(root, path), p.new_content)]


class SetAgentClassApplier(Applier):
    op = EditOp.SET_AGENT_CLASS

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, SetAgentClass)
        text = _read_config(root)
        return [FileChange(CONFIG, text, toml_config.set_agent_class(text, p.agent, p.new_class))]


class SetAgentParamApplier(Applier):
    op = EditOp.SET_AGENT_PARAM

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, SetAgentParam)
        text = _read_config(root)
        return [FileChange(CONFIG, text, toml_config.set_agent_param(text, p.agent, p.param, p.value))]


class EditFewShotExemplarsApplier(Applier):
    op = EditOp.EDIT_FEW_SHOT_EXEMPLARS

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, EditFewShotExemplars)
        _require_agent(root, p.agent)
        path = few_shot_path(p.agent)
        items: list[dict[str, Any]] = [e.model_dump() for e in p.exemplars]
        return [FileChange(path, _read(root, path), json.dumps(items, indent=2, ensure_ascii=False) + "\n")]


# --- tools --------------------------------------------------------------------------------------


class AddToolToAgentApplier(Applier):
    op = EditOp.ADD_TOOL_TO_AGENT

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, ToolOnAgent)
        text = _read_config(root)
        return [FileChange(CONFIG, text, toml_config.add_agent_tool(text, p.agent, p.tool_name))]


class RemoveToolFromAgentApplier(Applier):
    op = EditOp.REMOVE_TOOL_FROM_AGENT

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, ToolOnAgent)
        text = _read_config(root)
        return [FileChange(CONFIG, text, toml_config.remove_agent_tool(text, p.agent, p.tool_name))]


class EditToolDescriptionApplier(Applier):
    op = EditOp.EDIT_TOOL_DESCRIPTION

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        p = _payload(edit, EditToolDescription)
        before = _read(root, DESCRIPTIONS)
        text = before or ""
        # Describing a tool nobody has is almost surely a misspelt name: refuse it.
        known = set(toml_config.tool_sections(text))
        config = _read(root, CONFIG)
        if config is not None:
            for tools in toml_config.agent_tools(config).values():
                known.update(tools)
        if p.tool_name not in known:
            raise InvalidEdit(
                f"unknown tool {p.tool_name!r}: not in {DESCRIPTIONS} and not in any agent's tools "
                f"(known: {sorted(known)})"
            )
        return [
            FileChange(
                DESCRIPTIONS, before, toml_config.set_tool_description(text, p.tool_name, p.new_description)
            )
        ]


# --- engine -------------------------------------------------------------------------------------


LORA_UNAVAILABLE = (
    "lora_finetune changes weights, not files: the workspace cannot apply it; the engine runs a training "
    "run for it once a reviewer approves (docs/training.md)"
)


class LoraFinetuneApplier(Applier):
    op = EditOp.LORA_FINETUNE

    def changes(self, edit: Edit, root: Path) -> list[FileChange]:
        raise OpNotAvailable(LORA_UNAVAILABLE)

    def validate(self, edit: Edit, root: Path) -> EditCheck:
        """The payload is checked; a valid one is ok (it is recorded, and `apply` says why it cannot run)."""
        try:
            _payload(edit, LoraFinetune)
        except DistillError as exc:
            return EditCheck(ok=False, reason=str(exc))
        return EditCheck(ok=True)

    def preview(self, edit: Edit, root: Path) -> str:
        p = _payload(edit, LoraFinetune)
        return f"# lora_finetune of {p.target_model} ({p.backend}): no file changes. {LORA_UNAVAILABLE}\n"

    def apply(self, edit: Edit, root: Path) -> list[str]:
        _payload(edit, LoraFinetune)
        raise OpNotAvailable(LORA_UNAVAILABLE)


APPLIERS: dict[EditOp, Applier] = {
    applier.op: applier
    for applier in (
        SetModelForQueryClassApplier(),
        SetModelParamApplier(),
        PatchSystemPromptApplier(),
        ReplaceSystemPromptApplier(),
        SetAgentClassApplier(),
        SetAgentParamApplier(),
        EditFewShotExemplarsApplier(),
        AddToolToAgentApplier(),
        RemoveToolFromAgentApplier(),
        EditToolDescriptionApplier(),
        LoraFinetuneApplier(),
    )
}


def applier_for(edit: Edit) -> Applier:
    try:
        return APPLIERS[edit.op]
    except KeyError:
        raise InvalidEdit(f"edit {edit.id!r}: no applier for op {edit.op!r}") from None
