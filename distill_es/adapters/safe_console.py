"""The rich console for outside text (see terminal_safe): no markup, no emoji codes, every rendered
segment inert. Apart from terminal_safe so that commands printing JSON never import rich."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from distill_es.adapters.terminal_safe import inert, is_inert


class SafeConsole(Console):
    """A rich console for outside text: no markup, no emoji codes, every rendered segment inert."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(markup=False, emoji=False, highlight=False)
        super().__init__(**kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or is_inert(segment.text, multiline=True):
                yield segment
            else:
                yield Segment(inert(segment.text, multiline=True), segment.style)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # Strings printed or put in table cells are escaped before layout, so widths stay right.
        return super().render_str(inert(text, multiline=True), **kwargs)
