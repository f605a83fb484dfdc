"""The external trainer protocol on its own: every outcome is a value with a reason code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from distill_es.adapters.trainer import (
    LOG_FILE,
    PID_FILE,
    RESULT_FILE,
    TrainerFailure,
    TrainerOk,
    run_trainer,
    stop_orphan,
    trainer_argv,
)


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "t.py"
    path.write_text(
        "import json, os, subprocess, sys, time\nfrom pathlib import Path\n" + textwrap.dedent(body)
    )
    return [sys.executable, str(path)]


def run(tmp_path: Path, body: str, **options: float) -> TrainerOk | TrainerFailure:
    spec = tmp_path / "spec.json"
    spec.write_text('{"experiment_id": "exp-1"}')
    options.setdefault("timeout_seconds", 10)
    return run_trainer(script(tmp_path, body), spec, tmp_path / "run", grace_seconds=0.5, **options)


def test_stdout_json_is_the_result_and_stderr_goes_to_the_log(tmp_path: Path) -> None:
    outcome = run(
        tmp_path,
        """
        spec = json.loads(Path(sys.argv[sys.argv.index("--spec") + 1]).read_text())
        print("step 1/3 loss 0.9", file=sys.stderr)
        print(json.dumps({"status": "dry_run", "experiment_id": spec["experiment_id"]}))
        """,
    )
    assert isinstance(outcome, TrainerOk)
    assert outcome.result == {"status": "dry_run", "experiment_id": "exp-1"}
    assert (outcome.source, outcome.exit_code) == ("stdout", 0)
    log = (tmp_path / "run" / LOG_FILE).read_text()
    assert "step 1/3 loss 0.9" in log and "--spec" in log
    assert not (tmp_path / "run" / PID_FILE).exists()


def test_result_file_is_the_fallback_when_stdout_is_empty(tmp_path: Path) -> None:
    outcome = run(
        tmp_path, 'Path(sys.argv[0]).parent.joinpath("run", "result.json").write_text(\'{"a": 1}\')'
    )
    assert isinstance(outcome, TrainerOk) and outcome.result == {"a": 1} and outcome.source == "result_file"


def test_a_stale_result_file_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RESULT_FILE).write_text('{"from": "an earlier attempt"}')
    outcome = run(tmp_path, "pass")
    assert isinstance(outcome, TrainerFailure) and outcome.reason_code == "no_result"


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ("print('starting'); sys.exit(3)", "nonzero_exit", "exited with status 3"),
        ("print('loading model...')\nprint('done')", "invalid_json", "not valid JSON"),
        ("print(json.dumps([1, 2]))", "invalid_json", "JSON list, not the result object"),
        ("pass", "no_result", "printed nothing and wrote no"),
        ("sys.stdout.write('x' * (2 * 1024 * 1024))", "output_too_large", "more than 1048576 bytes"),
        (
            "Path(sys.argv[0]).parent.joinpath('run', 'result.json').write_text('not json')",
            "invalid_json",
            "the result file",
        ),
    ],
)
def test_failures_are_values_with_reason_codes(tmp_path: Path, body: str, code: str, words: str) -> None:
    outcome = run(tmp_path, body)
    assert isinstance(outcome, TrainerFailure)
    assert outcome.reason_code == code
    assert words in outcome.message


def test_nonzero_exit_message_carries_the_log_tail(tmp_path: Path) -> None:
    outcome = run(tmp_path, "print('CUDA out of memory', file=sys.stderr); sys.exit(1)")
    assert isinstance(outcome, TrainerFailure) and outcome.exit_code == 1
    assert "CUDA out of memory" in outcome.message


def test_missing_executable_is_trainer_missing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    outcome = run_trainer([str(tmp_path / "no-such-trainer")], spec, tmp_path / "run", timeout_seconds=5)
    assert isinstance(outcome, TrainerFailure) and outcome.reason_code == "trainer_missing"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = run(
        tmp_path,
        f"""
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        Path({str(marker)!r}).write_text(str(child.pid))
        time.sleep(60)
        """,
        timeout_seconds=1.5,
    )
    assert time.monotonic() - started < 10
    assert isinstance(outcome, TrainerFailure) and outcome.reason_code == "timeout"
    assert "longer than 1.5s" in outcome.message
    child = int(marker.read_text())
    deadline = time.monotonic() + 3
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the trainer's child survived the timeout"


def wait_for_exec(pid: int) -> None:
    """Popen may return before the kernel shows the new program's argv (vfork): wait for it."""
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_stop_orphan_only_signals_a_matching_process(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    argv = trainer_argv([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "spec.json")
    orphan = subprocess.Popen(argv, start_new_session=True)
    try:
        wait_for_exec(orphan.pid)
        (folder / PID_FILE).write_text(json.dumps({"pid": orphan.pid, "argv": [*argv[:-1], "other.json"]}))
        assert stop_orphan(folder) is False  # same pid, different argv: not ours, left alone
        assert orphan.poll() is None
        (folder / PID_FILE).write_text(json.dumps({"pid": orphan.pid, "argv": argv}))
        assert stop_orphan(folder) is True
        assert orphan.wait(timeout=5) != 0
        assert not (folder / PID_FILE).exists()
    finally:
        orphan.kill()
        orphan.wait()
