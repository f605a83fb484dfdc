"""Issue 18 items 4 and 5: worker processes on one PostgreSQL store, and what one session costs it.

    python scripts/bench.py --only workers        # scaling 1 / 2 / 4 workers, takeover, teacher calls
    python scripts/bench.py --only capacity       # per-session store cost and a short pgbench run

Scaling: 24 sessions queued over 8 demo workspaces; 1, 2 and 4 `python -m distill_es.worker`
processes drain them. The student is I/O-bound on purpose (a real HTTP server on 127.0.0.1 answering
after 50–100 ms, `[student] concurrency = 1`), so the figure measures the workers, not the CPU of a
shared 2-core machine. Throughput counts from the first claim to the last session at rest (from the
workers' per-session log lines, `--json`): worker start-up is left out. Takeover: with 4 workers, one
is SIGKILLed mid-session; the figure is the time from the kill to another worker's claim of that
session. Teacher calls made ÷ expected: the teacher server's request count against an undisturbed run
(the scripted teacher answers each session the same way).

Timings on a loaded machine are distorted: read the ratios, and take final figures on an idle machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_lib import nodelay, pg_database, pg_database_bytes

from distill_es.api import Engine
from distill_es.app.worker import migrate
from distill_es.demo import world
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer

ITEMS = ["18.4", "18.5"]  # the rows of scripts/bench.py's table this module fills
SESSIONS, WORKSPACES = 24, 8
LATENCY = (0.05, 0.10)  # the student's seconds per request, uniform
WORKER_COUNTS = (1, 2, 4)
TeacherServer = nodelay(ScriptedAnthropicServer)
StudentServer = nodelay(ScriptedStudentServer)


class SlowStudent(StudentServer):  # type: ignore[misc, valid-type]
    """The demo student, answering after 50–100 ms (seeded): an I/O-bound model server."""

    def __init__(self, seed: int = 18) -> None:
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        super().__init__(self._answer, latency=LATENCY[0])

    def _answer(self, request: dict[str, Any]) -> str:
        with self._rng_lock:
            extra = self._rng.uniform(0.0, LATENCY[1] - LATENCY[0])
        time.sleep(extra)
        return world.toy_answer(request)


def io_bound_workspace(home: Path, student_url: str) -> Path:
    """A demo workspace whose student runs one request at a time (`[student] concurrency = 1`)."""
    settings = world.settings_toml(student_url).replace("[student]\n", "[student]\nconcurrency = 1\n")
    return world.create_demo_workspace(home, settings=settings)


@dataclass
class Batch:
    """One drain of the queue by `workers` processes."""

    workers: int
    lines: list[dict[str, Any]] = field(default_factory=list)  # the workers' JSON log lines
    teacher_requests: int = 0
    student_requests: int = 0
    opened_at: float = 0.0  # the gate opened: workers may claim from here
    killed_at: float | None = None
    killed_session: str | None = None
    wall_s: float = 0.0
    rested: int = 0
    store_bytes: int = 0
    pg_stats: dict[str, int] = field(default_factory=dict)
    stderr_tail: str = ""
    waits: dict[str, int] = field(default_factory=dict)  # sampled backend wait events -> samples
    samples: int = 0

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == event]

    def sessions_per_min(self) -> float:
        finishes = self.of("finished")
        if not finishes:
            return float("nan")
        span = max(f["at"] for f in finishes) - self.opened_at
        done = len({f["session_id"] for f in finishes if f["outcome"] in RESTING})
        return 60.0 * done / span if span > 0 else float("nan")

    def takeover_s(self) -> float | None:
        if self.killed_at is None:
            return None
        later = [c["at"] for c in self.of("claimed") if c["session_id"] == self.killed_session]
        later = [at for at in later if at > self.killed_at]
        return min(later) - self.killed_at if later else None


RESTING = {"completed", "awaiting_review", "failed"}


def _stamp(line: dict[str, Any]) -> dict[str, Any]:
    line["at"] = datetime.fromisoformat(line["at"]).timestamp()
    return line


class WorkerProcess:
    """`python -m distill_es.worker --json` with its stderr read line by line (the per-session log)."""

    def __init__(self, url: str, state_dir: Path, env: dict[str, str], poll: float, idle_polls: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "distill_es.worker",
            "--store",
            url,
            "--state-dir",
            str(state_dir),
            "--poll",
            str(poll),
            "--exit-when-idle",
            str(idle_polls),
            "--json",
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self.other: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                self.other.append(raw)
                continue
            if isinstance(line, dict) and "event" in line:
                self.lines.append(_stamp(line))
            else:
                self.other.append(raw)

    def current(self) -> str | None:
        """The session this worker claimed last and has not finished (by its log)."""
        claimed: str | None = None
        for line in list(self.lines):
            if line["event"] == "claimed":
                claimed = line["session_id"]
            elif line["event"] == "finished" and line["session_id"] == claimed:
                claimed = None
        return claimed

    def wait(self, timeout: float) -> None:
        self.proc.wait(timeout=timeout)  # stdout holds one summary line: the pipe never fills
        self._reader.join(timeout=5)  # (communicate() would read stderr too, behind the reader's back)


def pg_counters(url: str) -> dict[str, int]:
    """The database's cumulative statistics: connections, commits, rows inserted."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT sessions, xact_commit, tup_inserted, tup_fetched FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    return {"connections": row[0], "commits": row[1], "rows_inserted": row[2], "rows_fetched": row[3]}


