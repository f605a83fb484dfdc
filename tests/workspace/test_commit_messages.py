from __future__ import annotations

import pytest

from distill_es.domain.errors import InvalidEdit
from distill_es.domain.vocabulary import Edit, EditOp, EditPillar
from distill_es.workspace.commit_messages import (
    BASELINE_MESSAGE,
    edit_message,
    log_head_trailer,
    parse_trailers,
    revert_message,
    trailer_value,
)


def test_parse_trailers_only_reads_the_last_paragraph() -> None:
    assert parse_trailers("Edit-ID: x") == {}  # a subject is not a trailer
    assert parse_trailers("subject\n\nEdit-ID: x\nnot a trailer line") == {}
    assert parse_trailers("subject\n\nEdit-ID: a\n\nbody\n\nSession-ID: s\n") == {"Session-ID": ["s"]}


def test_messages_carry_their_trailers_in_the_last_paragraph() -> None:
    assert parse_trailers(BASELINE_MESSAGE) == {"Distill-ES": ["baseline"]}
    edit = Edit(
        id="e1",
        pillar=EditPillar.TOOLS,
        op=EditOp.ADD_TOOL_TO_AGENT,
        target="agent.simple",
        payload={"agent": "simple", "tool_name": "calc"},
        rationale="r",
        expected_improvement="math",
    )
    applied = edit_message(edit, session_id="s1", tier="auto", anchor=log_head_trailer("3:abc"))
    assert applied.startswith("add_tool_to_agent: agent=simple tool_name=calc\n\n")
    trailers = parse_trailers(applied)
    assert trailers["Edit-ID"] == ["e1"] and trailers["Session-ID"] == ["s1"]
    assert trailers["Risk-Tier"] == ["auto"] and trailers["Op"] == ["add_tool_to_agent"]
    assert trailers["Distill-Log-Head"] == ["3:abc"]
    sha = "a" * 40
    reverted = parse_trailers(revert_message(edit_id="e1", subject="x", sha=sha, session_id="s1", anchor=""))
    assert reverted == {"Reverts-Edit-ID": ["e1"], "Session-ID": ["s1"], "Reverted-Commit": [sha]}


@pytest.mark.parametrize("value", ["", " padded", "two\nlines", "nul\x00"])
def test_a_value_that_cannot_round_trip_is_refused(value: str) -> None:
    with pytest.raises(InvalidEdit, match="cannot be recorded in a commit trailer"):
        trailer_value("edit id", value)
