"""Issue 15 item 1: what git costs a whole session (`python scripts/bench.py --only session-cost`).

A scripted session (3 teacher calls; 2 edits: one applied, one rejected by the gate and reverted;
in-process scripted teacher and demo student; embedded SQLite) runs on the real git workspace and on
an in-memory workspace (the same files on disk, commits kept in a Python list: no git at all),
interleaved, on one workspace each that is reused across sessions (each session's applied edit is
rolled back afterwards, outside the timing, so every session does the same work). Printed: the
medians, their ratio (target ≤ 1.5×), the raw SQLite floor for the same rows, and the processes
started per session (target 0): git processes counted from GIT_TRACE, all processes from Popen.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_lib import RawSQLiteFloor, median, sqlite_settings

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.demo.servers.replies import tool_uses_reply
from distill_es.domain.errors import InvalidEdit, WorkspaceConflict
from distill_es.domain.layout import TRACKED_PATHS
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS, SUBMIT_PLAN
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import Edit, EditRiskTier
from distill_es.ports import AppliedEdit, EditCheck
from distill_es.testing.fakes import ScriptedTeacher
from distill_es.workspace.appliers import applier_for

SESSION_SETTINGS = {"session": {"autonomy_mode": "tiered"}}
Trailers = dict[str, list[str]]
GIT_TRACE_LINE = re.compile(r"trace: (built-in|exec): ")


# --- the scripted session -------------------------------------------------------------------------
def teacher_reply(request: dict[str, Any]) -> dict[str, Any]:
    """3 calls: one diagnose turn with a tool, the diagnosis, the plan (the demo world's first two
    edits: one that helps and is applied, one that hurts and is reverted)."""
    if (request.get("tool_choice") or {}).get("name") == SUBMIT_PLAN:
        return tool_uses_reply([(SUBMIT_PLAN, {"edits": world.EDITS[:2]})])
    if not any(m.get("role") == "assistant" for m in request.get("messages", [])):
        return tool_uses_reply([("get_current_config", {})], text="Let me look at the config.")
    return tool_uses_reply(
        [(SUBMIT_DIAGNOSIS, {"diagnosis_markdown": world.DIAGNOSIS, "clusters": world.CLUSTERS})]
    )


def one_session(home: Path, workspace: Any = None) -> dict[str, Any]:
    """One timed session (Engine.open → rest → close), then its applied edit rolled back untimed."""
    teacher = ScriptedTeacher(teacher_reply)
    started = time.perf_counter()
    engine = Engine.open(
        home, teacher=teacher, student=world.DemoStudent(home), settings=SESSION_SETTINGS, workspace=workspace
    )
    try:
        view = engine.run_session(OnDemandTrigger({"source": "bench"}))
        wall = time.perf_counter() - started
        rows = engine.store.stored_events(view.id)
        durability = sqlite_settings(engine.store)
        engine.rollback(view.id)  # untimed: the next session starts from the same files
    finally:
        engine.close()
    return {"wall": wall, "view": view, "rows": rows, "teacher_calls": len(teacher.requests),
            "durability": durability}  # fmt: skip


def raw_floor(tmp: Path, rows: list[Any], durability: dict[str, Any]) -> float:
    """The same rows inserted with plain sqlite3, one transaction each: the store's floor."""
    path = tmp / f"floor-{time.perf_counter_ns()}.sqlite"
    floor = RawSQLiteFloor(
        path,
        str(durability.get("journal_mode", "wal")),
        int(str(durability.get("synchronous", 2)).split()[0]),
    )
    try:
        started = time.perf_counter()
        for row in rows:
            floor.append(row.topic, row.state)
        return time.perf_counter() - started
    finally:
        floor.close()


