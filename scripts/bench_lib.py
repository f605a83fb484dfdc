"""Helpers for `scripts/bench.py`: synthetic sessions, the raw `eventsourcing` baseline, timing,
throwaway PostgreSQL databases and peak-RSS measurement of child processes.

Nothing in here is imported by distill_es itself; it only drives the public engine/store API.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from distill_es.config.settings import Settings
from distill_es.domain import chain
from distill_es.domain.session.aggregate import Session
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import AutonomyMode
from distill_es.store.app import EventStore
from distill_es.store.urls import store_env

PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "connect_timeout": 3}
SCRIPTS = Path(__file__).resolve().parent


# --- timing ---------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


# --- synthetic payloads (~100 bytes of JSON each) -------------------------------------------------

TOOL_CONTENT = "trace t{n:05d}: the student answered 41 for 17*3; reference 51; outcome failure; fb 0.1"


def teacher_call_payload(n: int) -> dict[str, Any]:
    """A small recorded diagnose turn: one tool_use the next tool result answers."""
    return {
        "call_key": f"diagnose/{n}",
        "purpose": "diagnose",
        "model": "claude-opus-4-6",
        "request_digest": hashlib.sha256(str(n).encode()).hexdigest()[:16],
        "response": {
            "content": [{"type": "tool_use", "id": f"toolu_{n:06d}", "name": "list_traces", "input": {}}]
        },
        "usage": {"input_tokens": 40, "output_tokens": 9},
        "cost_usd": 0.0,
    }


def tool_result_payload(n: int) -> dict[str, Any]:
    return {
        "call_key": f"diagnose/{n}",
        "tool_use_id": f"toolu_{n:06d}",
        "tool": "list_traces",
        "content": TOOL_CONTENT.format(n=n),
        "is_error": False,
        "student_result": None,
    }


def payload_for(i: int) -> tuple[str, dict[str, Any]]:
    """The i-th synthetic event (i from 0): teacher call, tool result, teacher call, ..."""
    n = i // 2 + 1
    if i % 2 == 0:
        return "teacher", teacher_call_payload(n)
    return "tool", tool_result_payload(n)


def payload_json_size(payload: dict[str, Any]) -> int:
    return len(chain.canonical_json(payload).encode())


# --- synthetic engine sessions --------------------------------------------------------------------


def session_settings(max_turns: int = 1_000_000) -> dict[str, Any]:
    """Settings a long synthetic session may run under (max_turns high enough to stay diagnosing)."""
    return (
        Settings()
        .with_overrides(session={"max_turns": max_turns, "max_cost_usd": 1000.0})
        .model_dump(mode="json")
    )


def start_diagnosing(workspace: str, settings: dict[str, Any] | None = None) -> Session:
    """A new session moved into `diagnosing` (3 events: started, readiness, phase)."""
    session = Session.start(
        trigger=OnDemandTrigger({"source": "bench"}),
        autonomy_mode=AutonomyMode.TIERED,
        settings=settings or session_settings(),
        workspace=workspace,
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head="0" * 40, git_tree="1" * 40)
    session.begin_diagnosis()
    return session


def record(session: Session, i: int) -> None:
    kind, payload = payload_for(i)
    if kind == "teacher":
        session.record_teacher_call(**payload)
    else:
        session.record_tool_result(**payload)


def build_session(store: EventStore, workspace: str, events: int, batch: int = 500) -> tuple[str, int]:
    """A diagnosing session with `events` synthetic events after its 3 opening ones, saved in batches.
    Returns (session id, total events)."""
    session = start_diagnosing(workspace)
    for i in range(events):
        record(session, i)
        if (i + 1) % batch == 0:
            store.save(session)
    store.save(session)
    return str(session.id), session.version


# --- the raw eventsourcing baseline ---------------------------------------------------------------


class RawSession(Aggregate):
    """The same facts as a plain `eventsourcing` aggregate: no lifecycle, no digests, dict updates."""

    class Started(Aggregate.Created):
        workspace: str

    class TeacherCallCompleted(Aggregate.Event):
        call_key: str
        purpose: str
        model: str
        request_digest: str
        response: dict[str, Any]
        usage: dict[str, int]
        cost_usd: float

        def apply(self, aggregate: Any) -> None:
            aggregate.calls[self.call_key] = self.response

    class ToolCallCompleted(Aggregate.Event):
        call_key: str
        tool_use_id: str
        tool: str
        content: str
        is_error: bool
        student_result: dict[str, Any] | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.results[self.tool_use_id] = self.content

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        self.calls: dict[str, Any] = {}
        self.results: dict[str, str] = {}

    @classmethod
    def create(cls, workspace: str) -> RawSession:
        return cls._create(cls.Started, id=uuid.uuid4(), workspace=workspace)

    def record(self, i: int) -> None:
        kind, payload = payload_for(i)
        cls = self.TeacherCallCompleted if kind == "teacher" else self.ToolCallCompleted
        self.trigger_event(cls, **payload)


class RawApplication(Application):
    name = "raw_bench"


def raw_app(url: str) -> RawApplication:
    """A plain Application with the engine store's own environment (same compressor, same database)."""
    return RawApplication(env=store_env(url))


