"""The golden corpus: stored data recorded by an earlier version must still read the same.

Temporal's replayer-in-CI pattern. `tests/golden/` holds recorded stores (sessions as `distill-es
export --all` JSON Lines; loops, trigger logs, training runs and snapshots, which export does not
cover, as raw stored rows) and what the read commands printed for them. This test loads the corpus
into a fresh workspace with the current code and requires byte-identical output.

It depends ONLY on the stable public surface, so it passes unchanged through any restructuring of the
package: the `distill-es` console script (run as a subprocess), `distill-es import`, git, and the
`eventsourcing` library's own SQLite recorder for the raw rows. Never regenerate the corpus to make a
change pass: see docs/testing.md, "The golden corpus".
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

CORPUS = Path(__file__).with_name("golden")

# The workspace's absolute path is part of its stored events (SessionStarted.workspace, the ids of its
# loops and trigger log) and sessions are listed per workspace, so the corpus is always loaded at the
# path it was recorded at. A lock file keeps two runs on one machine from sharing it.
GOLDEN_HOME = "/tmp/distill-es-golden/ws"
LOCK = "/tmp/distill-es-golden.lock"
# eventsourcing's table names in the SQLite store (stored data: never changes).
TABLES = {"events": "stored_events", "snapshots": "stored_snapshots"}


def distill_es_script() -> str:
    """The installed `distill-es` console script, next to this interpreter (the public entry point)."""
    found = Path(sys.executable).with_name("distill-es")
    return str(found) if found.exists() else shutil.which("distill-es") or "distill-es"


def cli_env(home: str | Path) -> dict[str, str]:
    """A clean environment: nothing of the caller's store, key or terminal leaks into the output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_ES_")}
    env.update(DISTILL_ES_HOME=str(home), TZ="UTC", NO_COLOR="1", COLUMNS="120", LC_ALL="C.UTF-8")
    return env


def cli(args: list[str], *, home: str | Path = GOLDEN_HOME) -> subprocess.CompletedProcess[str]:
    return subprocess.run([distill_es_script(), *args], capture_output=True, text=True, encoding="utf-8",
                          env=cli_env(home), timeout=120, check=False)  # fmt: skip


