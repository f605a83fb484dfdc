"""A real unified-diff applier for system prompts, and a line-change ratio.

The reference (spec search §3.4, §11.13) checked neither context nor removed lines, ignored hunk
counts, turned an unparseable diff into a prompt made of the diff text, and measured change by
position so that one inserted line counted as 100% changed. Here every context and removed line must
match, the header counts must agree with the hunk body, and any failure is an `InvalidEdit` that names
the hunk and the first line that does not fit.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from distill_es.domain.errors import InvalidEdit

# How far (in lines) a hunk may be moved from its stated position when it does not fit there,
# like `patch`'s offset search; the place must be unique within that window.
MAX_OFFSET = 20

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = "\\"  # "\ No newline at end of file"


@dataclass(frozen=True)
class _Hunk:
    header: str
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[tuple[str, str], ...]  # (kind, text): kind in " ", "-", "+"

    @property
    def old_lines(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "+"]

    @property
    def new_lines(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "-"]


def _split(text: str) -> list[str]:
    """Lines without their `\\n`; only `\\n` separates (prompts may contain other control chars)."""
    if not text:
        return []
    body = text[:-1] if text.endswith("\n") else text
    return body.split("\n")


def _short(line: str, limit: int = 120) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")


def _parse(diff: str) -> list[_Hunk]:
    lines = diff.split("\n")
    if lines[-1] == "":
        lines.pop()  # the terminator of the last line, not a blank line
    index = 0
    # File headers (`---`, `+++`, `diff`, `index`) and any preamble come before the first hunk.
    while index < len(lines) and not lines[index].startswith("@@"):
        index += 1
    if index == len(lines):
        raise InvalidEdit("not a unified diff: no hunk header like '@@ -3,2 +3,3 @@' found")

    hunks: list[_Hunk] = []
    while index < len(lines):
        line = lines[index]
        if line.startswith("@@"):
            hunk, index = _parse_hunk(lines, index)
            hunks.append(hunk)
        elif line == "" and all(rest == "" for rest in lines[index:]):
            break  # trailing blank lines at the end of the diff
        elif line.startswith(_NO_NEWLINE):
            index += 1
        elif line.startswith("diff ") or (
            line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ ")
        ):
            raise InvalidEdit(f"the diff touches more than one file (second file header {_short(line)})")
        else:
            last = hunks[-1]
            raise InvalidEdit(
                f"hunk {last.header} has more lines than its header counts "
                f"({last.old_count} old, {last.new_count} new); first extra line: {_short(line)}"
            )
    return hunks


def _parse_hunk(lines: list[str], index: int) -> tuple[_Hunk, int]:
    raw_header = lines[index]
    match = _HUNK_HEADER.match(raw_header)
    if match is None:
        raise InvalidEdit(f"malformed hunk header {_short(raw_header)} (expected '@@ -a,b +c,d @@')")
    header = match.group(0)
    old_start, new_start = int(match.group(1)), int(match.group(3))
    old_count = int(match.group(2)) if match.group(2) is not None else 1
    new_count = int(match.group(4)) if match.group(4) is not None else 1
    if old_start == 0 and old_count > 0:
        raise InvalidEdit(f"hunk {header} starts at line 0, but lines are numbered from 1")

    body: list[tuple[str, str]] = []
    old_seen = new_seen = 0
    index += 1
    while old_seen < old_count or new_seen < new_count:
        if index >= len(lines) or lines[index].startswith("@@"):
            raise InvalidEdit(
                f"hunk {header} is shorter than its header says: it counts {old_count} old and "
                f"{new_count} new lines, the body has {old_seen} old and {new_seen} new"
            )
        line = lines[index]
        index += 1
        if line.startswith(_NO_NEWLINE):
            continue
        # An empty line is a blank context line whose leading space was stripped (as `patch` reads it).
        kind, text = (" ", "") if line == "" else (line[0], line[1:])
        if kind not in " -+":
            raise InvalidEdit(
                f"hunk {header}: line {_short(line)} does not start with ' ', '-' or '+' "
                f"(the header still expects {old_count - old_seen} old and {new_count - new_seen} new lines)"
            )
        old_seen += kind != "+"
        new_seen += kind != "-"
        if old_seen > old_count or new_seen > new_count:
            raise InvalidEdit(
                f"hunk {header} has more lines than its header counts "
                f"({old_count} old, {new_count} new); first extra line: {_short(line)}"
            )
        body.append((kind, text))
    return _Hunk(header, old_start, old_count, new_start, new_count, tuple(body)), index


def _first_mismatch(current: list[str], at: int, hunk: _Hunk) -> str | None:
    """Why the hunk does not fit at 0-based position `at`, or None when it does."""
    cursor = at
    for kind, text in hunk.lines:
        if kind == "+":
            continue
        what = "context" if kind == " " else "removed"
        if cursor >= len(current):
            return f"the prompt ends at line {len(current)}, the hunk expects {what} line {_short(text)}"
        if current[cursor] != text:
            found = _short(current[cursor])
            return f"line {cursor + 1} is {found}, the hunk expects {what} line {_short(text)}"
        cursor += 1
    return None


def _locate(current: list[str], hunk: _Hunk, floor: int, offset: int) -> int:
    """The 0-based index where the hunk's old lines start; `floor` keeps hunks in order."""
    # A hunk with no old lines inserts *after* line `old_start`; otherwise it starts at `old_start`.
    stated = hunk.old_start if hunk.old_count == 0 else hunk.old_start - 1
    expected = stated + offset
    if hunk.old_count == 0:
        if not floor <= expected <= len(current):
            raise InvalidEdit(
                f"hunk {hunk.header} inserts after line {hunk.old_start}, outside the prompt "
                f"({len(current)} lines) or before the previous hunk"
            )
        return expected
    if expected >= floor and _first_mismatch(current, expected, hunk) is None:
        return expected
    fits = [
        at
        for at in range(max(floor, expected - MAX_OFFSET), min(len(current), expected + MAX_OFFSET) + 1)
        if at != expected and _first_mismatch(current, at, hunk) is None
    ]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        where = ", ".join(str(at + 1) for at in fits[:5])
        raise InvalidEdit(
            f"hunk {hunk.header} does not fit at line {hunk.old_start} and fits at several nearby "
            f"places (lines {where}); give the exact line numbers"
        )
    if expected < floor:
        raise InvalidEdit(f"hunk {hunk.header} overlaps the previous hunk or is out of order")
    reason = _first_mismatch(current, expected, hunk)
    raise InvalidEdit(f"hunk {hunk.header} does not apply: {reason}")