def build_raw(app: RawApplication, events: int, batch: int = 500) -> tuple[Any, int]:
    agg = RawSession.create("bench")
    for i in range(events):
        agg.record(i)
        if (i + 1) % batch == 0:
            app.save(agg)
    app.save(agg)
    return agg.id, agg.version


# --- stores ---------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def sqlite_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def sqlite_disk_bytes(url: str) -> int:
    """Bytes the SQLite store occupies after a WAL checkpoint (main file; -wal truncated)."""
    path = sqlite_path(url)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists() and suffix != "-shm":
            total += p.stat().st_size
    return total


def sqlite_used_bytes(url: str) -> int:
    """Pages in use (page_count - freelist) × page_size: file size minus free pages."""
    path = sqlite_path(url)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size


def sqlite_settings(store: EventStore) -> dict[str, Any]:
    """The durability-relevant PRAGMAs of the engine store's own SQLite connection."""
    datastore = store.app.recorder.datastore  # type: ignore[attr-defined]
    pool = datastore.pool
    conn = pool.get_connection(is_writer=False)
    try:
        raw = conn._sqlite_conn
        found = {
            name: raw.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "page_size", "wal_autocheckpoint", "locking_mode")
        }
        found["busy_timeout_ms"] = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        pool.put_connection(conn)
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    found["synchronous"] = f"{found['synchronous']} ({names.get(found['synchronous'], '?')})"
    found["transaction"] = "BEGIN (deferred) … COMMIT per save, autocommit connection"
    found["compressor"] = store_env(store.url)["COMPRESSOR_TOPIC"]
    found["sqlite_version"] = sqlite3.sqlite_version
    return found


class RawSQLiteFloor:
    """The floor under any event store on SQLite: insert the same stored-event rows with plain
    `sqlite3`, one transaction per event, under the same journal mode and synchronous setting."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, "
        "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )

    def __init__(self, path: Path, journal_mode: str, synchronous: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute(f"PRAGMA journal_mode={journal_mode}")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute(self.SCHEMA)
        self.version = 0
        self.oid = uuid.uuid4().hex

    def append(self, topic: str, state: bytes) -> None:
        self.version += 1
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO stored_events VALUES (?,?,?,?)", (self.oid, self.version, topic, state))
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


# --- PostgreSQL -----------------------------------------------------------------------------------


def pg_reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(**PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()


@contextlib.contextmanager
def pg_database(prefix: str = "distill_es_bench") -> Iterator[str]:
    """A throwaway database, dropped afterwards; yields its store URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(**PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_settings(url: str) -> dict[str, str]:
    """The durability-relevant settings of the PostgreSQL server behind a store URL."""
    import psycopg

    dbname = urlparse(url).path.lstrip("/")
    names = ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "full_page_writes")
    with psycopg.connect(**{**PG_ADMIN, "dbname": dbname}, autocommit=True) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in names}