def git(*args: str) -> None:
    subprocess.run(["git", "-C", GOLDEN_HOME, *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
                        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"})  # fmt: skip


# --- loading ------------------------------------------------------------------------------------------
def load_corpus() -> None:
    """A fresh workspace at GOLDEN_HOME holding exactly the recorded store, anchors and traces."""
    home = Path(GOLDEN_HOME)
    shutil.rmtree(home.parent, ignore_errors=True)
    home.parent.mkdir(parents=True)
    created = cli(["init", str(home)], home=home)
    assert created.returncode == 0, created.stderr
    workspace = json.loads((CORPUS / "workspace.json").read_text(encoding="utf-8"))
    # The traces the trigger log flags (`flag` looks the trace up before it reads the log).
    with (home / "traces.jsonl").open("a", encoding="utf-8") as traces:
        traces.writelines(json.dumps(trace) + "\n" for trace in workspace["traces"])
    # (traces.jsonl is ignored by the workspace's git: nothing to commit for it)
    # The log heads the engine anchored in git: `verify` and every load check the log against them.
    for trailers in workspace["anchors"]:
        git("commit", "-q", "--allow-empty", "-m", "golden: anchor", "-m", trailers)
    imported = cli(["import", str(CORPUS / "sessions.export.jsonl"), "--json"], home=home)
    assert imported.returncode == 0, imported.stderr
    insert_raw_rows(home / ".distill_es" / "events.sqlite")


def insert_raw_rows(path: Path) -> None:
    """The rows export does not carry, written with eventsourcing's own SQLite recorder (zlib, as the
    store compresses every row)."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore

    rows: dict[str, list[StoredEvent]] = {table: [] for table in TABLES}
    for line in (CORPUS / "stored_events.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        stored = StoredEvent(
            originator_id=UUID(row["originator_id"]),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=zlib.compress(row["state"].encode()),
        )
        rows[row["table"]].append(stored)
    datastore = SQLiteDatastore(str(path))
    try:
        for table, stored in rows.items():
            recorder = SQLiteAggregateRecorder(datastore, events_table_name=TABLES[table])
            recorder.create_table()  # exists already (import made the store); a no-op then
            if stored:
                recorder.insert_events(stored)
    finally:
        datastore.close()


# --- the read commands and what they printed ---------------------------------------------------------
def commands(ids: dict[str, Any]) -> dict[str, list[str]]:
    """Expectation file name -> the command whose output it holds."""
    found: dict[str, list[str]] = {
        "sessions.txt": ["sessions", "--json"],
        "sessions_failed.txt": ["sessions", "--json", "--status", "failed"],
        "review.txt": ["review", "--json"],
        "verify.txt": ["verify", "--json"],
        "loops.txt": ["loops", "--json"],
        "training_list.txt": ["training", "list", "--json"],
        # Flagging a trace whose flag is still pending reads the trigger log and writes nothing.
        "flag_pending.txt": ["flag", "t005", "--json"],
    }
    for role in ids["show"]:
        found[f"show_{role}.txt"] = ["show", ids["sessions"][role], "--json"]
    for role in ids["history"]:
        found[f"history_{role}.txt"] = ["history", ids["sessions"][role], "--json"]
    for role, versions in sorted(ids["show_at"].items()):
        for version in versions:
            at = ["show", ids["sessions"][role], "--at", str(version), "--json"]
            found[f"show_{role}_at_{version}.txt"] = at
    for role, moment in sorted(ids["show_at_time"].items()):  # an ISO time with its zone: TZ plays no part
        found[f"show_{role}_at_time.txt"] = ["show", ids["sessions"][role], "--at", moment, "--json"]
    found["verify_one_rolled_back.txt"] = ["verify", ids["sessions"]["rolled_back"], "--json"]
    for role, run_id in sorted(ids["training_runs"].items()):
        found[f"training_show_{role}.txt"] = ["training", "show", run_id, "--json"]
    return found


def run_all(todo: dict[str, list[str]]) -> dict[str, tuple[list[str], subprocess.CompletedProcess[str]]]:
    """Run every command against GOLDEN_HOME. The first builds the read models; the rest only read, so
    they run side by side (each is a fresh interpreter: ~0.4 s)."""
    names = list(todo)
    first = names[0]
    results = {first: (todo[first], cli(todo[first]))}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for name, result in zip(names[1:], pool.map(lambda n: cli(todo[n]), names[1:]), strict=True):
            results[name] = (todo[name], result)
    return results


def normalise(text: str) -> str:
    """Everything that may differ between two machines or two runs of the same code, in one place.

    Nothing today: the stored events fix every time and id, and the workspace sits at the path it was
    recorded at (GOLDEN_HOME), so the projections are byte-identical. If something ever depends on the
    machine or the clock (an "age", the current time, a temp path), replace it here and say why."""
    return text


def expectation(item: tuple[list[str], subprocess.CompletedProcess[str]]) -> str:
    args, result = item
    return f"$ distill-es {' '.join(args)}\n# exit {result.returncode}\n{normalise(result.stdout)}"


# --- the test -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def golden_lock() -> Iterator[None]:
    with open(LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ids() -> dict[str, Any]:
    return json.loads((CORPUS / "ids.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replayed() -> Iterator[dict[str, tuple[list[str], subprocess.CompletedProcess[str]]]]:
    with golden_lock():
        load_corpus()
        results = run_all(commands(ids()))
        results["export_all"] = (["export", "--all"], cli(["export", "--all"]))
        yield results
        shutil.rmtree(Path(GOLDEN_HOME).parent, ignore_errors=True)


def test_every_expectation_file_has_its_command() -> None:
    expected = {p.name for p in (CORPUS / "expected").iterdir()}
    assert expected == set(commands(ids())), "tests/golden/expected/ and commands() disagree"


def test_the_corpus_replays_to_the_recorded_projections(replayed: dict[str, Any]) -> None:
    failures = []
    for name in sorted(commands(ids())):
        want = (CORPUS / "expected" / name).read_text(encoding="utf-8")
        got = expectation(replayed[name])
        if got != want:
            diff = difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                        f"tests/golden/expected/{name}", "current code")  # fmt: skip
            stderr = replayed[name][1].stderr.strip()
            failures.append("".join(diff) + (f"\nstderr:\n{stderr}\n" if stderr else ""))
    assert not failures, f"{len(failures)} projection(s) changed:\n" + "\n".join(failures)


def test_the_sessions_export_exactly_as_they_were_recorded(replayed: dict[str, Any]) -> None:
    want = (CORPUS / "sessions.export.jsonl").read_text(encoding="utf-8")
    _, result = replayed["export_all"]
    assert result.returncode == 0, result.stderr
    if result.stdout != want:
        diff = difflib.unified_diff(want.splitlines(True), result.stdout.splitlines(True),
                                    "tests/golden/sessions.export.jsonl", "current code")  # fmt: skip
        pytest.fail("".join(list(diff)[:200]))


def test_the_corpus_covers_every_event_type_and_aggregate() -> None:
    """What the corpus claims to cover, checked against its own files (the list grows with the code:
    a new event type is added here and to the generator together)."""
    exported = (CORPUS / "sessions.export.jsonl").read_text(encoding="utf-8").splitlines()
    topics = {json.loads(line).get("type") for line in exported}
    raw = [json.loads(line) for line in (CORPUS / "stored_events.jsonl").open(encoding="utf-8")]
    topics |= {row["topic"] for row in raw}
    missing = sorted(set(COVERED_TOPICS) - topics)
    assert not missing, f"the corpus lacks {missing}"
    schemas = {(json.loads(line).get("type"), json.loads(line).get("schema_version")) for line in exported}
    assert ("distill_es.SessionFailed.v1", 1) in schemas and ("distill_es.SessionFailed.v1", 2) in schemas
    assert any(row["table"] == "snapshots" for row in raw)

    # What the documentation names, too (so a new event type cannot be forgotten here): every topic
    # the docs mention, and every class version of every session event (docs/events.md, generated).
    docs = Path(__file__).resolve().parents[1] / "docs"
    text = "\n".join(page.read_text(encoding="utf-8") for page in sorted(docs.glob("*.md")))
    missing = sorted(set(re.findall(r"distill_es\.[A-Z][A-Za-z]+\.v[0-9]+", text)) - topics)
    assert not missing, f"the docs name event types the corpus lacks: {missing}"
    events_md = (docs / "events.md").read_text(encoding="utf-8")
    versions = {(topic, v) for topic, latest in re.findall(r"topic `([^`]+)` · schema (\d+)", events_md)
                for v in range(1, int(latest) + 1)}  # fmt: skip
    assert versions, "docs/events.md lists no topics: has its format changed?"
    assert not sorted(versions - schemas), f"class versions the corpus lacks: {sorted(versions - schemas)}"


COVERED_TOPICS = [
    f"distill_es.{name}.v1"
    for name in [
        "SessionStarted",
        "ReadinessChecked",
        "PhaseEntered",
        "TeacherCallCompleted",
        "ToolCallCompleted",
        "DiagnosisRecorded",
        "PlanFrozen",
        "EditRouted",
        "EditQueuedForReview",
        "EditValidated",
        "EditApplyStarted",
        "EditApplied",
        "EditSkipped",
        "EditTrained",
        "GateTasksChosen",
        "TasksScored",
        "BenchmarkCaptured",
        "GateEvaluated",
        "EditReverted",
        "EditApprovedByReviewer",
        "EditRejectedByReviewer",
        "SessionAwaitingReview",
        "SessionCompleted",
        "SessionFailed",
        "SessionCancelled",
        "StepInterrupted",
        "RollbackRequested",
        "EditRolledBack",
        "SessionRolledBack",
        "TrainingRequested",
        "TrainingDatasetExported",
        "TrainingStarted",
        "TrainingCheckpointRegistered",
        "TrainingFinished",
        "TrainingFailed",
        "TrainingDryRunCompleted",
        "TrainingEvalAttached",
        "TrainingPromotionDecided",
        "LoopStarted",
        "LoopSessionStarted",
        "LoopSessionFinished",
        "LoopStopped",
        "TriggerLogOpened",
        "TraceFlagged",
        "TriggerFired",
        "SessionLaunched",
        "SessionSnapshot",
    ]
]
