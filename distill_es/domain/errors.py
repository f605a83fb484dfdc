"""Typed errors. Each message names what was wrong and, where it helps, what is legal instead."""

from __future__ import annotations


class DistillError(Exception):
    """Base of every error distill_es raises on purpose."""


class IllegalTransition(DistillError):
    """A command that the lifecycle does not allow from the session's current state."""

    def __init__(self, command: str, state: str, legal: list[str], session_id: str = "") -> None:
        self.command, self.state, self.legal, self.session_id = command, state, legal, session_id
        where = f"session {session_id} is " if session_id else "the session is "
        legal_text = ", ".join(legal) if legal else "none (terminal state)"
        super().__init__(f"cannot {command!r}: {where}{state!r}; legal commands from {state!r}: {legal_text}")


class GuardRejected(IllegalTransition):
    """The move exists from this state but its precondition does not hold."""

    def __init__(self, command: str, state: str, legal: list[str], reason: str, session_id: str = "") -> None:
        super().__init__(command, state, legal, session_id)
        self.reason = reason
        self.args = (f"{self.args[0]} ({reason})",)


class UnknownCommand(IllegalTransition):
    def __init__(self, command: str, state: str, legal: list[str], session_id: str = "") -> None:
        super().__init__(command, state, legal, session_id)
        self.args = (f"unknown command {command!r}; legal commands from {state!r}: {legal}",)


class ConcurrentSessionWrite(DistillError):
    """Another writer appended to the same session first; nothing of ours was written."""


class SessionNotFound(DistillError):
    pass


class VersionNotFound(SessionNotFound):
    """A version past the end of a session's log: not found, like the session itself would be."""


class EditNotFound(SessionNotFound):
    """An edit id that names no edit of the session."""


class InvalidVersion(DistillError, ValueError):
    """A version that can never exist (versions start at 1): a usage error, not a missing session."""


class InvalidEdit(DistillError):
    """An edit (or its payload) that cannot be validated or applied."""


class InvalidTeacherOutput(DistillError):
    """The teacher answered with something that does not fit the protocol."""


class WorkspaceConflict(DistillError):
    """The workspace is not in the state the engine needs (dirty tracked files, another session)."""


class WorkspaceOwnedElsewhere(WorkspaceConflict):
    """The workspace belongs to another event store than the one this command was given: nothing
    was recorded. `hint` says how to move a workspace between stores."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class WorkspaceError(DistillError):
    """The workspace is missing or malformed (no config.toml, corrupt TOML, bad benchmark)."""


class WorkspaceFileInvalid(WorkspaceError):
    """A file the user must fix does not parse (config.toml, benchmark.jsonl, a traces.jsonl line): a
    usage error (exit 2) for every command that reads it, naming the file (and line)."""


class BudgetExceeded(DistillError):
    pass


class CassetteMiss(DistillError):
    """A recorded teacher was asked for a request it never saw (the session diverged)."""


class TamperedLog(DistillError):
    """The stored events of a session no longer chain: something was edited, deleted or reordered."""


class DamagedSession(TamperedLog):
    """A session whose stored events cannot be trusted or folded: nothing was done with it.

    Raised on the way in by every command that loads a session (its events do not decode, do not fold,
    do not chain, or disagree with the log heads anchored in the workspace's git history).
    `distill-es verify SESSION` lists what is wrong, event by event.
    """

    def __init__(self, session_id: str, reason: str, kind: str = "damaged") -> None:
        self.session_id, self.reason, self.kind = str(session_id), reason, kind
        super().__init__(
            f"session {session_id} is damaged ({reason}); nothing was done with it — "
            f"run `distill-es verify {session_id}` for the details"
        )


class SettingsError(DistillError):
    pass


class OpNotAvailable(InvalidEdit):
    """A valid edit whose op this installation cannot apply (e.g. `lora_finetune` without a trainer)."""


class SessionInterrupted(DistillError):
    """A step could not finish for a reason outside the session (network, rate limit, dirty files).

    Nothing about the step was recorded; the session stays where it was and `run` resumes it.
    """


class SessionBusy(ConcurrentSessionWrite):
    """Another process is running this session (or another session is executing on this workspace)."""


class LockLost(SessionBusy):
    """The locks a run held died with their connection to the store (the server ended it, a pooler or
    firewall dropped it): another process may run the session now, so this one stops before its next
    step."""

    def __init__(self, message: str, *, session_id: str | None = None) -> None:
        super().__init__(message)
        self.session_id = session_id


class StoreError(DistillError):
    """The event store cannot be used as asked. `hint` says what to do next; nothing of a write
    that raised this was stored (each append is one transaction)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class StoreUrlError(StoreError, SettingsError):
    """A store URL that names no store we can open: unknown scheme, no path, a malformed port (usage)."""


class StoreMissing(StoreError):
    """A command that only reads was pointed at a store that does not exist (nothing was created)."""


class StoreUnavailable(StoreError):
    """The store exists but cannot be used now: unreachable, read-only, disk full, locked (environment)."""


class NotAWorkspace(WorkspaceError):
    """`Engine.open` on a directory that is not a workspace (and `create` was not asked for)."""


class TracesSourceNotFound(WorkspaceError):
    """The traces source a person named (`--traces`, `[traces] source`) does not exist (exit 3)."""


class TraceNotFound(WorkspaceError):
    """A trigger names a trace the workspace's traces source does not hold (exit 3): refused before a
    session is recorded, so a typo in `--trace-id` never pays the teacher."""


class TracesSourceInvalid(WorkspaceError):
    """The traces source a person named cannot be read as traces: not a traces.jsonl, not an OpenJarvis
    traces.db, unreadable, or a folder holding neither (a usage error, exit 2)."""


class EndpointUnavailable(SessionInterrupted):
    """An outside endpoint (the student, the judge, the teacher) failed at the transport or server
    level — refused connection, timeout, 5xx, a rate limit beyond the bounded wait, a body that is not
    the protocol's — after its retries. Never a result: the step is interrupted and can be resumed."""

    def __init__(self, *, role: str, endpoint: str, error_class: str, error: str, attempts: int) -> None:
        self.role, self.endpoint, self.error_class, self.error, self.attempts = (
            role,
            endpoint,
            error_class,
            error,
            attempts,
        )
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        super().__init__(f"the {role} endpoint {endpoint} failed after {tries}: {error_class}: {error}")


class RequestRefused(DistillError):
    """An endpoint answered that this one request is bad (400, 413, 422: e.g. too long a context).
    The endpoint works; retrying the same request cannot help."""

    def __init__(self, *, role: str, endpoint: str, status: int, error: str) -> None:
        self.role, self.endpoint, self.status, self.error = role, endpoint, status, error
        super().__init__(f"the {role} endpoint {endpoint} refused the request ({status}): {error}")
