"""The `distill-es` program pauses CPython's cycle collector while it imports, then freezes what is
alive and collects again (cli/collector.py); a process that merely imports the command line keeps its
collector as it was. Behaviour only: the time it saves is scripts/bench_cold.py's to measure."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from distill_es.cli import collector
from tests.cli.conftest import Demo
from tests.cli.test_subprocess import assert_fresh_python, clean_env

# Runs the program as its console script does, then reports the collector's state at exit.
PROGRAM = """
import atexit, gc, json, sys
atexit.register(lambda: sys.stderr.write("\\nGC " + json.dumps([gc.isenabled(), gc.get_freeze_count()])))
from distill_es.cli.entry import main
sys.argv = ["distill-es", *sys.argv[1:]]
main()
"""


def program_gc(*args: str) -> tuple[int, bool, int]:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, env=clean_env(), timeout=120
    )
    enabled, frozen = json.loads(run.stderr.rpartition("\nGC ")[2])
    return run.returncode, enabled, frozen


def test_a_command_collects_again_once_its_modules_are_imported(shared_demo: Demo) -> None:
    code, enabled, frozen = program_gc("--home", str(shared_demo.home), "sessions", "--json")
    assert code == 0
    assert enabled, "a command must run with the collector on (a worker or the web UI runs for days)"
    assert frozen > 10_000, "the modules imported before the command ran are frozen"


def test_the_program_pauses_the_collector_before_its_imports() -> None:
    assert_fresh_python(
        "import gc, sys",
        "from distill_es.cli import collector",
        "collector.pause()",
        "assert not gc.isenabled() and 'typer' not in sys.modules",
        "collector.settle()",
        "assert gc.isenabled() and gc.get_freeze_count() > 0",
    )


def test_importing_the_command_line_leaves_the_collector_alone() -> None:
    """Tests and embedding applications import cli/main.py without the program's first line."""
    frozen = gc.get_freeze_count()
    collector.settle()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