def pg_database_bytes(url: str, tables: tuple[str, ...] = ()) -> int:
    """Total relation size (heap + indexes + toast) of the event tables of a store database."""
    import psycopg

    dbname = urlparse(url).path.lstrip("/")
    with psycopg.connect(**{**PG_ADMIN, "dbname": dbname}, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return sum(size for name, size in rows if not tables or name in tables)


# --- child processes -------------------------------------------------------------------------------


def compiled_like_an_install() -> str:
    """Write distill_es's bytecode (`__pycache__`), as `pip install` of the wheel does: an editable
    checkout under PYTHONDONTWRITEBYTECODE=1 (set on this machine) would otherwise compile ~80
    modules from source in every cold process, ~90 ms a user's install never pays. Returns a note
    for the figures."""
    import compileall

    import distill_es

    package = Path(distill_es.__file__).parent
    ok = compileall.compile_dir(str(package), quiet=1, force=False)
    return f"{package.name} bytecode written first, as pip does at install{'' if ok else ' (some failed)'}"


def read_libraries(store_module: str = "eventsourcing.sqlite") -> str:
    """The imports no read command can do without, as a `python -c` line: the CLI parser (typer 0.29
    builds pydantic adapters for its options) and the event store on `store_module`. Imported alone,
    they are the floor under the cold-start targets."""
    return f"import typer, typer._adapters, eventsourcing.application, {store_module}"


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTILL_ES_", "ANTHROPIC_"))}
    env.update(extra)
    return env


def peak_rss_of(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> dict[str, Any]:
    """Run `cmd` under a fresh Python wrapper and return its exit code, wall time and peak RSS
    (the wrapper's RUSAGE_CHILDREN ru_maxrss: the child's own high-water mark, in KiB on Linux)."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "wall = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': p.returncode, 'wall_s': wall, 'maxrss_kib': ru.ru_maxrss,"
        " 'stderr': p.stderr.decode(errors='replace')[-2000:]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, timeout=timeout
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"rss wrapper failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class Figure:
    """One row of the results table."""

    item: str  # which ask it answers: "6" (issue 6) or "9.1" … "9.7" (issue 9's list)
    key: str
    label: str
    value: float | int | str | None
    unit: str = ""
    target: str = ""
    ratio: float | None = None
    ok: bool | None = None  # None: informational
    note: str = ""
    backend: str = "any"
    samples: list[float] | None = None

    def verdict(self) -> str:
        if self.ok is None:
            return "info" if self.value is not None else "n/a"
        return "PASS" if self.ok else "MISS"


# --- HTTP helpers -----------------------------------------------------------------------------------


def nodelay(server_cls: type) -> type:
    """`server_cls` with TCP_NODELAY on accepted connections. The shipped scripted servers write the
    response headers and body in two sends without it, so Nagle's algorithm plus the client's delayed
    ACK stall every response by ~40 ms; real model servers (uvicorn, Ollama, llama.cpp) set it."""

    class NoDelay(server_cls):  # type: ignore[misc, valid-type]
        def _handler_class(self):  # type: ignore[no-untyped-def]
            handler = super()._handler_class()
            handler.disable_nagle_algorithm = True  # socketserver.StreamRequestHandler option
            return handler

    NoDelay.__name__ = f"NoDelay{server_cls.__name__}"
    return NoDelay


def http_post_times(
    base_url: str, body: dict[str, Any], count: int, concurrency: int
) -> tuple[float, list[float]]:
    """Plain `http.client` keep-alive POSTs to `<base_url>/chat/completions`: (wall for all, per-request
    latencies). The floor for any Python client on this machine and server."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor

    parsed = urlparse(base_url)
    data = json.dumps(body).encode()
    local = threading.local()
    latencies: list[float] = []

    def one(_: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        t0 = time.perf_counter()
        conn.request("POST", parsed.path + "/chat/completions", data, {"Content-Type": "application/json"})
        conn.getresponse().read()
        latencies.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # open the connections first
        latencies.clear()
        started = time.perf_counter()
        list(pool.map(one, range(count)))
        wall = time.perf_counter() - started
    return wall, latencies
