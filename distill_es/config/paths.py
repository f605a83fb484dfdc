"""Paths as users write them: `~` and `$VARS` expanded, relative ones taken from a base directory.

One rule for `Engine.open`, `--home`, `$DISTILL_ES_HOME`, `--traces` and the path settings, so that
"~/agent" never becomes a folder named "~".
"""

from __future__ import annotations

import os
from pathlib import Path


def expand(path: str | Path) -> Path:
    """`~`, `~user` and `$VAR`/`${VAR}` expanded (unknown variables are left as written)."""
    return Path(os.path.expanduser(os.path.expandvars(os.fspath(path))))


def resolve(path: str | Path, base: str | Path | None = None) -> Path:
    """`expand(path)` made absolute: relative to `base` when given, else to the current directory."""
    expanded = expand(path)
    if base is not None and not expanded.is_absolute():
        expanded = Path(base) / expanded
    return expanded.resolve()
