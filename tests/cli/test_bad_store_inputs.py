"""Bad store inputs — a store file that is not SQLite, an export that is not text, a folder where a
file belongs, a foreign store a failing command must not create, out-of-range paging — are each one
clean error with the contract's exit code, never "this is a bug", and create nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import Demo, cli, run_demo_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("DISTILL_ES_HOME", "DISTILL_ES_STORE"):
            mp.delenv(name, raising=False)
        return run_demo_cli(tmp_path_factory.mktemp("bad_inputs") / "d")


@pytest.fixture(scope="module")
def export_file(demo: Demo) -> Path:
    out = demo.home.parent / "all.jsonl"
    assert cli("--home", demo.home, "export", "--all", "--out", out).exit_code == 0
    return out


def _error(result: object) -> dict:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, result.output  # type: ignore[attr-defined]
    return json.loads(lines[0])


def test_a_store_file_that_is_not_sqlite_is_one_clean_error_everywhere(
    demo: Demo, export_file: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(5000))
    store = f"sqlite:///{junk}"
    for command in (
        ["sessions"],
        ["regate", "--all"],
        ["verify"],
        ["show", demo.session_id],
        ["history", demo.session_id],
        ["import", export_file],
        ["run"],
    ):
        result = cli("--home", demo.home, "--store", store, *command, "--json")
        error = _error(result)
        assert result.exit_code == 1 == error["exit_code"], (command, result.output)
        assert f"{junk} cannot be read: file is not a database" in error["error"], (command, error)
        assert "bug" not in result.output


def test_a_binary_export_file_is_a_usage_error_and_creates_no_store(demo: Demo, tmp_path: Path) -> None:
    target = tmp_path / "new.sqlite"
    for content in (b"\x00\xff", b'{"a": 1}\n\xff\xfe', b"abc\x00def\n"):
        binary = tmp_path / "b.jsonl"
        binary.write_bytes(content)
        result = cli("--home", demo.home, "import", binary, "--store", f"sqlite:///{target}", "--json")
        error = _error(result)
        assert result.exit_code == 2 == error["exit_code"], result.output
        assert "is not an export file" in error["error"] and "bug" not in result.output
        assert not target.exists()
    piped = cli("--home", demo.home, "import", "-", "--store", f"sqlite:///{target}", "--json")
    assert piped.exit_code in {1, 2} and "bug" not in piped.output  # empty stdin: nothing to import


def test_a_directory_where_a_file_belongs_is_named_as_one(demo: Demo, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    result = cli("--home", demo.home, "import", folder, "--json")
    assert result.exit_code == 2 and "is a directory" in _error(result)["error"], result.output
    for command in (["sessions"], ["verify"], ["show", demo.session_id]):
        result = cli("--home", demo.home, "--store", f"sqlite:///{folder}", *command, "--json")
        error = _error(result)
        assert result.exit_code == 2 == error["exit_code"], (command, result.output)
        assert f"names the directory {folder}" in error["error"]
    assert list(folder.iterdir()) == []


def test_cancel_against_a_foreign_store_that_finds_nothing_creates_nothing(
    demo: Demo, tmp_path: Path
) -> None:
    other = tmp_path / "o.sqlite"
    result = cli("--home", demo.home, "--store", f"sqlite:///{other}", "cancel", "nope", "--by", "x",
                 "--reason", "y", "--json")  # fmt: skip
    assert result.exit_code == 3 == _error(result)["exit_code"], result.output
    assert not other.exists()


def test_verify_on_a_foreign_store_holds_only_its_copies_to_the_workspace_anchors(
    demo: Demo, export_file: Path, tmp_path: Path
) -> None:
    import sqlite3

    from distill_es.store.app import EventStore

    other = tmp_path / "o.sqlite"
    EventStore(f"sqlite:///{other}").close()  # an empty store that is not the workspace's owner
    foreign = ("--home", demo.home, "--store", f"sqlite:///{other}")
    empty = cli(*foreign, "verify", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == [], empty.output  # not "truncated"

    assert cli(*foreign, "import", export_file, "--json").exit_code == 0  # a copy of the session
    assert cli(*foreign, "verify", "--json").exit_code == 0
    with sqlite3.connect(other) as db:  # cut the copy before the workspace's anchors
        db.execute("DELETE FROM stored_events WHERE originator_version > 20")
    for view in (demo.home / ".distill_es").glob("views-*.sqlite*"):
        view.unlink()  # the foreign store's index forgets: only the anchors in git remember
    cut = cli(*foreign, "verify", "--json")
    assert cut.exit_code == 1, cut.output
    kinds = {d["kind"] for r in json.loads(cut.stdout) for d in r["damage"]}
    assert "truncated" in kinds


@pytest.mark.parametrize(
    "options",
    [
        ["--limit", "99999999999999999999"],
        ["--offset", "99999999999999999999"],
        ["--limit", str(2**63)],
        ["--offset", str(2**31)],
        ["--all", "--limit", "5"],
    ],
)
def test_sessions_paging_out_of_range_or_contradictory_is_usage(demo: Demo, options: list[str]) -> None:
    result = cli("--home", demo.home, "sessions", *options, "--json")
    assert result.exit_code == 2 == _error(result)["exit_code"], result.output
    assert "bug" not in result.output


def test_sessions_paging_at_the_bound_still_lists(demo: Demo) -> None:
    result = cli("--home", demo.home, "sessions", "--limit", str(2**31 - 1), "--offset", "0", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 1, result.output