def apply_unified_diff(original: str, diff: str) -> str:
    """`original` with `diff` applied; `InvalidEdit` (naming the hunk) when it does not fit exactly."""
    if not isinstance(diff, str) or not diff.strip():
        raise InvalidEdit("the diff is empty")
    if "\r\n" in diff and "\r\n" not in original:
        diff = diff.replace("\r\n", "\n")  # a CRLF diff against an LF prompt
    hunks = _parse(diff)
    current = _split(original)
    result: list[str] = []
    cursor = 0  # next unconsumed line of `current`
    offset = 0  # drift found so far, carried to later hunks as `patch` does
    for hunk in hunks:
        at = _locate(current, hunk, cursor, offset)
        offset = at - (hunk.old_start if hunk.old_count == 0 else hunk.old_start - 1)
        result.extend(current[cursor:at])
        result.extend(hunk.new_lines)
        cursor = at + hunk.old_count
    result.extend(current[cursor:])
    if not result:
        return ""
    # The original's trailing-newline behaviour is kept whatever the diff's markers say.
    ends_with_newline = original.endswith("\n") or not original
    return "\n".join(result) + ("\n" if ends_with_newline else "")


def changed_line_ratio(a: str, b: str) -> float:
    """Share of lines outside the longest matching blocks, over the longer text's line count.

    One line inserted at the top of a 10-line prompt is ~0.09 (the reference said 1.0).
    """
    lines_a, lines_b = _split(a), _split(b)
    longest = max(len(lines_a), len(lines_b))
    if longest == 0:
        return 0.0
    matcher = difflib.SequenceMatcher(None, lines_a, lines_b, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return (longest - matched) / longest
