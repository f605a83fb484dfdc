"""A traces source a person names, black-box through the CLI (issue 16's fresh-clone review): missing is
not found (3) and unreadable or not traces a usage error (2), whether `--traces` or `[traces] source`
named it; the message names the file and which of the two; nothing is recorded. A `.db` is read as an
OpenJarvis database (told by its header), `init --openjarvis` refuses one that is not SQLite, and `loop`,
`daemon` and `flag` take `--traces` as `run` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_es.adapters.traces import OpenJarvisTraceSource
from distill_es.demo.run import CASSETTE
from tests.cli.conftest import cli, cli_json
from tests.data.openjarvis_home import copy_openjarvis_home

SETTING = "[traces] source"


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert cli("init", ws).exit_code == 0
    return ws


def _bad_sources(tmp_path: Path) -> dict[str, tuple[Path, int, str]]:
    """name -> (path, exit code, words of the message)."""
    folder = tmp_path / "folder"
    folder.mkdir()
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text("not json\n")
    text_db = tmp_path / "text.db"
    text_db.write_text('{"trace_id": "t1", "query": "q", "result": "r"}\n')  # JSONL named .db
    empty_db = tmp_path / "empty.db"
    empty_db.write_bytes(b"")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"trace_id": "t\xe9"}\n')
    return {
        "missing": (tmp_path / "gone.jsonl", 3, "traces source not found"),
        "missing db": (tmp_path / "gone.db", 3, "traces source not found"),
        "bad jsonl": (bad_jsonl, 2, "not valid JSON"),
        "not utf-8": (latin, 2, "not valid UTF-8"),
        "db not sqlite": (text_db, 2, "not an OpenJarvis traces database"),
        "empty db": (empty_db, 2, "the file is empty"),
        "folder without traces": (folder, 2, "a folder with neither"),
    }


CASES = [
    "missing",
    "missing db",
    "bad jsonl",
    "not utf-8",
    "db not sqlite",
    "empty db",
    "folder without traces",
]


@pytest.mark.parametrize("route", ["--traces", SETTING])
@pytest.mark.parametrize("case", CASES)
def test_run_refuses_a_named_traces_source_the_same_way_by_flag_or_setting(
    tmp_path: Path, route: str, case: str
) -> None:
    ws = _workspace(tmp_path)
    path, code, words = _bad_sources(tmp_path)[case]
    args = ["--home", ws, "run", "--teacher", f"cassette:{CASSETTE}", "--json"]
    if route == "--traces":
        args += ["--traces", path]
    else:
        (ws / "distill_es.toml").write_text(f"[traces]\nsource = {json.dumps(str(path))}\n")
    result = cli(*args)
    assert result.exit_code == code, result.output
    error = json.loads(result.stderr)  # exactly one JSON object
    assert error["exit_code"] == code
    assert str(path) in error["error"] and words in error["error"]
    assert f"given by {route}" in error["error"]
    assert cli_json("--home", ws, "sessions") == []  # nothing recorded


def test_doctor_names_where_a_broken_source_came_from(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    path, _, _ = _bad_sources(tmp_path)["bad jsonl"]
    (ws / "distill_es.toml").write_text(f"[traces]\nsource = {json.dumps(str(path))}\n")
    checks = {c["name"]: c for c in json.loads(cli("--home", ws, "doctor", "--json").stdout)}
    assert not checks["traces"]["ok"] and "given by [traces] source" in checks["traces"]["detail"]


def test_a_db_given_directly_is_read_as_an_openjarvis_database(tmp_path: Path) -> None:
    oj = copy_openjarvis_home(tmp_path / "oj")
    renamed = tmp_path / "elsewhere.sqlite3"
    renamed.write_bytes((oj / "traces.db").read_bytes())  # a checkpointed copy is not needed: header only
    ws = _workspace(tmp_path)
    for source in (oj / "traces.db", renamed):
        (ws / "distill_es.toml").write_text(f"[traces]\nsource = {json.dumps(str(source))}\n")
        checks = {c["name"]: c for c in json.loads(cli("--home", ws, "doctor", "--json").stdout)}
        assert "traces (a session needs" in checks["traces"]["detail"], checks["traces"]


@pytest.mark.parametrize("content", [b"", b"hello\n", b'{"trace_id": "t1"}\n'])
def test_init_openjarvis_refuses_a_traces_db_that_is_not_sqlite(tmp_path: Path, content: bytes) -> None:
    oj = copy_openjarvis_home(tmp_path / "oj")
    (oj / "traces.db-wal").unlink()
    (oj / "traces.db").write_bytes(content)
    result = cli("init", tmp_path / "ws", "--openjarvis", oj, "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stderr)
    assert error["exit_code"] == 2 and str(oj / "traces.db") in error["error"]
    assert "not an OpenJarvis traces database" in error["error"]
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    "command", [("loop",), ("daemon", "--once"), ("flag", "some-trace")], ids=lambda c: c[0]
)
def test_loop_daemon_and_flag_take_traces_like_run(tmp_path: Path, command: tuple[str, ...]) -> None:
    ws = _workspace(tmp_path)
    assert "--traces" in cli(*command[:1], "-h").stdout
    missing = cli("--home", ws, *command, "--traces", tmp_path / "gone.db")
    assert missing.exit_code == 3 and "given by --traces" in missing.stderr, missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{\n")
    invalid = cli("--home", ws, *command, "--traces", bad)
    assert invalid.exit_code == 2 and "not valid JSON" in invalid.stderr, invalid.output
    assert cli_json("--home", ws, "sessions") == []


def test_flag_finds_a_trace_in_the_source_traces_names(tmp_path: Path) -> None:
    oj = copy_openjarvis_home(tmp_path / "oj")
    (trace,) = OpenJarvisTraceSource(oj / "traces.db").list(limit=1)
    ws = _workspace(tmp_path)
    assert cli("--home", ws, "flag", trace.trace_id, "--by", "ann").exit_code == 3  # not in ws's own
    flagged = cli("--home", ws, "flag", trace.trace_id, "--by", "ann", "--traces", oj, "--json")
    assert flagged.exit_code == 0, flagged.output
    assert json.loads(flagged.stdout)["trace_id"] == trace.trace_id


def _broken_config(oj: Path, kind: str) -> None:
    config = oj / "config.toml"
    config.unlink()
    if kind == "config not utf-8":
        config.write_bytes(b"\xff\xfe[agent]\n")
    elif kind == "config a folder":
        config.mkdir()
    elif kind == "config not toml":
        config.write_text("[agent\n")
    elif kind == "traces.db a folder":
        config.write_text("")
        (oj / "traces.db").unlink()
        (oj / "traces.db").mkdir()


@pytest.mark.parametrize(
    "kind", ["config not utf-8", "config a folder", "config not toml", "traces.db a folder"]
)
def test_init_openjarvis_refuses_files_that_are_not_what_openjarvis_writes(tmp_path: Path, kind: str) -> None:
    oj = copy_openjarvis_home(tmp_path / "oj")
    _broken_config(oj, kind)
    result = cli("init", tmp_path / "ws", "--openjarvis", oj, "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stderr)
    assert str(oj) in error["error"] and "bug" not in error.get("hint", "")
    assert not (tmp_path / "ws").exists()


def test_a_sqlite_database_that_is_not_openjarvis_is_a_usage_error(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE notes (x)")
        conn.commit()
    ws = _workspace(tmp_path)
    result = cli("--home", ws, "run", "--traces", other, "--teacher", f"cassette:{CASSETTE}", "--json")
    assert result.exit_code == 2, result.output
    assert "not an OpenJarvis traces database" in json.loads(result.stderr)["error"]


def test_a_trace_without_a_query_is_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    (ws / "traces.jsonl").write_text('{"trace_id": "a", "query": "q"}\n{"trace_id": 1}\n')
    result = cli("--home", ws, "run", "--teacher", f"cassette:{CASSETTE}", "--json")
    assert result.exit_code == 2, result.output
    assert "traces.jsonl:2" in json.loads(result.stderr)["error"]
    assert cli_json("--home", ws, "sessions") == []


@pytest.mark.parametrize("command", [("run",), ("loop",), ("daemon", "--once")])
def test_an_empty_traces_path_is_a_usage_error(tmp_path: Path, command: tuple[str, ...]) -> None:
    ws = _workspace(tmp_path)
    result = cli("--home", ws, *command, "--traces", "", "--json")
    assert result.exit_code == 2, result.output
    assert "--traces" in json.loads(result.stderr)["error"]
    assert cli_json("--home", ws, "sessions") == []
