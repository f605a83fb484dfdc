"""Issue 18 item 3: eight `distill-es` processes released at the same moment on one fresh PostgreSQL
store (its tables not created yet), repeated: how many failed (target 0 in 20 tries), and how long a
burst takes beside one process alone.

Each try: a new database, four demo workspaces, two `enqueue` commands per workspace (they take turns
on the workspace lock; the store's tables are created by whichever first holds the DDL advisory lock).
Run alone with `python scripts/bench.py --only startup`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench_lib import median, pg_database

from distill_es.demo import world
from distill_es.testing.startup_race import Race, start_together

PROCESSES, WORKSPACES = 8, 4


def one_try(folder: Path, processes: int) -> Race:
    with pg_database("distill_es_bench_start") as url:
        homes = [world.create_demo_workspace(folder / f"ws{i}") for i in range(WORKSPACES)]
        commands = [["--home", str(homes[i % WORKSPACES]), "--store", url, "enqueue"]
                    for i in range(processes)]  # fmt: skip
        return start_together(commands, folder / "race", env={"DISTILL_ES_STORE": ""})


def pg_startup(bench: Any, tries: int) -> None:
    """Figures for `bench` (scripts/bench.py's Bench): failures in `tries` bursts, burst and solo times."""
    failures, bursts, solos, first_error = 0, [], [], ""
    for attempt in range(tries):
        race = one_try(bench.tmp / f"startup{attempt}", PROCESSES)
        failures += len(race.failures)
        bursts.append(race.seconds)
        if race.failures and not first_error:
            first_error = race.failures[0].stderr.strip().splitlines()[0][:200]
        bench.log(f"  try {attempt + 1}/{tries}: {len(race.failures)} failed, {race.seconds:.1f} s")
        shutil.rmtree(bench.tmp / f"startup{attempt}", ignore_errors=True)
    for attempt in range(min(3, tries)):  # one process alone, same start line: the burst's yardstick
        solos.append(one_try(bench.tmp / f"solo{attempt}", 1).seconds)
        shutil.rmtree(bench.tmp / f"solo{attempt}", ignore_errors=True)
    burst, solo = median(bursts), median(solos)
    label = f"{PROCESSES} CLI processes started at once on a fresh store: failed runs"
    what = f"{tries} tries × {PROCESSES} `enqueue` on {WORKSPACES} workspaces"
    bench.fig(
        "18.3", "startup.failures", label, failures, f"of {tries * PROCESSES}", backend="postgres",
        target=f"0 in {tries} tries", ok=failures == 0, note=first_error or what,
    )  # fmt: skip
    bench.fig(
        "18.3", "startup.burst_s", f"{PROCESSES} processes at once: go to last exit (median)",
        round(burst, 2), "s", backend="postgres", ratio=round(burst / solo, 2) if solo else None,
        samples=bursts, note=f"ratio: ÷ one process alone ({solo:.2f} s); 2 per workspace share its lock",
    )  # fmt: skip
