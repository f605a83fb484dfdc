"""Shared fixtures of the hostile-world tests: a scripted world over real HTTP, real git, real stores."""

from __future__ import annotations

from tests.engine.conftest import World, scripted_world  # noqa: F401  (re-exported fixtures)
