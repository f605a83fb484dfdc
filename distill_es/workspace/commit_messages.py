"""The engine's commit messages: their trailers (written and parsed) and their subjects.

Commits are found by parsing trailers, never by `--grep` (where `sess-1` matched `sess-10`); a value
that could not survive the round trip (multi-line, padded, empty) is refused before anything is written.
"""

from __future__ import annotations

import re

from distill_es.domain.anchors import ANCHOR_TRAILER
from distill_es.domain.errors import InvalidEdit
from distill_es.domain.vocabulary import Edit

BASELINE_TRAILER = ("Distill-ES", "baseline")
BASELINE_MESSAGE = (
    f"distill_es: baseline of config.toml, agents/, tools/\n\n{BASELINE_TRAILER[0]}: {BASELINE_TRAILER[1]}"
)
_TRAILER_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*): (.*)$")


def parse_trailers(message: str) -> dict[str, list[str]]:
    """The `Key: value` lines of the message's last paragraph (never the subject line).

    {} when that paragraph is not entirely trailers, as git itself reads them.
    """
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return {}
    trailers: dict[str, list[str]] = {}
    for line in paragraphs[-1].split("\n"):
        match = _TRAILER_LINE.match(line.rstrip())
        if match is None:
            return {}
        trailers.setdefault(match.group(1), []).append(match.group(2))
    return trailers


def trailer_value(what: str, value: str) -> str:
    """Trailer values must survive a round trip exactly: one line, no surrounding blanks."""
    if not value or value != value.strip() or any(ch in value for ch in "\r\n\x00"):
        raise InvalidEdit(
            f"{what} {value!r} cannot be recorded in a commit trailer (empty, multi-line or padded)"
        )
    return value


def log_head_trailer(log_head: str | None) -> str:
    """The `Distill-Log-Head` trailer line (with its leading newline), or "" without a head."""
    if log_head is None:
        return ""
    return f"\n{ANCHOR_TRAILER}: {trailer_value('log head', log_head)}"


def summary_line(edit: Edit) -> str:
    """A one-line commit subject naming the op and what it touches."""
    keys = ("agent", "query_class", "model", "param", "tool_name", "target_model")
    parts = [f"{k}={edit.payload[k]}" for k in keys if isinstance(edit.payload.get(k), str)]
    subject = " ".join([f"{edit.op.value}:", *(parts or [edit.target or edit.id])])
    subject = " ".join(subject.split())  # no newlines or runs of blanks from a teacher's payload
    subject = "".join(ch if ch.isprintable() else "?" for ch in subject)  # no control characters either
    return subject if len(subject) <= 100 else subject[:99] + "…"


def edit_message(edit: Edit, *, session_id: str, tier: str, anchor: str) -> str:
    """The commit message of an applied edit (`anchor`: `log_head_trailer`'s line, or "")."""
    return (
        f"{summary_line(edit)}\n\n"
        f"Edit-ID: {edit.id}\nSession-ID: {session_id}\nRisk-Tier: {tier}\nOp: {edit.op.value}"
        f"{anchor}"
    )


def revert_message(*, edit_id: str, subject: str, sha: str, session_id: str, anchor: str) -> str:
    """The commit message of a revert of `sha`, the commit of edit `edit_id` (`subject`: its subject)."""
    return (
        f"Revert edit {edit_id}: {subject}\n\nThis reverts commit {sha}.\n\n"
        f"Reverts-Edit-ID: {edit_id}\nSession-ID: {session_id}\nReverted-Commit: {sha}{anchor}"
    )
