"""The worker's two command lines, `distill-es worker` and `python -m distill_es.worker`, run the same
code (cli/worker.run_worker) and keep their documented flags and output (docs/operations.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import cli
from tests.cli.test_subprocess import clean_env

SUMMARY = "finished 0 sessions, 0 interrupted, 0 backed off after outside failures\n"


def module_worker(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "distill_es.worker", *map(str, args)],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_python_m_worker_migrates_runs_and_prints_its_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    result = module_worker(
        "--store", url, "--state-dir", tmp_path / "w1", "--migrate", "--exit-when-idle", 1, "--poll", 0.01,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == SUMMARY
    assert (tmp_path / "shared.sqlite").is_file() and (tmp_path / "w1").is_dir()


def test_python_m_worker_keeps_its_argparse_flags(tmp_path: Path) -> None:
    shown = module_worker("--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.startswith("usage: python -m distill_es.worker")
    for flag in ("--store", "--state-dir", "--poll", "--exit-when-idle", "--migrate", "--backoff"):
        assert flag in shown.stdout
    missing = module_worker("--state-dir", tmp_path / "w", cwd=tmp_path)
    assert missing.returncode == 2 and "--store" in missing.stderr


def test_distill_es_worker_prints_the_same_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    result = cli(
        "--store", url, "worker", "--state-dir", tmp_path / "w", "--migrate", "--exit-when-idle", 1,
        "--poll", 0.01,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == SUMMARY


def test_distill_es_worker_needs_a_shared_store(tmp_path: Path) -> None:
    result = cli("worker", "--state-dir", tmp_path / "w", "--exit-when-idle", 1)
    assert result.exit_code == 2
    assert "a worker needs a shared store" in result.stderr


def test_importing_distill_es_worker_gives_the_workers_module() -> None:
    import distill_es.worker
    from distill_es.app import worker

    assert distill_es.worker is worker and callable(worker.migrate)


BAD_WORKER_OPTIONS = [
    ("--poll", "nan"), ("--poll", "-1"), ("--poll", "1e309"), ("--poll", "inf"), ("--poll", "1_0"),
    ("--poll", "999999"), ("--backoff", "nan"), ("--backoff", "-0.5"), ("--exit-when-idle", "-1"),
    ("--exit-when-idle", "1.5"), ("--exit-when-idle", "1_0"),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "value"), BAD_WORKER_OPTIONS)
def test_a_bad_worker_option_is_a_usage_error_before_the_store_is_opened(
    tmp_path: Path, flag: str, value: str
) -> None:
    db = tmp_path / "shared.sqlite"
    result = cli(
        "--json", "--store", f"sqlite:///{db}", "worker", "--state-dir", tmp_path / "w", "--migrate",
        flag, value,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    error = json.loads(result.stderr)
    assert error["exit_code"] == 2 and flag in error["error"] and "bug" not in error["error"]
    assert not db.exists()  # nothing opened, created or recorded


@pytest.mark.parametrize(("flag", "value"), BAD_WORKER_OPTIONS)
def test_python_m_worker_refuses_the_same_options(tmp_path: Path, flag: str, value: str) -> None:
    db = tmp_path / "shared.sqlite"
    result = module_worker(
        "--store", f"sqlite:///{db}", "--state-dir", tmp_path / "w", "--migrate", flag, value, cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"argument {flag}" in result.stderr and "Traceback" not in result.stderr
    assert not db.exists()


def test_an_unusable_state_dir_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for state_dir in (blocker, blocker / "below"):
        result = cli("--json", "--store", f"sqlite:///{db}", "worker", "--state-dir", state_dir, "--migrate")
        assert result.exit_code == 2, result.output
        assert str(state_dir) in json.loads(result.stderr)["error"]
        module = module_worker(
            "--store", f"sqlite:///{db}", "--state-dir", state_dir, "--migrate", cwd=tmp_path
        )
        assert module.returncode == 2 and str(state_dir) in module.stderr
    assert not db.exists()
