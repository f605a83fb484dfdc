"""`--help` as people expect it: an on/off flag shows no value type.

typer 0.29's rich help prints `<bool>` beside every flag (its plain help does not), which reads as if
`--json true` were needed. The rich help asks the option for its type with `display_type_rich`; for a
boolean flag we answer "nothing to show", and every other option is shown as typer shows it.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_typer_display_type_rich = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx: Any) -> str | None:
    if getattr(self, "is_bool_flag", False) and self.metavar is None:
        return None
    return _typer_display_type_rich(self, ctx)


def hide_flag_values() -> None:
    """Install the flag rule once (idempotent)."""
    TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
