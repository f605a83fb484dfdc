"""Issue 15 item 2: store write transactions per session ÷ steps (target ≤ 1.0), SQLite and PostgreSQL.

    python scripts/bench.py --only writes [--no-postgres] [--repeat N]

One scripted demo-world session (real HTTP teacher and student, real git) per repetition. Write
transactions are counted by wrapping the store's recorders' `insert_events` (one call is one
transaction on both backends: `distill_es.testing.store_writes`); on SQLite the COMMITs SQLite itself
executes are counted too (`sqlite3` trace callback), per database file, as a cross-check — that count
also shows the session index's own transactions (its SQLite file beside the store). A baseline run of
the same session with every step saved on its own (no `READS_ONLY` steps) is printed beside it.
With SQLite, what is now built once per process (the plan prompt's schemas, price lookups) is timed
cached and built every call, side by side.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import timeit
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
from bench_lib import median, nodelay

from distill_es.adapters import pricing
from distill_es.api import Engine
from distill_es.app import activities
from distill_es.demo import world
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.phases import plan_request
from distill_es.store.app import EventStore
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from distill_es.testing.store_writes import counting_writes

ITEMS = ["15.2"]  # this module's rows in the results table (bench.ITEM_ORDER)
TeacherServer = nodelay(ScriptedAnthropicServer)
StudentServer = nodelay(ScriptedStudentServer)


@contextlib.contextmanager
def sqlite_commits() -> Iterator[Counter[str]]:
    """COMMIT statements SQLite executes on connections opened inside the block, by file name."""
    commits: Counter[str] = Counter()
    connect = sqlite3.connect

    def traced(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(database, *args, **kwargs)
        name = Path(str(database)).name

        def trace(statement: str) -> None:
            if statement.lstrip().upper().startswith(("COMMIT", "END")):
                commits[name] += 1

        connection.set_trace_callback(trace)
        return connection

    sqlite3.connect = traced  # type: ignore[assignment]
    try:
        yield commits
    finally:
        sqlite3.connect = connect  # type: ignore[assignment]


@contextlib.contextmanager
def every_step_saved() -> Iterator[None]:
    """The engine as it was before issue 15: one save per step, the reads-only ones included."""
    reads_only = activities.READS_ONLY  # the runner reads it from there on every run
    activities.READS_ONLY = frozenset()
    try:
        yield
    finally:
        activities.READS_ONLY = reads_only


def one_session(tmp: Path, name: str, store_url: str) -> dict[str, Any]:
    """A scripted session from `start` to rest, its write transactions and steps counted."""
    with (
        TeacherServer(world.teacher_reply) as teacher_server,
        StudentServer(world.toy_answer) as student_server,
        sqlite_commits() as commits,
    ):
        home = world.create_demo_workspace(tmp / name, student_url=student_server.base_url)
        client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="bench", max_retries=0)
        engine = Engine.open(home, teacher=client, store_url=store_url)
        try:
            engine.sessions()  # the index exists and is caught up before counting starts
            store_file = Path(str(engine.store.url)).name
            commits.clear()
            started = time.perf_counter()
            with counting_writes(engine.store, engine.runner) as count:
                view = engine.run_session(OnDemandTrigger({"source": "bench"}))
            wall = time.perf_counter() - started
        finally:
            engine.close()
    store_commits = commits[store_file] if store_url.startswith("sqlite") else None
    index_commits = sum(n for f, n in commits.items() if f.startswith("views"))
    return {
        "transactions": count.transactions,
        "steps": len(count.steps),
        "events": view.version,
        "sqlite_commits": store_commits,
        "index_commits": index_commits,
        "wall": wall,
        "status": view.status.value,
    }


def run(bench: Any, backend: str) -> None:
    """The figures, into `bench` (a `bench.Bench`)."""
    runs: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    with bench.store_url(backend, "writes") as url:
        EventStore(url).close()  # the tables exist before the first counted session
        for rep in range(bench.sizes.repeat):
            runs.append(one_session(bench.tmp, f"writes_{backend}_{rep}", url))
            with every_step_saved():
                baseline.append(one_session(bench.tmp, f"writes_base_{backend}_{rep}", url))

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return median([float(r[key]) for r in rows])

    ratio = median([r["transactions"] / r["steps"] for r in runs])
    base_ratio = median([r["transactions"] / r["steps"] for r in baseline])
    steps, txns, events = med(runs, "steps"), med(runs, "transactions"), med(runs, "events")
    cross = (
        f"; SQLite executed {med(runs, 'sqlite_commits'):.0f} COMMITs on the store file"
        if backend == "sqlite"
        else ""
    )
    bench.fig(
        "15.2",
        "writes.per_step",
        "store write transactions per session ÷ steps",
        round(ratio, 3),
        "×",
        backend=backend,
        target="≤ 1.0",
        ratio=ratio,
        ok=ratio <= 1.0,
        samples=[r["transactions"] / r["steps"] for r in runs],
        note=f"{txns:.0f} transactions ({events:.0f} events, `start` included) for {steps:.0f} steps{cross}; "
        f"ends {runs[-1]['status']}",
    )
    bench.fig(
        "15.2",
        "writes.per_step_baseline",
        "same session, every step saved on its own (before issue 15)",
        round(base_ratio, 3),
        "×",
        backend=backend,
        ratio=ratio / base_ratio,
        note=f"{med(baseline, 'transactions'):.0f} transactions for {med(baseline, 'steps'):.0f} steps; "
        f"ratio column: now ÷ baseline",
    )
    bench.fig(
        "15.2",
        "writes.index_per_session",
        "session index transactions per session (its own SQLite file)",
        med(runs, "index_commits"),
        "txn",
        backend=backend,
        note="the index catches up once per run, at rest (not per step or event)",
    )
    wall, base_wall = med(runs, "wall"), med(baseline, "wall")
    bench.fig(
        "15.2",
        "writes.session_wall_s",
        "scripted session wall time, fewer writes vs every step saved",
        round(wall, 3),
        "s",
        backend=backend,
        ratio=wall / base_wall,
        samples=[r["wall"] for r in runs],
        note=f"baseline {base_wall:.3f} s; real git dominates both (issue 15 item 1)",
    )
    if backend == "sqlite":
        cached_per_process(bench)


def _best_ms(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e3


def cached_per_process(bench: Any) -> None:
    """What never changes per process, built once: the plan prompt (11 pydantic JSON schemas) and
    the hand price table's lookups; each timed as built every time vs cached, side by side."""
    usage = {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000}
    model = "claude-sonnet-4-5-20250929"

    def plan(clear: bool) -> None:
        if clear:
            plan_request.plan_system_prompt.cache_clear()
        plan_request.build_plan_request(model, 1000, "diagnosis", [])

    def price(clear: bool) -> None:
        if clear:
            pricing._known_price.cache_clear()
        pricing.cost_of(model, usage, pricing.overrides_from(None))

    for key, label, fn, number in (
        ("plan_request_ms", "build_plan_request, plan prompt cached per process", plan, 50),
        ("cost_of_ms", "cost_of a teacher call, price lookup cached per process", price, 2000),
    ):
        fn(False)
        uncached, cached = _best_ms(lambda fn=fn: fn(True), number), _best_ms(lambda fn=fn: fn(False), number)
        bench.fig(
            "15.2",
            f"cached.{key}",
            label,
            round(cached, 4),
            "ms",
            ratio=cached / uncached,
            note=f"built every call: {uncached:.4f} ms (best of 5 × {number}); ratio: cached ÷ built",
        )
