"""Wiring of the default adapters (filled in by the engine split).

`open_runner` is the opener workers are handed (`distill_es.app.worker.work(open_runner=...)`):
the worker layer depends on the `SessionRunner` protocol, and only this module knows it is the Engine.
"""

from __future__ import annotations

from pathlib import Path

from distill_es.app.engine import Engine


def open_runner(home: Path, store_url: str) -> Engine:
    """The engine on a session's workspace and the shared store, creating no tables (workers start
    after `--migrate`, so several starting at once never race on DDL)."""
    return Engine.open(home, store_url=store_url, create_tables=False)
