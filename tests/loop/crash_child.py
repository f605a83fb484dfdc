"""A loop run in a child process that kills itself with SIGKILL at a chosen point.

    python -m tests.loop.crash_child HOME TEACHER_URL LOOP_ID MODE

MODE:
- `after-finished`: right after the loop recorded that its first session finished;
- `mid-session`: in the middle of the second session (as it is about to apply its edit);
- `after-start`: after the second session was started (and saved) but before the loop recorded it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from distill_es.app import loop as loop_module
from distill_es.domain.loop.aggregate import Loop
from distill_es.domain.triggers import OnDemandTrigger
from tests.loop.scripted import Beat, Script, open_engine

K = 2


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    home, teacher_url, loop_id, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    script = Script([Beat(0.5)], default=Beat(0.5))
    engine = open_engine(home, teacher_url, script)
    if mode == "after-finished":
        save = loop_module._save

        def save_then_die(engine: Any, loop: Any) -> None:
            save(engine, loop)
            if loop.runs and loop.runs[-1].finished is not None:
                die()

        loop_module._save = save_then_die
    elif mode == "mid-session":
        observe = script.observe

        def observe_then_die(view: Any, step: Any) -> None:
            observe(view, step)
            if view.trigger_metadata.get("loop_iteration") == 2 and step.kind == "ApplyEdit":
                die()

        engine.on_step = observe_then_die
    elif mode == "after-start":
        record = Loop.record_session_started

        def record_or_die(self: Any, **options: Any) -> None:
            if options["iteration"] == 2:
                die()
            record(self, **options)

        Loop.record_session_started = record_or_die  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    loop_module.run_loop(engine, OnDemandTrigger(), stagnation_k=K, autonomy="auto", loop_id=loop_id)
    raise SystemExit("the loop finished without being killed")


if __name__ == "__main__":
    main()
