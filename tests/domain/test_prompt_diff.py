from __future__ import annotations

import difflib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill_es.domain.errors import InvalidEdit
from distill_es.domain.prompt_diff import apply_unified_diff, changed_line_ratio

TEN = "".join(f"line{i}\n" for i in range(1, 11))


def test_applies_a_simple_hunk() -> None:
    diff = "--- a/prompt.md\n+++ b/prompt.md\n@@ -1,3 +1,3 @@\n line1\n-line2\n+changed_line2\n line3\n"
    assert apply_unified_diff("line1\nline2\nline3\n", diff) == "line1\nchanged_line2\nline3\n"


def test_reference_off_by_one_fixture_is_rejected_naming_the_hunk() -> None:
    # The reference accepted this and deleted line3 instead of line2 (§11.13).
    diff = "--- a/prompt.md\n+++ b/prompt.md\n@@ -2,1 +2,1 @@\n line1\n-line2\n+changed\n line3\n"
    with pytest.raises(InvalidEdit) as err:
        apply_unified_diff(TEN, diff)
    assert "@@ -2,1 +2,1 @@" in str(err.value)
    assert "'-line2'" in str(err.value)


def test_context_mismatch_names_hunk_and_line() -> None:
    diff = "@@ -3,2 +3,3 @@\n line3\n+new\n lineX\n"
    with pytest.raises(InvalidEdit) as err:
        apply_unified_diff(TEN, diff)
    message = str(err.value)
    assert "@@ -3,2 +3,3 @@" in message
    assert "line 4 is 'line4'" in message and "'lineX'" in message


def test_removed_line_must_match() -> None:
    with pytest.raises(InvalidEdit, match="removed line 'nope'"):
        apply_unified_diff(TEN, "@@ -2,1 +2,1 @@\n-nope\n+x\n")


def test_multiple_hunks() -> None:
    diff = (
        "@@ -1,2 +1,2 @@\n-line1\n+first\n line2\n"
        "@@ -5,3 +5,4 @@\n line5\n+inserted\n line6\n line7\n"
        "@@ -10,1 +11,1 @@\n-line10\n+last\n"
    )
    expected = "first\nline2\nline3\nline4\nline5\ninserted\nline6\nline7\nline8\nline9\nlast\n"
    assert apply_unified_diff(TEN, diff) == expected


def test_hunk_shorter_than_its_header_is_rejected() -> None:
    with pytest.raises(InvalidEdit, match=r"@@ -1,3 \+1,3 @@ is shorter"):
        apply_unified_diff(TEN, "@@ -1,3 +1,3 @@\n line1\n-line2\n+x\n")


def test_unparseable_diff_is_rejected_never_used_as_prompt() -> None:
    for diff in ["this is not a valid unified diff", "", "   \n", "@@ broken @@\n+x\n"]:
        with pytest.raises(InvalidEdit):
            apply_unified_diff("original content\n", diff)


def test_bad_prefix_inside_hunk() -> None:
    with pytest.raises(InvalidEdit, match="does not start with"):
        apply_unified_diff(TEN, "@@ -1,2 +1,2 @@\n line1\n*line2\n")


def test_second_file_is_rejected() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-line1\n+a\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-q\n+r\n"
    with pytest.raises(InvalidEdit, match="more than one file"):
        apply_unified_diff(TEN, diff)


def test_insertion_at_top_and_its_ratio() -> None:
    patched = apply_unified_diff(TEN, "@@ -0,0 +1 @@\n+You are careful.\n")
    assert patched == "You are careful.\n" + TEN
    assert changed_line_ratio(TEN, patched) == pytest.approx(1 / 11)


def test_small_offset_is_found_when_unique() -> None:
    # Correct counts, start stated one line late: `patch` finds the unique place, and so do we.
    assert apply_unified_diff(TEN, "@@ -3,2 +3,2 @@\n line1\n-line2\n+two\n").startswith("line1\ntwo\nline3")


def test_ambiguous_offset_is_rejected() -> None:
    text = "a\nx\nb\nx\nc\n"
    with pytest.raises(InvalidEdit, match="several"):
        apply_unified_diff(text, "@@ -3,1 +3,1 @@\n-x\n+y\n")


def test_overlapping_hunks_are_rejected() -> None:
    diff = "@@ -1,2 +1,2 @@\n line1\n-line2\n+a\n@@ -1,1 +1,1 @@\n-line1\n+b\n"
    with pytest.raises(InvalidEdit, match="@@ -1,1 \\+1,1 @@"):
        apply_unified_diff(TEN, diff)


def test_trailing_newline_behaviour_is_preserved() -> None:
    assert apply_unified_diff("a\nb", "@@ -2 +2 @@\n-b\n+c\n\\ No newline at end of file\n") == "a\nc"
    assert apply_unified_diff("a\nb\n", "@@ -2 +2 @@\n-b\n+c\n") == "a\nc\n"


def test_blank_context_line_with_stripped_space() -> None:
    assert apply_unified_diff("a\n\nb\n", "@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n") == "a\n\nc\n"


def test_changed_line_ratio_cases() -> None:
    assert changed_line_ratio("", "") == 0.0
    assert changed_line_ratio("hello\nworld\n", "hello\nworld\n") == 0.0
    assert changed_line_ratio("aaa\nbbb\nccc\n", "xxx\nyyy\nzzz\n") == 1.0
    assert changed_line_ratio("", "new\n") == 1.0
    assert changed_line_ratio("line1\nline2\nline3\nline4\n", "line1\nchanged\nline3\nline4\n") == 0.25


# Distinct lines: difflib's matching blocks are not a full LCS when lines repeat.
@given(st.lists(st.text(alphabet="abc ", max_size=5), max_size=12, unique=True), st.integers(0, 12))
def test_inserting_one_line_changes_one_line(lines: list[str], where: int) -> None:
    where = min(where, len(lines))
    original = "".join(line + "\n" for line in lines)
    diff = f"@@ -{where},0 +{where + 1} @@\n+INSERTED\n"
    patched = apply_unified_diff(original, diff)
    new_lines = [*lines[:where], "INSERTED", *lines[where:]]
    assert patched == "".join(line + "\n" for line in new_lines)
    assert changed_line_ratio(original, patched) == pytest.approx(1 / len(new_lines))


@given(
    st.lists(st.sampled_from(["a", "b", "c", "", "d e"]), max_size=15),
    st.lists(st.sampled_from(["a", "b", "c", "", "x"]), max_size=15),
    st.integers(0, 3),
)
def test_difflib_diffs_round_trip(old: list[str], new: list[str], context: int) -> None:
    original = "".join(line + "\n" for line in old)
    target = "".join(line + "\n" for line in new)
    hunks = difflib.unified_diff(original.splitlines(True), target.splitlines(True), "a", "b", n=context)
    diff = "".join(hunks)
    if original == target:
        return
    assert apply_unified_diff(original, diff) == target
