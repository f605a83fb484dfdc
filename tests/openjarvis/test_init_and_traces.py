"""OpenJarvis in one step, black-box: `init --openjarvis`, the `[traces] source` setting, `--traces`,
and an empty traces.jsonl that no longer hides a traces.db — through the CLI and the API, on the
OpenJarvis home pinned in tests/data (written by openjarvis 1.0.4 itself)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from distill_es import Engine
from distill_es.demo.run import CASSETTE
from distill_es.domain.errors import WorkspaceError
from tests.cli.conftest import cli, cli_json
from tests.data.openjarvis_home import TRACE_COUNT, copy_openjarvis_home

BENCH = {"task_id": "b1", "query": "What is 17 * 23?", "reference_answer": "391"}


def _fingerprints(folder: Path) -> dict[str, str]:
    """OpenJarvis's files (SQLite may add the `-shm` index a WAL reader needs; it holds no data)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if not p.name.endswith("-shm")}  # fmt: skip


def _trace_count(home: Path) -> int:
    engine = Engine.open(home)
    try:
        return engine.traces.count()
    finally:
        engine.close()


@pytest.fixture
def oj(tmp_path: Path) -> Path:
    return copy_openjarvis_home(tmp_path / "openjarvis")


def test_init_openjarvis_points_at_its_traces_and_imports_its_agent(tmp_path: Path, oj: Path) -> None:
    before = _fingerprints(oj)
    result = cli("init", tmp_path / "ws", "--openjarvis", oj)
    assert result.exit_code == 0, result.output
    assert f"from OpenJarvis in {oj}" in result.stdout and "[agent] system_prompt" in result.stdout
    ws = tmp_path / "ws"
    config = tomllib.loads((ws / "config.toml").read_text())
    assert config["agent"] == {
        "default": "simple",
        "simple": {"class": "simple", "tools": ["calculator", "web_search"], "max_turns": 10},
    }
    assert config["intelligence"] == {"default_model": "qwen3:8b"}
    assert config["models"] == {"qwen3:8b": {"temperature": 0.7, "max_tokens": 1024}}
    assert (ws / "agents/simple/system_prompt.md").read_text() == "You are Jarvis. Be brief.\n"
    assert json.loads((ws / "agents/simple/few_shot.json").read_text()) == []
    settings = {k: v for k, v in tomllib.loads((ws / "distill_es.toml").read_text()).items() if v}
    assert settings == {"traces": {"source": str(oj / "traces.db")},
                        "student": {"base_url": "http://localhost:11434/v1"}}  # fmt: skip
    assert not (ws / "traces.jsonl").exists()
    assert _trace_count(ws) == TRACE_COUNT
    assert cli("--home", ws, "sessions").exit_code == 0
    assert _fingerprints(oj) == before  # OpenJarvis's files are only ever read


def test_init_openjarvis_without_a_folder_uses_openjarvis_home_then_the_home_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENJARVIS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    copy_openjarvis_home(tmp_path / "user" / ".openjarvis")
    result = cli("init", tmp_path / "a", "--openjarvis")
    assert result.exit_code == 0, result.output
    assert _trace_count(tmp_path / "a") == TRACE_COUNT
    monkeypatch.setenv("OPENJARVIS_HOME", str(copy_openjarvis_home(tmp_path / "elsewhere")))
    assert cli("init", "--openjarvis", "--", tmp_path / "b").exit_code == 0
    source = tomllib.loads((tmp_path / "b" / "distill_es.toml").read_text())["traces"]["source"]
    assert source == str(tmp_path / "elsewhere" / "traces.db")


def test_init_openjarvis_refusals(tmp_path: Path, oj: Path) -> None:
    missing = cli("init", tmp_path / "ws", "--openjarvis", tmp_path / "nope")
    assert missing.exit_code == 3 and "no OpenJarvis folder" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_db = cli("init", tmp_path / "ws", "--openjarvis", empty)
    assert no_db.exit_code == 3 and "traces database not found" in no_db.output
    assert not (tmp_path / "ws").exists()  # nothing created before the folder was read
    assert cli("init", tmp_path / "ws", "--openjarvis", oj).exit_code == 0
    again = cli("init", tmp_path / "ws", "--openjarvis", oj)
    assert again.exit_code == 4 and "refusing to overwrite" in again.output


