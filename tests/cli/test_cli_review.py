"""What a hostile fresh-clone review of issue 16 found in the command line, black-box: a closed pipe
ends every command quietly with 141 (128 + SIGPIPE; real pipes and processes); under --json every
non-zero exit writes exactly one JSON error object; the global flags work after the command too;
cassettes that are folders or empty and `--min-score nan` are clear usage errors before anything
is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from distill_es.cli.pipes import CLOSED_PIPE
from distill_es.demo.run import CASSETTE
from tests.cli.conftest import Demo, cli, cli_json
from tests.cli.test_conventions import command_paths, json_error
from tests.cli.test_subprocess import clean_env, executable

# --- a closed pipe ------------------------------------------------------------------------------------

PRINTING = [
    ("export", "--all"), ("sessions",), ("sessions", "--json"), ("show", "{sid}"),
    ("show", "{sid}", "--json"), ("history", "{sid}"), ("review",), ("benchmark", "show"), ("diagram",),
    ("--help",), ("run", "-h"),
]  # fmt: skip


@pytest.mark.parametrize("args", PRINTING, ids=" ".join)
def test_a_reader_that_is_gone_before_the_first_line_ends_the_command_quietly(
    shared_demo: Demo, args: tuple[str, ...]
) -> None:
    argv = [a.format(sid=shared_demo.session_id) for a in args]
    command = [*executable(), "--home", str(shared_demo.home), *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader went away before the command wrote anything
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == CLOSED_PIPE, stderr
    assert stderr == ""  # no traceback, no "Exception ignored", no "this is a bug"


def test_export_into_head_exits_141_under_pipefail(shared_demo: Demo, tmp_path: Path) -> None:
    exporter = " ".join(executable()) + f" --home {shared_demo.home} export --all"
    command = f"set -o pipefail; {exporter} | head -c 10"  # pipefail: the exporter's own exit code
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=clean_env(), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == CLOSED_PIPE, result.stderr
    assert result.stdout == '{"digest":' and result.stderr == ""


def test_a_stdout_closed_before_the_start_discards_the_output_and_keeps_the_exit_code(
    shared_demo: Demo, tmp_path: Path
) -> None:
    command = " ".join(executable()) + f" --home {shared_demo.home} sessions >&-"
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=clean_env(), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")  # the command ran to its end


@pytest.mark.parametrize("flags", [(), ("--json",), ("--debug",)], ids=["plain", "json", "debug"])
def test_an_error_whose_reader_is_gone_ends_quietly_too(shared_demo: Demo, flags: tuple[str, ...]) -> None:
    """The reader of stderr left before the error could be written: 141, as for stdout (the error's
    own code would claim it was said)."""
    command = [*executable(), "--home", str(shared_demo.home), *flags, "show", "0000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env())
    assert process.stderr is not None
    process.stderr.close()
    assert process.wait(timeout=120) == CLOSED_PIPE


@pytest.mark.parametrize("json_flag", [False, True], ids=["plain", "json"])
def test_ctrl_c_while_the_program_is_still_importing_is_130_and_one_line(json_flag: bool) -> None:
    """Ctrl-C before the command line can handle it (the program is importing typer): the same one
    line and 130 as later on, never a traceback."""
    child = (
        "import builtins, sys\n"
        "from distill_es.cli import entry\n"
        "real_import = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'typer':\n"
        "        raise KeyboardInterrupt\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "sys.argv = ['distill-es', 'sessions', *sys.argv[1:]]\n"
        "entry.main()\n"
    )
    args = ["--json"] if json_flag else []
    result = subprocess.run([sys.executable, "-c", child, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130
    if json_flag:
        assert json.loads(result.stderr) == {"error": "interrupted", "exit_code": 130}
    else:
        assert result.stderr == "error: interrupted\n"


# --- one JSON error object for every non-zero exit ----------------------------------------------------


def _one_error(result: Result, code: int) -> dict[str, Any]:
    """Exactly one JSON object on stderr with the exit code (stdout may hold the command's data)."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert error["exit_code"] == code and error["error"]
    return error


def test_benchmark_run_below_min_score_writes_the_error_object(shared_demo: Demo) -> None:
    result = cli("--home", shared_demo.home, "benchmark", "run", "--min-score", "0.99", "--json")
    error = _one_error(result, 1)
    assert "below --min-score 0.99" in error["error"]
    assert json.loads(result.stdout)["passed"] is False  # the run's data is still on stdout
    plain = cli("--home", shared_demo.home, "benchmark", "run", "--min-score", "0.99")
    assert plain.exit_code == 1 and "error: the overall score" in plain.stderr


def test_failure_paths_under_json_write_one_error_object(fresh_demo: Demo, tmp_path: Path) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    cold = tmp_path / "cold"  # a workspace without traces: its session fails at the cold start
    assert cli("init", cold).exit_code == 0
    _one_error(cli("--home", cold, "run", "--teacher", f"cassette:{CASSETTE}", "--json"), 1)
    _one_error(cli("--home", cold, "loop", "--json"), 1)
    _one_error(cli("--home", home, "resume", "ffffffff", "--json"), 3)
    _one_error(cli("--home", home, "approve", sid, "edit_999", "--by", "ann", "--json"), 3)
    _one_error(cli("--home", home, "reject", sid, "edit_999", "--by", "ann", "--reason", "r", "--json"), 3)
    _one_error(cli("--home", home, "export", "ffffffff", "--json"), 3)
    _one_error(cli("--home", home, "import", tmp_path / "missing.jsonl", "--json"), 3)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\xff\xfe not an export\n")
    assert _one_error(cli("--home", home, "import", garbage, "--json"), cli("--home", home, "import", garbage)
                      .exit_code)["error"]  # fmt: skip
    _one_error(cli("--home", cold, "doctor", "--json"), 1)
    assert cli("--home", home, "rollback", sid, "--json").exit_code == 0
    _one_error(cli("--home", home, "approve", sid, "edit_003", "--by", "ann", "--json"), 4)
    _one_error(cli("--json", "--no-such-option"), 2)  # the root's own usage errors too
    _one_error(cli("--json", "no-such-command"), 2)


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_s_usage_error_is_one_json_object(path: tuple[str, ...]) -> None:
    json_error(cli(*path, "--no-such-option", "--json"), 2)


# --- the global flags after the command ----------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_takes_the_global_flags_after_its_name(path: tuple[str, ...]) -> None:
    for flag in ("--quiet", "-q", "--verbose", "-v", "--debug"):
        result = cli(*path, flag, "-h")
        assert result.exit_code == 0, (flag, result.output)


def test_quiet_and_verbose_after_the_command_work(tmp_path: Path) -> None:
    quiet = cli("demo", "--home", tmp_path / "a", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output
    verbose = cli("demo", "--home", tmp_path / "b", "-v")
    assert verbose.exit_code == 0 and "gating edit edit_002" in verbose.stderr
    both = cli("sessions", "--home", tmp_path / "a", "--quiet", "--verbose")
    assert both.exit_code == 2 and "choose one of --quiet and --verbose" in both.output
    mixed = cli("--quiet", "sessions", "--home", tmp_path / "a", "-v")
    assert mixed.exit_code == 2


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    (home / "distill_es.toml").write_text("[session\n")
    plain = cli("--home", home, "run")
    debug = cli("--home", home, "run", "--debug")
    assert plain.exit_code == debug.exit_code == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr


# --- cassettes and --min-score ------------------------------------------------------------------------


def test_a_cassette_that_is_a_folder_is_said_to_be_one(tmp_path: Path) -> None:
    error = json_error(cli("--home", tmp_path, "run", "--teacher", f"cassette:{tmp_path}", "--json"), 2)
    assert "is a directory" in error["error"] and "does not exist" not in error["error"]
    record = json_error(cli("--home", tmp_path, "run", "--record-cassette", tmp_path, "--json"), 2)
    assert "is a directory" in record["error"]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xff\xfe\n"], ids=["empty", "blank", "not utf-8"])
def test_a_cassette_that_cannot_answer_is_refused_before_a_session_is_recorded(
    tmp_path: Path, content: bytes
) -> None:
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    cassette = tmp_path / "c.jsonl"
    cassette.write_bytes(content)
    result = cli("--home", home, "run", "--teacher", f"cassette:{cassette}", "--json")
    error = json_error(result, 2)
    assert str(cassette) in error["error"]
    assert cli_json("--home", home, "sessions") == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.1", "1.5"])
def test_min_score_must_be_a_number_from_0_to_1(shared_demo: Demo, value: str) -> None:
    result = cli("--home", shared_demo.home, "benchmark", "run", "--min-score", value, "--json")
    error = json_error(result, 2)
    assert "must be a number from 0 to 1" in error["error"]


def test_ctrl_c_in_any_command_is_130_and_one_json_object(
    shared_demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distill_es.api import Engine

    def interrupted(self: Engine, *args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "pending_reviews", interrupted)
    assert json_error(cli("--home", shared_demo.home, "review", "--json"), 130)["error"] == "interrupted"
    plain = cli("--home", shared_demo.home, "review")
    assert plain.exit_code == 130 and "interrupted" in plain.stderr and "Traceback" not in plain.stderr


def test_json_before_the_command_is_the_command_s_json(shared_demo: Demo) -> None:
    home = str(shared_demo.home)
    before = cli("--json", "--home", home, "sessions")
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout) == cli_json("--home", home, "sessions")
    json_error(cli("--home", home, "--json", "show", "ffffffff"), 3)
