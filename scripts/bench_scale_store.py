"""Issue 15 item 4: read commands on a store of 10,000 sessions (called by scripts/bench.py --only scale).

    python scripts/bench.py --only scale           # in the one table with every other figure
    python scripts/bench_scale_store.py [--sessions 10000] [--no-postgres]

The store is built fast, without running 10,000 sessions: two sessions are recorded for real on a demo
workspace (the shipped cassette, the demo student): one run to `completed` (autonomy auto), one left
`awaiting_review` (tiered). Their stored events are then copied through the recorder, each copy under a
new session id with its digest chain recomputed for that id (so every copy verifies), its start moved
one second apart, and its workspace the measured one; one copy in 100 is of the awaiting_review session.
The index is caught up once (a warm index, as any store that has been read before), then each command
runs as a fresh `distill-es` process: wall time (min of the repetitions) and peak RSS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lib import (
    Figure,
    child_env,
    compiled_like_an_install,
    median,
    peak_rss_of,
    pg_database,
    pg_reachable,
    read_libraries,
)

DISTILL_ES = str(Path(sys.executable).parent / "distill-es")
Fig = Callable[..., Figure]


def recorded_sessions(tmp: Path) -> tuple[Path, list[str]]:
    """A demo workspace with one completed and one awaiting_review session; their ids."""
    from distill_es.demo import world
    from distill_es.demo.run import open_demo_engine
    from distill_es.domain.triggers import OnDemandTrigger

    home = world.create_demo_workspace(tmp / "scale_source")
    ids = []
    for autonomy in ("auto", "tiered"):
        engine = open_demo_engine(home)
        try:
            sid = engine.start(OnDemandTrigger({"source": "bench scale"}), autonomy=autonomy)
            ids.append(engine.run(sid).id)
        finally:
            engine.close()
    return home, ids


def copies(source: Any, sid: str, workspace: str) -> Callable[[int], list[Any]]:
    """A maker of copies of session `sid`: `make(n)` is its stored events under a new id, started `n`
    seconds after the original, its digests chained afresh from the new id's genesis."""
    from eventsourcing.persistence import StoredEvent

    from distill_es.domain import chain

    rows = source.stored_events(sid)
    states = [source.decode_state(r) for r in rows]
    previous = chain.genesis_digest(sid)  # the method, checked on the original: it must give its digests
    for row, state in zip(rows, states, strict=True):
        payload = {k: v for k, v in state.items() if k not in chain.ENVELOPE_KEYS}
        previous = chain.chain_digest(
            previous, row.topic, row.originator_version, state["timestamp"], payload
        )
        if previous != state["digest"]:
            raise RuntimeError(f"cannot recompute the digest of {row.topic} v{row.originator_version}")

    def make(n: int) -> list[Any]:
        new_id = uuid.uuid4()
        previous = chain.genesis_digest(str(new_id))
        out = []
        for row, original in zip(rows, states, strict=True):
            state = dict(original, timestamp=original["timestamp"] + timedelta(seconds=n))
            if row.originator_version == 1:
                state["workspace"] = workspace
            payload = {k: v for k, v in state.items() if k not in chain.ENVELOPE_KEYS}
            previous = chain.chain_digest(
                previous, row.topic, row.originator_version, state["timestamp"], payload
            )
            state["digest"] = previous
            out.append(StoredEvent(new_id, row.originator_version, row.topic, source.encode_state(state)))
        return out

    return make


def build_store(url: str, home: Path, sessions: int, source_home: Path, ids: list[str]) -> int:
    """`sessions` copies into the store at `url`, 100 sessions a transaction; returns the events written."""
    from distill_es.store.app import EventStore
    from distill_es.store.urls import default_store_url

    source = EventStore(default_store_url(source_home), snapshot_every=None)
    target = EventStore(url, snapshot_every=None)
    try:
        completed, awaiting = (copies(source, sid, str(home)) for sid in ids)
        written, batch = 0, []
        for n in range(sessions):
            batch += (awaiting if n % 100 == 99 else completed)(n)
            if len(batch) >= 5000 or n == sessions - 1:
                target.app.recorder.insert_events(batch)
                written += len(batch)
                batch = []
        return written
    finally:
        source.close()
        target.close()


