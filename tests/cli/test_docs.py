"""docs/cli.md is the real `--help` of every command: regenerate it, never edit it by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import typer

from distill_es.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_docs", module)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_help() -> None:
    generator = load_generator()
    expected = generator.render()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def test_every_command_is_documented() -> None:
    generator = load_generator()
    paths = generator.command_paths(typer.main.get_command(app))
    names = {" ".join(p) for p in paths}
    expected = {"init", "demo", "run", "resume", "sessions", "show", "history", "review", "approve",
                "reject", "rollback", "verify", "diagram", "benchmark", "benchmark show"}  # fmt: skip
    assert expected <= names
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in expected:
        assert f"## `distill-es {name}`" in text
