"""The engine's lines in the workspace's .gitignore: its own files never make the tree dirty."""

from __future__ import annotations

# Anchored to the root: `traces.jsonl` must not also hide `agents/x/traces.jsonl`.
IGNORED_PATTERNS = ("/.distill_es/", "/traces.jsonl", "/traces.db*", "/benchmark.jsonl", "/distill_es.toml")
GITIGNORE_HEADER = "# distill_es: engine files, never part of the student's tracked configuration"


def merged_gitignore(current: str) -> str:
    """`current` with the engine's ignore patterns appended once (the user's lines kept as they are)."""
    lines = current.splitlines()
    missing = [pattern for pattern in IGNORED_PATTERNS if pattern not in lines]
    if not missing:
        return current
    block = ([GITIGNORE_HEADER] if GITIGNORE_HEADER not in lines else []) + missing
    prefix = current if not current or current.endswith("\n") else current + "\n"
    return prefix + "\n".join(block) + "\n"
