"""Make outside text inert before it reaches a terminal (issue 13: the teacher could paint the review
screen with `\\x1b[2J`, an OSC title, or rich markup such as `[green]APPROVED BY SECURITY[/]`).

Every string the teacher, traces, files or the network produced is hostile. Before the command line
prints one, `inert` rewrites each character a terminal would act on, or that hides or reorders text,
into a visible escape in Python's notation (`\\x1b`, `\\x07`, `\\u202e`):

- C0 controls U+0000–U+001F (ESC, BEL, CR, backspace…), DEL and the C1 controls U+0080–U+009F (some
  terminals read U+009B as CSI);
- Unicode format characters (category Cf): bidi embeddings, overrides and isolates U+202A–U+202E and
  U+2066–U+2069, zero-width spaces and joiners, the soft hyphen, tag characters…, which disguise what
  text says; line and paragraph separators U+2028/U+2029; lone surrogates (they cannot be encoded).

Newline and tab are escaped too, except in `multiline=True` text (a rationale, a diff preview, a
diagnosis), where they are the layout: a newline cannot move the cursor back over what is printed, and
rich expands tabs to spaces. Single-line fields (ids, names, one-line reasons) escape them, so an edit id
cannot forge a second line.

Rich markup is the other half: a console built by `safe_console` never parses markup or emoji codes in
strings, so `[green]…[/]` from outside prints as typed; our own styling uses `Text` objects. That
console also passes every segment it renders through `inert` (multiline), a net under any print site
that forgot. JSON output is data: `json_safe` escapes what `json.dumps(ensure_ascii=False)` leaves raw.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

# rich is imported only to build styled output (`safe_text`, `SafeConsole`): `inert` and `json_safe`
# serve every command, --json ones included, without it.
if TYPE_CHECKING:
    from rich.console import ConsoleOptions, RenderableType
    from rich.segment import Segment
    from rich.text import Text

# Categories Cc, Cf, Zl, Zp, Cs (tests/cli/test_terminal_safe.py checks this against unicodedata), and
# U+2065, unassigned but inside the block of invisible operators and bidi isolates.
_UNSAFE_RANGES = (
    "\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE_LINE = re.compile(f"[{_UNSAFE_RANGES}]")
_UNSAFE_BLOCK = re.compile(f"(?![\n\t])[{_UNSAFE_RANGES}]")
_JSON_RAW = re.compile(f"(?![\x00-\x1f])[{_UNSAFE_RANGES}]")  # what json.dumps leaves raw


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    """The escape Python's repr would show: `\\x1b`, `\\r`, `\\u202e`."""
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def inert(text: object, *, multiline: bool = False) -> str:
    """`text` as a str no terminal acts on: every unsafe character shown as its escape (`\\x1b`)."""
    value = text if isinstance(text, str) else str(text)
    return (_UNSAFE_BLOCK if multiline else _UNSAFE_LINE).sub(_visible, value)


def is_inert(text: str, *, multiline: bool = False) -> bool:
    return (_UNSAFE_BLOCK if multiline else _UNSAFE_LINE).search(text) is None


def safe_text(text: object, style: str = "", *, multiline: bool = False) -> Text:
    """A rich `Text` (never parsed as markup) of outside `text`, made inert."""
    from rich.text import Text

    return Text(inert(text, multiline=multiline), style=style)


def json_safe(dumped: str) -> str:
    """`json.dumps(..., ensure_ascii=False)` output with DEL, C1 and format characters escaped as
    `\\uXXXX` too. They can only occur inside JSON strings, so the data decodes unchanged."""
    return _JSON_RAW.sub(_json_escape, dumped)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)  # JSON spells astral characters as a surrogate pair
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


class InertFormatter(logging.Formatter):
    """Log lines quote outside text too (an interrupted session's error, a daemon note)."""

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record), multiline=True)


def __getattr__(name: str) -> Any:
    """`SafeConsole`, the rich console for outside text, is made on first use (it subclasses rich's
    `Console`, which a command printing JSON never imports)."""
    if name != "SafeConsole":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _safe_console()


@functools.cache
def _safe_console() -> type:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A rich console for outside text: no markup, no emoji codes, every rendered segment inert."""

        def __init__(self, **kwargs: Any) -> None:
            kwargs.update(markup=False, emoji=False, highlight=False)
            super().__init__(**kwargs)

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                if segment.control or is_inert(segment.text, multiline=True):
                    yield segment
                else:
                    yield Segment(inert(segment.text, multiline=True), segment.style)

        def render_str(self, text: str, **kwargs: Any) -> Text:
            # Strings printed or put in table cells are escaped before layout, so widths stay right.
            return super().render_str(inert(text, multiline=True), **kwargs)

    SafeConsole.__module__, SafeConsole.__qualname__ = __name__, "SafeConsole"
    return SafeConsole
