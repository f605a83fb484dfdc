"""A worker imports what running a session needs before it claims one (docs/operations.md)."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, sys
from distill_es.compose import SESSION_MODULES, warm_up
before = sorted(m for m in SESSION_MODULES if m in sys.modules)
warm_up()
after = sorted(m for m in SESSION_MODULES if m in sys.modules)
handlers = [m for m in ("diagnose", "plan", "execute", "gate")
            if f"distill_es.app.activities.{m}" in sys.modules]
print(json.dumps({"before": before, "after": after, "git": "git" in sys.modules, "handlers": handlers}))
"""


def test_warm_up_imports_the_sdks_gitpython_and_the_phases_that_opening_a_worker_does_not() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert "anthropic" not in seen["before"] and "openai" not in seen["before"]
    assert {"anthropic", "openai", "distill_es.app.session_runner"} <= set(seen["after"])
    assert seen["git"]  # GitPython, through the git workspace
    assert seen["handlers"] == ["diagnose", "plan", "execute", "gate"]  # every step's handler module
