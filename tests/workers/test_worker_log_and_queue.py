"""Workers say what they do (one line per session claimed and finished) and `distill-es queue` shows
the queue from outside: queued, running, finished, drain rate. Real worker processes, real servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distill_es.api import Engine
from distill_es.app.worker import migrate
from distill_es.demo import world
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.cli.test_subprocess import clean_env, executable
from tests.pg import fresh_database

RESTING = {"completed", "awaiting_review", "failed"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_database("distill_es_q")


def queue_json(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [*executable(), "--store", url, "queue", "--json"], env=clean_env(), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.slow
@pytest.mark.postgres
def test_worker_log_lines_and_queue_counts(pg_url: str, tmp_path: Path) -> None:
    migrate(pg_url)
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer, latency=0.05) as student,
    ):
        homes = [
            world.create_demo_workspace(tmp_path / f"ws{i}", student_url=student.base_url) for i in range(2)
        ]
        ids = []
        for n in range(4):
            engine = Engine.open(homes[n % 2], store_url=pg_url, create_tables=False)
            ids.append(engine.start(OnDemandTrigger({"n": n})))
            engine.close()

        before = queue_json(pg_url)
        assert before["queued"] == 4 and before["running"] == 0 and before["finished_last_5_minutes"] == 0
        assert before["oldest_queued_session"] == ids[0] and before["oldest_queued_age_seconds"] >= 0

        env = {**clean_env(), "ANTHROPIC_BASE_URL": teacher.base_url, "ANTHROPIC_API_KEY": "test"}
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distill_es.worker",
                    "--store",
                    pg_url,
                    "--state-dir",
                    str(tmp_path / f"w{i}"),
                    "--poll",
                    "0.1",
                    "--exit-when-idle",
                    "20",
                    "--json",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        seen_running = 0
        deadline = time.monotonic() + 180
        while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
            now = queue_json(pg_url)
            assert (
                now["queued"] + now["running"] + now["waiting_to_resume"] + now["finished_last_5_minutes"]
                == 4
            )
            seen_running = max(seen_running, now["running"])
            time.sleep(0.2)
        outputs = [w.communicate(timeout=60) for w in workers]
        assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in outputs]
        assert seen_running >= 1, "queue never showed a session running"

        after = queue_json(pg_url)
        assert after["queued"] == 0 and after["running"] == 0 and after["waiting_to_resume"] == 0
        assert after["finished_last_5_minutes"] == 4 and after["drain_rate_per_minute"] == 0.8

    for _, err in outputs:  # under --json every stderr line is one JSON object (log records too)
        assert all(line.startswith("{") for line in err.splitlines() if line.strip()), err[-2000:]
    lines = [line for _, err in outputs for line in json_lines(err)]
    claimed = [line for line in lines if line["event"] == "claimed"]
    finished = [line for line in lines if line["event"] == "finished"]
    assert sorted(line["session_id"] for line in claimed) == sorted(ids)  # once each
    assert sorted(line["session_id"] for line in finished) == sorted(ids)
    workspaces = {str(home) for home in homes}
    for line in claimed:
        assert line["workspace"] in workspaces and line["status"] == "initiated"
        assert line["queued_seconds"] >= 0 and line["worker"].endswith(tuple(str(w.pid) for w in workers))
    for line in finished:
        assert line["outcome"] in RESTING and line["run_seconds"] > 0 and line["workspace"] in workspaces
    assert sum(line["event"] == "started" for line in lines) == 2
    assert sum(line["event"] == "stopped" for line in lines) == 2


def test_plain_worker_lines_and_queue_text_on_sqlite(tmp_path: Path) -> None:
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer) as student,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student.base_url)
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
        engine = Engine.open(home, store_url=url)
        sid = engine.start(OnDemandTrigger())
        engine.close()
        env = {**clean_env(), "ANTHROPIC_BASE_URL": teacher.base_url, "ANTHROPIC_API_KEY": "test"}
        shown = subprocess.run(
            [*executable(), "--store", url, "queue"], env=env, capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr
        assert "queued 1 (oldest" in shown.stdout and "running 0" in shown.stdout
        done = subprocess.run(
            [*executable(), "--store", url, "worker", "--state-dir", tmp_path / "w", "--exit-when-idle", "1",
             "--poll", "0.01"],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("finished 1 sessions")
    claimed = [line for line in done.stderr.splitlines() if " claimed session " in line]
    finished = [line for line in done.stderr.splitlines() if " finished session " in line]
    assert len(claimed) == 1 and f"claimed session {sid} workspace {home} (initiated, queued " in claimed[0]
    assert len(finished) == 1 and f"finished session {sid} workspace {home} " in finished[0]
    assert " after " in finished[0] and finished[0].split(f"{home} ")[1].split(" ")[0] in RESTING
    drained = subprocess.run([*executable(), "--store", url, "queue", "--json"], env=env, capture_output=True,
                             text=True)  # fmt: skip
    status = json.loads(drained.stdout)
    assert status["queued"] == 0 and status["finished_last_minute"] == 1
