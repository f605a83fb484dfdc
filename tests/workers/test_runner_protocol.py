"""Loops, the daemon, workers and training depend on the `SessionRunner` protocol, never on the engine
(import-linter cannot see this: they share the app layer with it)."""

from __future__ import annotations

import ast
from pathlib import Path

import distill_es
from distill_es.api import Engine
from distill_es.ports import SessionRunner

PACKAGE = Path(distill_es.__file__).parent
# The engine facade, its wiring and the session runner behind it.
ENGINE_MODULES = ("distill_es.api", "distill_es.compose", "distill_es.app.session_runner")
WITHOUT_THE_ENGINE = ["app/loop.py", "app/daemon.py", "app/worker.py", "app/adoption.py", "app/training"]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any level (function-level and TYPE_CHECKING ones included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_none_of_them_imports_the_engine() -> None:
    files = [p for name in WITHOUT_THE_ENGINE for p in sorted((PACKAGE / name).glob("**/*.py"))
             or [PACKAGE / name]]  # fmt: skip
    assert len(files) >= 6
    for path in files:
        engine_imports = {m for m in imported_modules(path) if m.startswith(ENGINE_MODULES)}
        assert not engine_imports, f"{path.relative_to(PACKAGE)} imports {engine_imports}"


def test_the_engine_is_a_session_runner(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "ws", create=True)
    try:
        assert isinstance(engine, SessionRunner)
    finally:
        engine.close()
