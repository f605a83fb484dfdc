"""The steps that carry out a plan's edits: route, validate, train, apply, revert, and end the session
(or its rollback) with git's HEAD."""

from __future__ import annotations

from typing import Any

from distill_es.app.activities.context import StepContext, log_head
from distill_es.domain.errors import InvalidEdit, OpNotAvailable, WorkspaceConflict
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.react import Done, Outcome, Refused
from distill_es.ports import accepts_keyword


def route_edit(ctx: StepContext, session: Session, step: steps.RouteEdit) -> Outcome:
    """An edit routed to review gets a preview of its change (read from the workspace)."""
    preview = ""
    if step.route == "review":
        try:
            preview = ctx.adapters.workspace.preview(session.edits[step.edit_id].edit)
        except Exception as exc:  # a preview is a courtesy to the reviewer, never a reason to stop
            preview = f"(no preview: {exc})"
    return Done({"edit_id": step.edit_id, "route": step.route, "preview": preview})


def validate_edit(ctx: StepContext, session: Session, step: steps.ValidateEdit) -> Outcome:
    """Checks the edit against the workspace's files (reads only)."""
    check = ctx.adapters.workspace.validate(session.edits[step.edit_id].edit)
    return Done({"edit_id": step.edit_id, "ok": check.ok, "reason": check.reason})


def skip_edit(_: StepContext, __: Session, step: steps.SkipEdit) -> Outcome:
    """No outside effect: `next_step` already knows why the edit is skipped."""
    return Done({"edit_id": step.edit_id, "reason": step.reason})


def train_edit(ctx: StepContext, session: Session, step: steps.TrainEdit) -> Outcome:
    """A LoRA edit: one training run, driven to its end (its own steps are recorded in its own log)."""
    from distill_es.app.training.service import TrainingService
    from distill_es.domain.training.errors import TrainingSpecInvalid

    training = session.settings.get("training", {})
    service = TrainingService(
        ctx.store,
        ctx.home,
        list(training.get("trainer_command") or []) or None,
        float(training.get("timeout_seconds", 4 * 3600.0)),
    )
    try:
        run = service.train(session, session.edits[step.edit_id].edit)
    except TrainingSpecInvalid as exc:
        return Refused("training_spec_invalid", str(exc))
    return Done(
        {
            "edit_id": step.edit_id,
            "run_id": run.run_id,
            "state": run.state,
            "deployable": run.deployable,
            "summary": run.summary,
        }
    )


def start_apply(ctx: StepContext, session: Session, step: steps.StartApply) -> Outcome:
    """Reads git's HEAD and tree: the intent to apply, recorded before any file is written. Tracked
    files changed outside the session stop it (`WorkspaceConflict`, nothing recorded)."""
    workspace = ctx.adapters.workspace
    dirty = workspace.dirty_paths()
    if dirty:
        raise WorkspaceConflict(
            f"tracked files of {ctx.home} changed outside this session: {', '.join(dirty)}; "
            f"commit or discard them, then run session {session.id} again"
        )
    return Done({"edit_id": step.edit_id, "pre_sha": workspace.head_sha(), "pre_tree": workspace.tree_sha()})


def apply_edit(ctx: StepContext, session: Session, step: steps.ApplyEdit) -> Outcome:
    """One commit of the edit's files. After a crash, a commit already made is found by its trailers
    and recorded as it is; half-written files of our own are restored first."""
    progress = session.edits[step.edit_id]
    workspace = ctx.adapters.workspace
    search = workspace.find_edit_commit
    found = search(str(session.id), step.edit_id, **_since(search, progress.pre_sha))
    if found is not None:  # committed before a crash: record what git already holds
        return Done(
            {
                "edit_id": step.edit_id,
                "commit_sha": found,
                "tree_sha": workspace.tree_sha(),
                "changed_files": [],
                "reconciled": True,
            }
        )
    if workspace.head_sha() != progress.pre_sha:
        raise WorkspaceConflict(
            f"the workspace moved from {str(progress.pre_sha)[:10]} to {workspace.head_sha()[:10]} while "
            f"edit {step.edit_id} was being applied; it cannot be applied safely"
        )
    if workspace.dirty_paths():  # our own half-written files from a crash (the intent is recorded)
        workspace.restore(str(progress.pre_sha))
    try:
        applied = workspace.apply(
            progress.edit,
            session_id=str(session.id),
            risk_tier=progress.risk_tier,
            **log_head(session, workspace.apply),
        )
    except OpNotAvailable as exc:
        return Refused("op_not_available", str(exc))
    except InvalidEdit as exc:
        workspace.restore(str(progress.pre_sha))
        return Refused("invalid_edit", str(exc))
    return Done(
        {
            "edit_id": step.edit_id,
            "commit_sha": applied.commit_sha,
            "tree_sha": applied.tree_sha,
            "changed_files": list(applied.changed_files),
        }
    )


def revert(ctx: StepContext, session: Session, edit_id: str) -> str:
    """The revert commit of the edit's commit: found by its trailers if a crash came after it, else
    made (from a clean HEAD)."""
    workspace = ctx.adapters.workspace
    search = workspace.find_revert_commit
    found = search(str(session.id), edit_id, **_since(search, session.edits[edit_id].commit_sha))
    if found is not None:
        return found
    if workspace.dirty_paths():  # a revert interrupted by a crash: start it again from HEAD
        workspace.restore(workspace.head_sha())
    commit = str(session.edits[edit_id].commit_sha)
    return workspace.revert(
        commit, session_id=str(session.id), edit_id=edit_id, **log_head(session, workspace.revert)
    )


def revert_edit(ctx: StepContext, session: Session, step: steps.RevertEdit) -> Outcome:
    """One revert commit (see `revert`), and the tree it leaves."""
    revert_sha = revert(ctx, session, step.edit_id)
    return Done(
        {"edit_id": step.edit_id, "revert_sha": revert_sha, "tree_sha": ctx.adapters.workspace.tree_sha()}
    )


def roll_back_edit(ctx: StepContext, session: Session, step: steps.RollBackEdit) -> Outcome:
    """One revert commit (see `revert`)."""
    return Done({"edit_id": step.edit_id, "revert_sha": revert(ctx, session, step.edit_id)})


def git_post(ctx: StepContext, _: Session, __: steps.Step) -> Outcome:
    """Reads git's HEAD: where the session (or its rollback) leaves the workspace."""
    return Done({"git_post": ctx.adapters.workspace.head_sha()})


def _since(search: Any, sha: object) -> dict[str, str]:
    """`since=` for a trailer search, when the workspace takes it: the sha the log recorded before
    the commit looked for, so only the commits made after it are read, never the whole log."""
    return {"since": str(sha)} if sha and accepts_keyword(search, "since") else {}