def test_init_openjarvis_with_a_minimal_config_and_a_prompt_file(tmp_path: Path) -> None:
    oj = tmp_path / "oj"
    copy_openjarvis_home(oj)
    (oj / "prompts").mkdir()
    (oj / "prompts" / "jarvis.md").write_text("Answer in French.\n")
    (oj / "config.toml").write_text(
        '[agent]\ndefault_agent = "orchestrator"\nsystem_prompt_path = "prompts/jarvis.md"\n'
        'temperature = 0.2\n[tools]\nenabled = ["shell_exec"]\n[engine]\ndefault = "vllm"\n'
        '[engine.vllm]\nhost = "http://gpu:8000/"\n[traces]\ndb_path = "~/elsewhere/traces.db"\n'
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path))
        copy_openjarvis_home(tmp_path / "elsewhere")
        result = cli("init", tmp_path / "ws", "--openjarvis", oj)
    assert result.exit_code == 0, result.output
    assert "no default_model" in result.stdout
    ws = tmp_path / "ws"
    config = tomllib.loads((ws / "config.toml").read_text())
    assert config["agent"]["orchestrator"] == {"class": "orchestrator", "tools": ["shell_exec"]}
    assert config["models"][config["intelligence"]["default_model"]] == {"temperature": 0.2}
    assert (ws / "agents/orchestrator/system_prompt.md").read_text() == "Answer in French.\n"
    settings = tomllib.loads((ws / "distill_es.toml").read_text())
    assert settings["student"] == {"base_url": "http://gpu:8000/v1"}
    assert settings["traces"] == {"source": str(tmp_path / "elsewhere" / "traces.db")}


def test_a_traces_db_dropped_into_a_new_workspace_is_read(tmp_path: Path, oj: Path) -> None:
    """The issue's first hour: `init` wrote an empty traces.jsonl, which hid traces.db ("have 0")."""
    ws = tmp_path / "ws"
    assert cli("init", ws).exit_code == 0
    assert (ws / "traces.jsonl").read_text() == ""
    shutil.copyfile(oj / "traces.db", ws / "traces.db")
    shutil.copyfile(oj / "traces.db-wal", ws / "traces.db-wal")
    assert _trace_count(ws) == TRACE_COUNT


def test_the_traces_source_setting_expands_home_and_variables(
    tmp_path: Path, oj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).exit_code == 0
    monkeypatch.setenv("HOME", str(tmp_path))
    (ws / "distill_es.toml").write_text('[traces]\nsource = "~/openjarvis/traces.db"\n')
    assert _trace_count(ws) == TRACE_COUNT
    monkeypatch.setenv("OJ_DIR", str(oj))
    engine = Engine.open(ws, settings={"traces": {"source": "$OJ_DIR"}})  # a folder holding traces.db
    try:
        assert engine.traces.count() == TRACE_COUNT
    finally:
        engine.close()
    engine = Engine.open(ws, settings={"traces": {"source": "missing.jsonl"}})  # relative to the home
    try:
        missing = re.escape(f"{ws / 'missing.jsonl'}: traces source not found")
        with pytest.raises(WorkspaceError, match=missing):
            engine.traces.count()
    finally:
        engine.close()


def test_run_traces_reads_them_instead_of_the_workspace_ones(tmp_path: Path, oj: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).exit_code == 0
    (ws / "benchmark.jsonl").write_text(json.dumps(BENCH) + "\n")
    cassette = (
        CASSETTE  # the demo's: it answers nothing this workspace asks, so the session stops at diagnose
    )
    cold = cli("--home", ws, "run", "--teacher", f"cassette:{cassette}")
    assert cold.exit_code == 1 and "have 0, need at least 20" in cold.output
    result = cli("--home", ws, "run", "--teacher", f"cassette:{cassette}", "--traces", oj / "traces.db")
    assert result.exit_code == 1
    assert "need at least 20" not in result.output and "no recorded response" in result.output
    sessions = cli_json("--home", ws, "sessions")
    newest = sessions[0] if isinstance(sessions, list) else sessions["sessions"][0]
    history = cli("--home", ws, "history", newest["id"])
    assert "diagnos" in history.stdout  # past the cold start: the 30 traces were read


def test_run_traces_that_do_not_exist_stop_before_anything_is_recorded(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("init", ws).exit_code == 0
    cassette = CASSETTE
    result = cli("--home", ws, "run", "--traces", tmp_path / "gone.db", "--teacher", f"cassette:{cassette}")
    assert result.exit_code == 3 and "traces source not found" in result.output
    assert cli_json("--home", ws, "sessions") in ([], {"sessions": []})


def test_sessions_record_the_settings_as_before_unless_a_source_is_set(tmp_path: Path) -> None:
    from distill_es.config.settings import Settings

    ws = tmp_path / "ws"
    assert cli("init", ws).exit_code == 0
    assert "traces" not in Settings.load(ws).recorded()  # stored SessionStarted settings unchanged
    chosen = Settings.load(ws, traces={"source": "~/t.jsonl"}).recorded()
    assert chosen["traces"] == {"source": "~/t.jsonl"}
