"""docs/cli.md is the real `--help` of every command: regenerate it, never edit it by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import typer

from distill_es.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def load_generator(name: str = "gen_cli_docs") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
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
                "reject", "rollback", "verify", "diagram", "benchmark", "benchmark show", "doctor",
                "dev-servers"}  # fmt: skip
    assert expected <= names
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in expected:
        assert f"## `distill-es {name}`" in text


def test_doc_samples_are_real_output() -> None:
    """The dev-servers and doctor samples in getting-started.md and operations.md, from real runs."""
    generator = load_generator("gen_doc_samples")
    docs = generator.render_docs()
    assert {path.name for path in docs} == {"getting-started.md", "operations.md"}
    for path, (current, fresh) in docs.items():
        assert "<!-- sample: " in current
        assert current == fresh, (
            f"{path.name}: a sample is out of date: run python scripts/gen_doc_samples.py"
        )
