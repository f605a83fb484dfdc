"""Refusals of the edit lifecycle. From the session's side the command exists (the session is
executing, or awaiting review) but the edit it names is not where the command needs it: a guard of
the session's, so these are `GuardRejected` and every caller that handles lifecycle refusals handles
them. The message names the edit, where it is, what the command needs and what is legal for it."""

from __future__ import annotations

from distill_es.domain.errors import GuardRejected


def _legal_text(legal: list[str]) -> str:
    return ", ".join(legal) if legal else "none (its lifecycle has ended)"


class IllegalEditTransition(GuardRejected):
    """A per-edit command the edit lifecycle does not allow from the edit's current state."""

    def __init__(
        self,
        command: str,
        state: str,
        legal: list[str],
        reason: str = "",
        _subject: str = "",
        *,
        edit_id: str = "",
        session_id: str = "",
        situation: str = "",
        needs: str = "",
    ) -> None:
        reason = reason or needs or f"the edit is {state!r}"
        super().__init__(command, state, legal, reason, session_id)
        self.edit_id = edit_id
        edit = f"edit {edit_id!r}" if edit_id else "the edit"
        of = f" of session {session_id}" if session_id else ""
        needed = f"; {needs}" if needs and needs != reason else ""
        self.args = (
            f"cannot {command!r}: {edit}{of} {situation or f'is {state!r}'} ({reason}){needed}; "
            f"legal commands for it in {state!r}: {_legal_text(legal)}",
        )


class EditGuardRejected(IllegalEditTransition):
    """The edit's move exists from its state but its precondition does not hold."""


class UnknownEditCommand(IllegalEditTransition):
    """A command the edit lifecycle does not know (a programming error, never a user's)."""