# --- counting processes -----------------------------------------------------------------------------
@contextmanager
def counted_processes(trace_file: Path) -> Iterator[dict[str, list[str]]]:
    """Every process this interpreter starts (its argv) and every git process (GIT_TRACE lines)."""
    seen: dict[str, list[str]] = {"popen": [], "git": []}
    original = subprocess.Popen.__init__

    def counting(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        seen["popen"].append(" ".join(map(str, args)) if isinstance(args, list | tuple) else str(args))
        original(self, args, *rest, **kwargs)

    trace_file.write_text("")
    before = os.environ.get("GIT_TRACE")
    os.environ["GIT_TRACE"] = str(trace_file)
    subprocess.Popen.__init__ = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
        if before is None:
            os.environ.pop("GIT_TRACE", None)
        else:
            os.environ["GIT_TRACE"] = before
        seen["git"] = [line for line in trace_file.read_text().splitlines() if GIT_TRACE_LINE.search(line)]


# --- the in-memory workspace ------------------------------------------------------------------------
class InMemoryWorkspace:
    """`ports.Workspace` without git: the managed files stay on disk (the student reads them) and
    every commit is a snapshot of the files it changed, kept in a list. The floor for a workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.commits: list[dict[str, Any]] = []
        self._commit({}, {"Distill-ES": ["baseline"]}, files=self._read_all())

    def _read_all(self) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for top in TRACKED_PATHS:
            path = self.root / top
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                found[file.relative_to(self.root).as_posix()] = file.read_bytes()
        return found

    def _commit(
        self, changed: dict[str, bytes | None], trailers: dict[str, list[str]], files: Any = None
    ) -> str:
        state = dict(self.commits[-1]["files"]) if self.commits else {}
        state.update(files if files is not None else changed)
        sha = hashlib.sha1(repr((len(self.commits), sorted(changed))).encode()).hexdigest()
        tree = hashlib.sha1(repr(sorted(state.items())).encode()).hexdigest()
        self.commits.append(
            {"sha": sha, "tree": tree, "files": state, "changed": changed, "trailers": trailers}
        )
        return sha

    def init(self) -> str:
        return self.commits[0]["sha"]

    def head_sha(self) -> str:
        return str(self.commits[-1]["sha"])

    def tree_sha(self) -> str:
        return str(self.commits[-1]["tree"])

    def working_tree_sha(self) -> str:
        return self.tree_sha()

    def dirty_paths(self) -> list[str]:
        return []  # only this object writes the files

    def read_prompt(self, agent: str) -> str | None:
        from distill_es.domain.layout import prompt_path
        from distill_es.workspace.files import read_inside

        return read_inside(self.root, prompt_path(agent))

    def validate(self, edit: Edit) -> EditCheck:
        return applier_for(edit).validate(edit, self.root)

    def preview(self, edit: Edit) -> str:
        return applier_for(edit).preview(edit, self.root)

    def apply(self, edit: Edit, *, session_id: str, risk_tier: EditRiskTier, **_: Any) -> AppliedEdit:
        before = self.commits[-1]["files"]
        written = applier_for(edit).apply(edit, self.root)
        changed = {
            p: (self.root / p).read_bytes() for p in written if (self.root / p).read_bytes() != before.get(p)
        }
        if not changed:
            raise InvalidEdit(f"edit {edit.id!r} changes nothing")
        trailers = {"Edit-ID": [edit.id], "Session-ID": [session_id]}
        sha = self._commit(changed, trailers)
        return AppliedEdit(commit_sha=sha, tree_sha=self.tree_sha(), changed_files=sorted(changed))

    def revert(self, commit_sha: str, *, session_id: str, edit_id: str, **_: Any) -> str:
        index = next(i for i, c in enumerate(self.commits) if c["sha"] == commit_sha)
        if index == 0:
            raise WorkspaceConflict("the baseline cannot be reverted")
        parent = self.commits[index - 1]["files"]
        undo = {p: parent.get(p) for p in self.commits[index]["changed"]}
        for path, data in undo.items():
            if data is None:
                (self.root / path).unlink(missing_ok=True)
            else:
                (self.root / path).write_bytes(data)
        trailers = {"Reverts-Edit-ID": [edit_id], "Session-ID": [session_id], "Reverted-Commit": [commit_sha]}
        return self._commit(undo, trailers)

    def _find(self, key: str, session_id: str, edit_id: str) -> str | None:
        for commit in reversed(self.commits):
            t = commit["trailers"]
            if edit_id in t.get(key, []) and session_id in t.get("Session-ID", []):
                return str(commit["sha"])
        return None

    def find_edit_commit(self, session_id: str, edit_id: str, **_: Any) -> str | None:
        return self._find("Edit-ID", session_id, edit_id)

    def find_revert_commit(self, session_id: str, edit_id: str, **_: Any) -> str | None:
        return self._find("Reverts-Edit-ID", session_id, edit_id)

    def restore(self, sha: str) -> None:
        state = next(c for c in self.commits if c["sha"] == sha)["files"]
        for path, data in state.items():
            if data is not None:
                (self.root / path).write_bytes(data)


# --- the figures --------------------------------------------------------------------------------------
def run(bench: Any) -> None:
    """Add the session-cost figures to `bench` (a `bench.Bench`)."""
    repeat = max(1, bench.sizes.repeat)
    git_home = world.create_demo_workspace(bench.tmp / "cost_git")
    memory_home = world.create_demo_workspace(bench.tmp / "cost_memory")
    memory_ws = InMemoryWorkspace(memory_home)
    one_session(git_home)  # warm-up, untimed: imports, the store's tables, the baseline
    one_session(memory_home, memory_ws)
    gits, memories, floors, git_procs, all_procs = [], [], [], [], []
    shape = ""
    for rep in range(repeat):
        with counted_processes(bench.tmp / f"git-trace-{rep}.log") as seen:
            result = one_session(git_home)
        gits.append(result["wall"])
        git_procs.append(len(seen["git"]))
        all_procs.append(len(seen["popen"]))
        memory = one_session(memory_home, memory_ws)
        memories.append(memory["wall"])
        floors.append(raw_floor(bench.tmp, result["rows"], result["durability"]))
        view = result["view"]
        outcomes = [f"{o.edit_id} {getattr(o.status, 'value', o.status)}" for o in view.edit_outcomes]
        shape = (f"{result['teacher_calls']} teacher calls, {len(result['rows'])} events, ends "
                 f"{view.status.value}; edits: {', '.join(outcomes)}")  # fmt: skip
        if seen["popen"]:
            bench.log(f"  processes started in session {rep}: {seen['popen']}")
    git_s, memory_s, floor_s = median(gits), median(memories), median(floors)
    ratio = git_s / memory_s
    bench.fig("15.1", "session.git_s", "scripted session, real git workspace", round(git_s, 4), "s",
              backend="sqlite", samples=gits, note=shape)  # fmt: skip
    bench.fig("15.1", "session.memory_s", "same session, in-memory workspace (no git)", round(memory_s, 4),
              "s", backend="sqlite", samples=memories)  # fmt: skip
    bench.fig("15.1", "session.git_vs_memory", "whole session: real git ÷ in-memory workspace",
              round(ratio, 2), "×", backend="sqlite", target="≤ 1.5×", ratio=ratio, ok=ratio <= 1.5,
              note=f"medians of {repeat}, interleaved; workspace reused across sessions")  # fmt: skip
    bench.fig("15.1", "session.sqlite_floor_s", "raw SQLite floor: the session's rows, 1 txn each",
              round(floor_s, 4), "s", backend="sqlite", ratio=git_s / floor_s, samples=floors,
              note=f"the session on git is {git_s / floor_s:.1f}× its raw store floor")  # fmt: skip
    procs = max(git_procs)
    bench.fig("15.1", "session.git_processes", "git processes started per session (GIT_TRACE)", procs,
              "processes", target="0", ok=procs == 0,
              note=f"any process started (Popen): max {max(all_procs)} per session")  # fmt: skip
