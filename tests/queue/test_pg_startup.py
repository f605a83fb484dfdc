"""Race-free start-up on PostgreSQL: eight real `distill-es` processes released at the same moment
against a store whose tables do not exist yet all succeed (only the first to hold the DDL advisory
lock creates the tables), three times over, on fresh databases."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from distill_es.demo import world
from distill_es.store.app import EventStore
from distill_es.testing.startup_race import start_together
from tests.pg import fresh_database

TRIES, PROCESSES, WORKSPACES = 3, 8, 4  # the 20-try figure is scripts/bench.py --only startup


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_cli_processes_started_together_on_a_fresh_store_never_collide(tmp_path: Path) -> None:
    for attempt in range(TRIES):
        for url in fresh_database("distill_es_start"):
            homes = [
                world.create_demo_workspace(tmp_path / f"try{attempt}" / f"ws{i}") for i in range(WORKSPACES)
            ]
            # Two enqueues per workspace: they take turns on the workspace lock, not on the catalog.
            commands = [
                ["--home", str(homes[i % WORKSPACES]), "--store", url, "enqueue"] for i in range(PROCESSES)
            ]
            race = start_together(commands, tmp_path / f"race{attempt}", env={"DISTILL_ES_STORE": ""})

            assert race.failures == [], [(o.returncode, o.stderr[-800:]) for o in race.failures]
            ids = [UUID(o.stdout.strip()) for o in race.outcomes]
            store = EventStore(url, create_tables=False)
            try:
                assert sorted(store.iter_session_ids()) == sorted(ids)
            finally:
                store.close()
