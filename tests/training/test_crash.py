"""A driver killed while its trainer runs: the next `drive` stops the orphan and trains again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from distill_es.adapters.trainer import PID_FILE
from distill_es.app.training.dataset import run_dir

from .conftest import GOOD_RESULT, LORA_EDIT_ID, World

CHILD = Path(__file__).with_name("drive_child.py")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(predicate, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def hanging_first_attempt(world: World) -> tuple[list[str], Path, Path]:
    """A trainer whose first attempt hangs (after noting its pid) and whose later attempts succeed."""
    first_pid = world.tmp / "first.pid"
    count = world.tmp / "attempts"
    trainer = world.trainer(
        f"""
        n = len(Path({str(count)!r}).read_text()) if Path({str(count)!r}).exists() else 0
        Path({str(count)!r}).write_text("x" * (n + 1))
        if n == 0:  # the first attempt hangs until someone stops it
            Path({str(first_pid)!r}).write_text(str(os.getpid()))
            time.sleep(60)
        {GOOD_RESULT}
        """
    )
    return trainer, first_pid, count


def start_driver(world: World, run_id: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), world.store.url, str(world.home), run_id],
        env=env,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_of_the_driver_mid_training_is_resumed(world: World) -> None:
    trainer, first_pid, count = hanging_first_attempt(world)
    session = world.session()
    service = world.service(trainer, timeout=120)
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit, baseline_score=0.5)
    driver = start_driver(world, run_id)
    try:
        assert wait_for(first_pid.exists), "the first trainer attempt never started"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        driver.kill()
    orphan = int(first_pid.read_text())
    assert alive(orphan)  # its own process group: the driver's death did not take it along
    assert (run_dir(world.home, run_id) / PID_FILE).exists()
    assert service.get(run_id).state == "running"

    view = service.drive(run_id)

    assert (view.state, view.attempts, view.deployable) == ("completed", 2, True)
    assert wait_for(lambda: not alive(orphan), 5), "the orphaned trainer was not stopped"
    assert count.read_text() == "xx"
    assert [a["outcome"] for a in service.lineage(run_id).attempts] == ["interrupted", "completed"]


def test_an_interrupted_driver_stops_its_trainer(world: World) -> None:
    trainer, first_pid, count = hanging_first_attempt(world)
    session = world.session()
    service = world.service(trainer, timeout=120)
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit, baseline_score=0.5)
    driver = start_driver(world, run_id)
    try:
        assert wait_for(first_pid.exists), "the first trainer attempt never started"
        driver.send_signal(signal.SIGINT)  # Ctrl-C
        assert driver.wait(timeout=20) != 0
    finally:
        driver.kill()
    assert wait_for(lambda: not alive(int(first_pid.read_text())), 5), "Ctrl-C left the trainer running"
    assert not (run_dir(world.home, run_id) / PID_FILE).exists()
    assert service.get(run_id).state == "running"  # no result was recorded: the next drive trains again
    view = service.drive(run_id)
    assert (view.state, view.attempts) == ("completed", 2)
    assert count.read_text() == "xx"