def drain(workers: int, tmp: Path, *, kill_one: bool = False, log: Any = print) -> Batch:
    """Queue SESSIONS over WORKSPACES on a fresh database and let `workers` processes run them."""
    batch = Batch(workers)
    with (
        pg_database("distill_es_bench_w") as url,
        TeacherServer(world.teacher_reply) as teacher,
        SlowStudent() as student,
    ):
        migrate(url)
        root = Path(tempfile.mkdtemp(prefix=f"w{workers}_", dir=tmp))
        homes = [io_bound_workspace(root / f"ws{i}", student.base_url) for i in range(WORKSPACES)]
        env = {**os.environ, "ANTHROPIC_BASE_URL": teacher.base_url, "ANTHROPIC_API_KEY": "bench"}
        for n in range(SESSIONS):  # round robin: each workspace's sessions interleave in the queue
            engine = Engine.open(homes[n % WORKSPACES], store_url=url, create_tables=False)
            try:
                engine.start(OnDemandTrigger({"n": n}))
            finally:
                engine.close()
        before = pg_counters(url)
        started = time.time()
        with gate(url, homes):  # every workspace held until every worker is up: a common start line
            procs = [WorkerProcess(url, root / f"worker{i}", env, 0.5, 10) for i in range(workers)]
            _wait_for(lambda: all(any(x["event"] == "started" for x in p.lines) for p in procs), 120, procs)
        batch.opened_at = time.time()
        if kill_one:
            victim = procs[0]
            _wait_for(lambda: victim.current() is not None, 120, procs)
            time.sleep(0.3)  # into the session: its first steps are recorded
            batch.killed_session = victim.current()
            victim.proc.send_signal(signal.SIGKILL)
            batch.killed_at = time.time()
        with WaitSampler(url) as sampler:
            for proc in procs:
                proc.wait(timeout=600)
        batch.waits, batch.samples = dict(sampler.counts), sampler.samples
        batch.wall_s = time.time() - started
        batch.lines = sorted((x for p in procs for x in p.lines), key=lambda x: x["at"])
        batch.stderr_tail = "".join(x for p in procs for x in p.other)[-2000:]
        batch.teacher_requests = len(teacher.requests)
        batch.student_requests = student.completed
        batch.rested = len({f["session_id"] for f in batch.of("finished") if f["outcome"] in RESTING})
        after = pg_counters(url)
        batch.pg_stats = {k: after[k] - before[k] for k in after}
        batch.pg_stats["commits"] -= sampler.samples + 1  # the sampler's own reads
        batch.store_bytes = pg_database_bytes(url)
    log(
        f"  {workers} worker(s){' (one killed)' if kill_one else ''}: {batch.rested}/{SESSIONS} at rest, "
        f"{batch.sessions_per_min():.1f} sessions/min, {batch.teacher_requests} teacher calls"
    )
    return batch


