"""A session run in a child process that kills itself with SIGKILL at a chosen point.

    python -m tests.engine.crash_child HOME TEACHER_URL after-event K
    python -m tests.engine.crash_child HOME TEACHER_URL during KIND     # teacher|student|write|commit

`after-event K`: right after the save that commits the K-th event of this process.
`during KIND`: in the middle of the first side effect of that kind, after the outside world changed
and before its result is recorded (a teacher response received, a student batch scored, a file
written but not committed, a commit made but not recorded).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anthropic

from distill_es.api import Engine
from distill_es.demo.world import DemoStudent
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.app import EventStore
from distill_es.workspace import appliers, git_workspace


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_events(k: int) -> None:
    original = EventStore.save
    committed = 0

    def save(self: EventStore, session: Any) -> int:
        nonlocal committed
        batch = len(session.pending_events)
        result = original(self, session)
        committed += batch
        if committed >= k:
            die()
        return result

    EventStore.save = save  # type: ignore[method-assign]


def kill_during(kind: str, engine: Engine) -> None:
    if kind == "teacher":
        create = engine.teacher.messages.create

        def teacher_create(**params: Any) -> Any:
            create(**params)
            die()

        engine.teacher.messages.create = teacher_create
    elif kind == "student":
        score = engine.scorer.score

        def scorer_score(tasks: Any) -> Any:
            score(tasks)
            die()

        engine.scorer.score = scorer_score  # type: ignore[method-assign]
    elif kind == "write":
        write = appliers.atomic_write_text

        def atomic_write_text(path: Path, text: str) -> None:
            write(path, text)
            die()

        appliers.atomic_write_text = atomic_write_text
    elif kind == "commit":
        commit = git_workspace.GitWorkspace._commit

        def _commit(self: Any, message: str, **options: Any) -> None:
            commit(self, message, **options)
            die()

        git_workspace.GitWorkspace._commit = _commit  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown side effect {kind!r}")


def main() -> None:
    home, teacher_url, mode, arg = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    teacher = anthropic.Anthropic(base_url=teacher_url, api_key="test", max_retries=0)
    engine = Engine.open(home, teacher=teacher, student=DemoStudent(home))
    if mode == "after-event":
        kill_after_events(int(arg))
    else:
        kill_during(arg, engine)
    sessions = engine.sessions()
    sid = sessions[0].id if sessions else engine.start(OnDemandTrigger())
    engine.run(sid)


if __name__ == "__main__":
    main()
