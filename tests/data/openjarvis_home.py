"""The pinned OpenJarvis home (`tests/data/openjarvis/`, written by openjarvis 1.0.4's own store and
config generator: scripts/make_openjarvis_traces.py), copied before use so reading it never leaves a
`-shm` file in the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

PINNED = Path(__file__).with_name("openjarvis")
PINNED_FILES = ("traces.db", "traces.db-wal", "config.toml")
TRACE_COUNT = 30  # 5 of them only in traces.db-wal


def copy_openjarvis_home(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in PINNED_FILES:
        shutil.copyfile(PINNED / name, target / name)
    return target