def measure(fig: Fig, backend: str, url: str, home: Path, sessions: int, events: int, repeat: int) -> None:
    env = child_env()
    base = [DISTILL_ES, "--home", str(home), "--store", url]
    started = time.perf_counter()
    first = subprocess.run(
        [*base, "sessions", "--json", "--limit", "1"], env=env, capture_output=True, check=False
    )
    catch_up = time.perf_counter() - started
    if first.returncode != 0:
        raise RuntimeError(f"sessions failed on the {backend} store: {first.stderr.decode()[-500:]}")
    newest = json.loads(first.stdout)[0]["id"]
    fig("15.4", "scale.index_catch_up_s", f"first read of the {sessions:,}-session store: index catch-up",
        round(catch_up, 1), "s", backend=backend, ratio=events / catch_up,
        note=f"{events:,} events; ratio is events/s; once per store (the index is persisted)")  # fmt: skip
    # The libraries every read on this backend imports, alone: the floor under the 300 ms (PostgreSQL's
    # driver, psycopg, is most of the difference between the backends).
    store_module = "eventsourcing.postgres" if backend == "postgres" else "eventsourcing.sqlite"
    libraries = read_libraries(store_module)
    floor = min(peak_rss_of([sys.executable, "-c", libraries], env=env)["wall_s"] for _ in range(repeat))
    floor *= 1e3
    fig("15.4", "scale.read_libraries_ms", f"libraries under every read, imported alone (min of {repeat})",
        round(floor, 1), "ms", backend=backend,
        note=f"typer + its pydantic adapters + {store_module}: the floor under the 300 ms")  # fmt: skip
    commands = {
        "sessions_json": ["sessions", "--json"],
        "sessions": ["sessions"],
        "review": ["review", "--json"],
        "show": ["show", newest, "--json"],
        "show_prefix": ["show", newest[:8], "--json"],
    }
    for name, args in commands.items():
        runs = [peak_rss_of([*base, *args], env=env) for _ in range(repeat)]
        if any(r["rc"] != 0 for r in runs):
            raise RuntimeError(f"{' '.join(args)} failed: {runs[0]['stderr'][-500:]}")
        ms, mb = min(r["wall_s"] for r in runs) * 1e3, max(r["maxrss_kib"] for r in runs) / 1024
        shown = " ".join("SID" if a == newest else a for a in args)
        fig("15.4", f"scale.{name}_ms", f"`distill-es {shown}`, {sessions:,} sessions (min of {repeat})",
            round(ms, 1), "ms", backend=backend, target="< 300 ms, RSS < 150 MB", ok=ms < 300 and mb < 150,
            note=f"median {median([r['wall_s'] for r in runs]) * 1e3:.0f} ms; peak RSS {mb:.0f} MB; "
            f"{ms - floor:.0f} ms beyond the libraries' floor",
        )  # fmt: skip
    result = peak_rss_of([*base, "verify", "--json"], env=env, timeout=3600)
    mb = result["maxrss_kib"] / 1024
    rate = events / result["wall_s"]
    fig("15.4", "scale.verify_events_per_s", f"`distill-es verify`, {sessions:,} sessions, {events:,} events",
        round(rate), "ev/s", backend=backend, target="RSS < 200 MB", ok=mb < 200 and result["rc"] == 0,
        note=f"{result['wall_s']:.1f} s; peak RSS {mb:.0f} MB; exit {result['rc']}")  # fmt: skip


def run(fig: Fig, tmp: Path, repeat: int, sessions: int, postgres: bool) -> None:
    from distill_es.workspace.scaffold import create_workspace

    compiled_like_an_install()  # timed commands are fresh processes: as an installed package
    source_home, ids = recorded_sessions(tmp)
    home = create_workspace(tmp / "scale_ws")
    url = f"sqlite:///{home / '.distill_es' / 'scale.sqlite'}"
    (home / ".distill_es").mkdir(exist_ok=True)
    started = time.perf_counter()
    events = build_store(url, home, sessions, source_home, ids)
    fig("15.4", "scale.build_s", f"building the {sessions:,}-session store (copies through the recorder)",
        round(time.perf_counter() - started, 1), "s", backend="sqlite",
        note=f"{events:,} events, {events / sessions:.0f} per session")  # fmt: skip
    measure(fig, "sqlite", url, home, sessions, events, repeat)
    if postgres:
        with pg_database("distill_es_scale") as pg_url:
            build_store(pg_url, home, sessions, source_home, ids)
            measure(fig, "postgres", pg_url, home, sessions, events, repeat)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    postgres = not args.no_postgres and pg_reachable() is None
    figures: list[Figure] = []

    def fig(item: str, key: str, label: str, value: Any, unit: str = "", **fields: Any) -> Figure:
        figures.append(Figure(item, key, label, value, unit, **fields))
        return figures[-1]

    tmp = Path(tempfile.mkdtemp(prefix="distill_es_scale_"))
    try:
        run(fig, tmp, args.repeat, args.sessions, postgres)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in figures:
        ratio = f" ({f.ratio:,.2f}×)" if f.ratio is not None else ""
        head = f"{f.verdict():5} {f.backend:8} {f.label}: {f.value} {f.unit}{ratio}"
        print(f"{head}  target {f.target or '-'}  | {f.note}")
    print(f"load average {os.getloadavg()[0]:.2f}: take final figures on an idle machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
