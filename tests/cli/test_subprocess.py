"""The real `distill-es` executable: in this environment, and installed into a fresh virtualenv."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from distill_es.demo import world
from tests.cli.conftest import ENV_VARS

ROOT = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def assert_fresh_python(*lines: str) -> None:
    """Run `lines` in a fresh interpreter (whose imports and collector no test has touched): every
    assert in them must hold."""
    code = "\n".join([*lines, "print('ok')"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "ok", run.stderr


def executable() -> list[str]:
    """The installed console script next to this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "distill-es"
    found = str(beside) if beside.exists() else shutil.which("distill-es")
    assert found, "the distill-es console script is not installed (pip install -e .)"
    return [found]


def run(command: list[str], *args: Any, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )


def test_demo_then_json_reads_in_a_real_process(tmp_path: Path) -> None:
    command, home = executable(), tmp_path / "demo"
    demo = run(command, "demo", "--home", home, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert world.DEMO_STUDENT_LABEL in demo.stdout
    session_id = re.search(r"session ([0-9a-f-]{36})", demo.stdout).group(1)  # type: ignore[union-attr]

    def read(*args: Any) -> Any:
        result = run(command, "--home", home, *args, "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    # Each process pays the engine's import time, so only a few reads here; the runner tests do the rest.
    sessions = read("sessions")
    assert [(v["id"], v["status"]) for v in sessions] == [(session_id, "awaiting_review")]
    assert read("review")[0]["edit_id"] == "edit_003"

    missing = run(command, "--home", home, "show", "ffffffff", cwd=tmp_path)
    assert missing.returncode == 3 and missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_fresh_virtualenv_install_runs_the_demo(tmp_path: Path) -> None:
    """`pip install <repo>` into a new virtualenv, then `distill-es demo` there, offline."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], cwd=tmp_path, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr

    where = run([str(python), "-c", "import distill_es; print(distill_es.__file__)"], cwd=tmp_path)
    assert str(venv) in where.stdout  # the installed copy, not the repository's source

    demo = run([str(venv / "bin" / "distill-es")], "demo", "--home", tmp_path / "demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert world.DEMO_STUDENT_LABEL in demo.stdout
    assert "pending_review" in demo.stdout and "Revert edit edit_002" in demo.stdout