class WaitSampler(threading.Thread):
    """Every 20 ms, what the database's other backends wait on (pg_stat_activity): a lock on the
    events table, an advisory lock, the WAL flush of a commit, the client (idle)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.counts, self.samples = url, Counter[str](), 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop_event.wait(0.02):
                rows = conn.execute(
                    "SELECT wait_event_type, wait_event, state FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                self.samples += 1
                for kind, event, state in rows:
                    self.counts[f"{state}:{kind or 'cpu'}:{event or ''}"] += 1

    def __enter__(self) -> WaitSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=5)


@contextlib.contextmanager
def gate(url: str, homes: list[Path]) -> Iterator[None]:
    """Hold every workspace's lock (as a running session would) on a connection of our own."""
    import psycopg

    from distill_es.store.locks import lock_key

    with psycopg.connect(url, autocommit=True) as conn:
        for home in homes:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(f"workspace:{home}"),))
        yield


def _wait_for(ready: Any, timeout: float, procs: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline or any(p.proc.poll() is not None for p in procs):
            tails = "".join(x for p in procs for x in p.other)[-3000:]
            raise RuntimeError(f"workers did not get there in {timeout} s:\n{tails}")
        time.sleep(0.05)


# --- the rows of scripts/bench.py's table ----------------------------------------------------------


def workers(bench: Any) -> None:
    """Issue 18 item 4: scaling, takeover, teacher calls with one worker killed."""
    batches = {n: drain(n, bench.tmp, log=bench.log) for n in WORKER_COUNTS}
    one = batches[1].sessions_per_min()
    for n, batch in batches.items():
        rate = batch.sessions_per_min()
        ratio = rate / one if one == one and one > 0 else None
        target, ok = ("≥ 3.5× (4 ÷ 1)", ratio is not None and ratio >= 3.5) if n == 4 else ("", None)
        bench.fig(
            "18.4",
            f"workers.{n}.sessions_per_min",
            f"{SESSIONS} queued sessions over {WORKSPACES} workspaces, {n} worker process(es)",
            round(rate, 1),
            "sessions/min",
            backend="postgres",
            target=target,
            ratio=ratio,
            ok=ok,
            note=f"I/O-bound student 50–100 ms, concurrency 1; ratio vs 1 worker; {batch.rested} at rest",
        )
    killed = drain(4, bench.tmp, kill_one=True, log=bench.log)
    takeover = killed.takeover_s()
    bench.fig(
        "18.4",
        "workers.takeover_s",
        "time for a surviving worker to take over a killed worker's session",
        round(takeover, 3) if takeover is not None else None,
        "s",
        backend="postgres",
        target="< 2 s",
        ok=takeover is not None and takeover < 2.0,
        note=f"4 workers, one SIGKILLed mid-session ({killed.killed_session})",
    )
    expected = batches[4].teacher_requests
    made = killed.teacher_requests
    calls = made / expected if expected else None
    bench.fig(
        "18.4",
        "workers.teacher_calls_ratio",
        "teacher calls made ÷ expected, with one worker killed",
        round(calls, 3) if calls is not None else None,
        "",
        backend="postgres",
        target="= 1.0",
        ok=calls == 1.0 and killed.rested == SESSIONS,
        ratio=calls,
        note=f"{made} made, {expected} in an undisturbed run; {killed.rested}/{SESSIONS} at rest",
    )
    _per_session(bench, batches[1])
    for n, batch in batches.items():
        waits = ", ".join(f"{k} {v}" for k, v in sorted(batch.waits.items(), key=lambda kv: -kv[1])[:6])
        bench.log(f"  {n} worker(s): backend states over {batch.samples} samples: {waits}")
        for line in batch.of("stopped"):
            bench.log(f"    {line['worker']}: {line.get('detail', '')}")


def capacity(bench: Any) -> None:
    """Issue 18 item 5: what one PostgreSQL primary sustains here (a short pgbench run): the built-in
    TPC-B-like mix, and one event-sized insert per transaction under an EXCLUSIVE table lock, as
    eventsourcing's PostgreSQL recorder writes (so commits serialize, as they do for the store)."""
    import shutil as _shutil

    pgbench = _shutil.which("pgbench")
    if pgbench is None:
        bench.fig("18.5", "pgbench.tps", "pgbench: not installed", None, backend="postgres")
        return
    script = bench.tmp / "event_insert.sql"
    script.write_text(
        "BEGIN;\nLOCK TABLE bench_events IN EXCLUSIVE MODE;\n"
        "INSERT INTO bench_events (state) VALUES (repeat('x', 600)::bytea);\nEND;\n"
    )
    with pg_database("distill_es_bench_pgb") as url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_events (id bigserial PRIMARY KEY, state bytea)")
        base = [pgbench, "-h", "127.0.0.1", "-U", "postgres", "-n", "-T", "10", "-c", "4", "-j", "2"]
        db = url.rsplit("/", 1)[1]
        subprocess.run(
            [pgbench, "-h", "127.0.0.1", "-U", "postgres", "-i", "-s", "1", "-q", db],
            check=True,
            capture_output=True,
        )
        for key, label, extra in (
            ("tpcb", "pgbench TPC-B-like, 4 clients, 10 s", []),
            (
                "event_insert",
                "one 600-byte insert per transaction under the table lock, 4 clients",
                ["-f", str(script)],
            ),
        ):
            run = subprocess.run([*base, *extra, db], capture_output=True, text=True, check=False)
            tps = _tps(run.stdout)
            if tps is None:
                bench.log(f"  pgbench {key} failed: {run.stderr.strip()[-500:]}")
            bench.fig(
                "18.5",
                f"pgbench.{key}_tps",
                label,
                tps,
                "txn/s",
                backend="postgres",
                note="2 shared cores, loaded: a floor, not the server's ceiling",
            )


def _tps(output: str) -> float | None:
    for line in output.splitlines():
        if line.startswith("tps = "):
            return round(float(line.split()[2]), 1)
    return None


def _per_session(bench: Any, batch: Batch) -> None:
    """Issue 18 item 5: what one session costs the store and the models (from the 1-worker drain)."""
    n = max(1, batch.rested)
    stats = batch.pg_stats
    rows = [
        ("rows_inserted", "rows inserted into the store per session (events + snapshots)", "rows"),
        ("commits", "transactions committed per session (reads and writes)", "txns"),
        ("connections", "PostgreSQL connections opened per session", "conns"),
    ]
    for key, label, unit in rows:
        bench.fig(
            "18.5",
            f"session.{key}",
            label,
            round(stats.get(key, 0) / n, 1),
            unit,
            backend="postgres",
            note=f"{stats.get(key, 0)} over {n} sessions, 1 worker",
        )
    bench.fig(
        "18.5",
        "session.store_bytes",
        "database bytes per session (heap + indexes + toast)",
        round(batch.store_bytes / n),
        "B",
        backend="postgres",
        note="after the 1-worker drain",
    )
    bench.fig(
        "18.5",
        "session.teacher_calls",
        "teacher calls per session",
        round(batch.teacher_requests / n, 2),
        backend="postgres",
        note="the scripted demo teacher",
    )
    bench.fig(
        "18.5",
        "session.student_calls",
        "student calls per session",
        round(batch.student_requests / n, 2),
        backend="postgres",
        note="the demo benchmark, gate subsample 8",
    )


if __name__ == "__main__":  # a quick look without the table: python scripts/bench_workers.py [N ...]
    counts = [int(a) for a in sys.argv[1:]] or [1, 4]
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            result = drain(count, Path(tmp))
            print(
                json.dumps(
                    {
                        "workers": count,
                        "per_min": result.sessions_per_min(),
                        "wall_s": result.wall_s,
                        "pg": result.pg_stats,
                        "teacher": result.teacher_requests,
                    }
                ),
                flush=True,
            )
            if result.rested < SESSIONS:
                print(result.stderr_tail)
