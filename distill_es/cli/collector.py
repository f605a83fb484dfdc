"""CPython's cycle collector in the `distill-es` process (issue 15 item 3, docs/performance.md).

A command imports typer, pydantic, eventsourcing and its own modules: tens of thousands of objects
(~57,000 by the time `sessions --json` is looked up) that live until the process exits. The collector
rescans them at every older-generation collection: measured on `show --json`, 15–20 ms of collections
on SQLite and 40–60 ms on PostgreSQL (psycopg's pool threads allocate enough to trigger a full one), a
fifth of a read command. So the program pauses the collector from its first line (`cli/entry.py`)
until the command it runs has been looked up, then freezes what is alive (`gc.freeze`: never scanned
again, as a forking server does) and collects as usual from there; opening the engine freezes once
more, after its modules are imported. A worker, daemon or web UI collects what it allocates while it
runs, as before. What was frozen is never freed by the collector: objects alive at those two moments
and later dropped inside a reference cycle stay until exit, a bounded amount.

Only the `distill-es` program pauses: a process that imports the command line (tests, an embedding
application) keeps its collector as it set it, and `settle` then does nothing.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Stop collecting until `settle` (the program's first line, before its imports)."""
    global _paused
    gc.disable()
    _paused = True


def settle() -> None:
    """Everything alive now lives until the command ends: freeze it, and collect again from here."""
    if _paused:
        gc.freeze()
        gc.enable()
