"""Real `distill-es` processes started at the same moment: each imports the CLI, says it is ready, and
waits for one "go" file, so they reach the store together (what a cron burst, a fleet of workers or a
CI matrix does). Used by tests/queue/test_pg_startup.py and scripts/bench_pg_startup.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The child: everything `distill-es` imports at start-up, then the barrier, then the command itself.
LAUNCHER = """
import sys, time
from pathlib import Path
import distill_es.cli.main  # what the program imports at start-up
from distill_es.cli.entry import main  # the program's own entry: it pauses the collector as installed
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.002)
sys.argv = ["distill-es", *sys.argv[3:]]
main()
"""


@dataclass(frozen=True)
class Outcome:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and "this is a bug" not in self.stderr


@dataclass(frozen=True)
class Race:
    outcomes: list[Outcome]
    seconds: float  # from "go" until the last process exited

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def start_together(
    commands: list[list[str]], folder: Path, *, env: dict[str, str] | None = None, timeout: float = 300
) -> Race:
    """Run each of `commands` (arguments after `distill-es`) in its own process, all released at once."""
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    readies = [folder / f"ready-{i}" for i in range(len(commands))]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(ready), str(go), *command],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready, command in zip(readies, commands, strict=True)
    ]
    try:
        deadline = time.monotonic() + timeout
        while not all(ready.exists() for ready in readies):
            dead = [c for c in children if c.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"a racer died before the start: {dead[0].communicate()[1][-2000:]}"
                                   if dead else "the racers did not get ready in time")  # fmt: skip
            time.sleep(0.01)
        started = time.monotonic()
        go.touch()
        outcomes = []
        for child, command in zip(children, commands, strict=True):
            out, err = child.communicate(timeout=timeout)
            outcomes.append(Outcome(tuple(command), child.returncode, out, err))
        return Race(outcomes, time.monotonic() - started)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
