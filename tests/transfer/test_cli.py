"""`export` and `import` on a Typer app through `register`: files, stdout, exit codes, messages."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from distill_es.api import Engine
from distill_es.app.transfer import export_all
from distill_es.cli.transfer import register
from distill_es.store.app import EventStore

from .conftest import Source, open_engine


def make_app(opened: list[str | None]) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    def opener(ctx: typer.Context, home: Path | None, store: str | None, own: bool | None = None) -> Engine:
        if home is None:
            raise typer.BadParameter("--home is required here")
        opened.append(store)
        return open_engine(home, store_url=store, own=own)

    register(app, opener)
    return app


@pytest.fixture
def app_calls() -> list[str | None]:
    return []


@pytest.fixture
def run(app_calls: list[str | None]):
    app = make_app(app_calls)

    def invoke(*args: Any, input: str | None = None) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args], input=input)

    return invoke


@pytest.fixture
def workspace(source: Source, tmp_path: Path) -> Path:
    """A copy of the source workspace (import writes the index under <home>/.distill_es)."""
    return shutil.copytree(source.home, tmp_path / "ws")


def test_export_one_session_by_prefix_to_a_file_then_import_it_elsewhere(
    run, workspace: Path, source: Source, tmp_path: Path, app_calls
):
    out = tmp_path / "exports" / "session.jsonl"
    exported = run("export", source.pending[:8], "--out", out, "--home", workspace)
    assert exported.exit_code == 0, exported.output
    assert f"to {out}" in exported.stdout
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1])["end"]["sessions"] == 1
    assert {json.loads(line)["session_id"] for line in lines[:-1]} == {source.pending}
    assert f"exported {len(lines) - 1} events of 1 session(s)" in exported.stdout

    target = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    imported = run("import", out, "--store", target, "--home", workspace)
    assert imported.exit_code == 0, imported.output
    assert f"imported {len(lines) - 1} events of 1 session(s) into {target}" in imported.stdout
    assert source.pending in imported.stdout
    assert app_calls == [None, target]

    again = run("import", out, "--store", target, "--home", workspace)
    assert again.exit_code == 4
    assert "already exist" in again.stderr and source.pending in again.stderr


def test_export_all_to_stdout_and_import_from_stdin_as_json(
    run, workspace: Path, source: Source, tmp_path: Path
):
    exported = run("export", "--all", "--home", workspace)
    assert exported.exit_code == 0, exported.output
    store = EventStore(f"sqlite:///{workspace / '.distill_es' / 'events.sqlite'}")
    try:
        assert exported.stdout == "".join(export_all(store))
    finally:
        store.close()

    target = f"sqlite:///{tmp_path / 'from-stdin.sqlite'}"
    imported = run("import", "-", "--store", target, "--home", workspace, "--json", input=exported.stdout)
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout)
    assert [s["session_id"] for s in report["sessions"]] == [source.rolled_back, source.pending]
    assert report["store"] == target


def test_a_damaged_file_exits_1_with_line_and_reason_and_imports_nothing(
    run, workspace: Path, tmp_path: Path
):
    text = run("export", "--all", "--home", workspace).stdout
    lines = text.splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(lines[:6] + lines[7:]), encoding="utf-8")
    target = tmp_path / "target.sqlite"

    result = run("import", damaged, "--store", f"sqlite:///{target}", "--home", workspace)
    assert result.exit_code == 1
    assert "error: line 7: " in result.stderr and "jumps from position 6 to 8" in result.stderr
    assert "nothing was imported" in result.stderr and result.stdout == ""
    store = EventStore(f"sqlite:///{target}")
    try:
        assert store.max_position() == 0
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["export"], 2, "either SESSION or --all"),
        (["export", "abc", "--all"], 2, "either SESSION or --all"),
        (["export", "ffffffff"], 3, "no session in"),
        (["export", ""], 2, "empty"),
        (["import", "no-such-file.jsonl"], 3, "no export file"),
    ],
)
def test_usage_and_not_found_exit_codes(run, workspace: Path, args: list[str], code: int, words: str):
    result = run(*args, "--home", workspace)
    assert result.exit_code == code, result.output
    assert words in result.stderr


def test_a_failed_export_leaves_no_file(run, source: Source, tmp_path: Path):
    out = tmp_path / "never.jsonl"
    result = run("export", "00000000-0000-0000-0000-000000000000", "--out", out, "--home", source.home)
    assert result.exit_code == 3
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_mounted_the_way_the_main_app_opens_engines(source: Source, tmp_path: Path):
    """The integration `distill_es.cli.main` needs: its own home resolution and engine, a store override."""
    from distill_es.cli import engines as cli

    @contextmanager
    def opener(
        ctx: typer.Context, home: Path | None, store: str | None, own: bool | None = None
    ) -> Iterator[Engine]:
        path = cli.resolve_home(ctx, home)
        if store is None:
            with cli.open_engine(ctx, path, own=own) as engine:
                yield engine
            return
        engine = Engine.open(path, store_url=store, own=own)
        try:
            yield engine
        finally:
            engine.close()

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app, opener)
    workspace = shutil.copytree(source.home, tmp_path / "ws")
    out = tmp_path / "all.jsonl"
    assert (
        CliRunner().invoke(app, ["export", "--all", "--out", str(out), "--home", str(workspace)]).exit_code
        == 0
    )
    target = f"sqlite:///{tmp_path / 'team.sqlite'}"
    result = CliRunner().invoke(app, ["import", str(out), "--store", target, "--home", str(workspace)])
    assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(app, ["export", "--all", "--home", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0  # the main app's own error for a missing workspace
