"""Regenerate the golden corpus under tests/golden/ from the CURRENT code (see docs/testing.md).

    python scripts/make_golden_corpus.py
    python scripts/make_golden_corpus.py --refresh-expected

Regenerating is only for a deliberate, documented change of stored data or projections; never to make
a restructuring pass. `--refresh-expected` records nothing: it loads the COMMITTED corpus with the
current code (the test's way) and rewrites only tests/golden/expected/, for a deliberate change of a
projection (ids and stored rows stay as they are); review its diff line by line.

This script may use internals (it runs only when someone regenerates); the test,
tests/test_golden_corpus.py, uses only the public surface, and the expectations are produced by the
test's own loader so the two can never disagree on how a corpus is loaded.

What it records, in one workspace at the fixed path `GOLDEN_HOME` (the sessions, loops and trigger log
of a workspace are found by its absolute path, which is part of their stored events):
- sessions in every state: initiated, diagnosing / planning / executing (each interrupted by an outside
  failure), awaiting_review (the loop's), completed (approved, rejected), failed (a cold start, the
  daemon's), failed in the v1 shape of SessionFailed (written raw, as the first release stored it),
  cancelled mid-gate, rolled_back; LoRA edits trained by a fake trainer, as a dry run and with a
  failing trainer; a snapshot;
- a loop, and a trigger log (a launched flag and a pending one);
- the git anchors (Distill-Log-Head trailers) and the traces the read commands need.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventsourcing.persistence import StoredEvent  # noqa: E402

from distill_es.api import Engine  # noqa: E402
from distill_es.app.daemon import tick  # noqa: E402
from distill_es.config.trigger_settings import TriggerSettings  # noqa: E402
from distill_es.demo import world  # noqa: E402
from distill_es.domain import chain  # noqa: E402
from distill_es.domain.errors import EndpointUnavailable, SessionInterrupted  # noqa: E402
from distill_es.domain.session import events as ev  # noqa: E402
from distill_es.domain.session.aggregate import Session  # noqa: E402
from distill_es.domain.triggers import OnDemandTrigger  # noqa: E402
from distill_es.testing import ScriptedTeacher  # noqa: E402
from distill_es.testing.servers import tool_uses_reply  # noqa: E402
from tests import test_golden_corpus as golden  # noqa: E402

HOME = Path(golden.GOLDEN_HOME)
OUT = golden.CORPUS
FAST = {"network": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.02, "max_rate_limit_wait_seconds": 1}}

LORA = {
    "id": "edit_lora",
    "pillar": "engine",
    "op": "lora_finetune",
    "target": "student.weights",
    "payload": {"target_model": world.MODEL, "backend": "peft-trl-orpo"},
    "rationale": "Arithmetic needs weights, not prompts.",
    "expected_improvement": "arithmetic",
    "risk_tier": "manual",
}

TRAINER = """\
import json, sys
from pathlib import Path

spec = json.loads(Path(sys.argv[sys.argv.index("--spec") + 1]).read_text())
if "{mode}" == "fail":
    sys.exit(7)
echo = {{k: spec[k] for k in ("experiment_id", "backend", "target_model_family", "config_fingerprint",
                              "code_hash")}}
echo["dataset_fingerprint"] = spec["dataset"]["fingerprint"]
if spec["backend"] == "dry-run":
    print(json.dumps({{**echo, "status": "dry_run"}}))
    sys.exit(0)
folder = Path(spec["output_dir"]) / spec["expected_artifact"]["checkpoint_name"]
folder.mkdir(parents=True, exist_ok=True)
(folder / "adapter_config.json").write_text("{{}}")
print(json.dumps({{**echo, "status": "completed", "checkpoint_id": "ckpt-1",
                  "artifact": {{"artifact_path": str(folder), "adapter_format": "peft-adapter"}},
                  "eval": {{"candidate_score": 0.8}}}}))
"""


LORA_DRY = {**LORA, "id": "edit_lora_dry", "payload": {"target_model": world.MODEL, "backend": "dry-run"}}
EDITS_TO_APPROVE = ["edit_lora", "edit_lora_dry"]


def teacher_with_lora(request: dict[str, Any]) -> dict[str, Any]:
    if (request.get("tool_choice") or {}).get("name") == "submit_plan":
        return tool_uses_reply([("submit_plan", {"edits": [world.EDITS[0], LORA, LORA_DRY]})])
    return world.teacher_reply(request)


class FlakyStudent(world.DemoStudent):
    """The demo student, down (an outside failure) while `down` is set."""

    down = False

    def run(self, task: Any) -> Any:
        if self.down:
            raise EndpointUnavailable(
                role="student", endpoint="http://127.0.0.1:11434/v1/chat/completions",
                error_class="ConnectError", error="connection refused", attempts=2,
            )  # fmt: skip
        return super().run(task)


class World:
    def __init__(self) -> None:
        self.teacher = ScriptedTeacher(world.teacher_reply)
        self.student = FlakyStudent(HOME)
        self.hook: Any = None

    def engine(self, settings: dict[str, Any] | None = None, teacher: Any = None) -> Engine:
        return Engine.open(
            HOME, teacher=teacher or self.teacher, student=self.student,
            settings={**FAST, **(settings or {})}, on_step=self._on_step,
        )  # fmt: skip

    def _on_step(self, view: Any, step: Any) -> None:
        if self.hook is not None:
            self.hook(view, step)

    def interrupted(self, engine: Engine, when: Any) -> str:
        """A session stopped by an outside failure at the first step `when(view, step)` picks."""

        def hook(view: Any, step: Any) -> None:
            if when(view, step):
                if view.status == "executing":
                    self.student.down = True
                else:
                    self.teacher.fail_next(529, 50)

        sid = engine.start(OnDemandTrigger({"source": "golden"}))
        self.hook = hook
        try:
            engine.run(sid)
            raise SystemExit(f"session {sid} was not interrupted")
        except SessionInterrupted:
            pass
        finally:
            self.hook = None
            self.student.down = False
            self.teacher._failures.clear()  # what the step did not consume
        return sid


def at(status: str, kind: str) -> Any:
    """The first step of this kind in this state (where `World.interrupted` injects its failure)."""
    return lambda view, step: view.status == status and step.kind == kind


def write_trainer(mode: str) -> list[str]:
    path = HOME.parent / f"trainer_{mode}.py"
    path.write_text(TRAINER.format(mode=mode))
    return [sys.executable, str(path)]


def raw_failed_v1(engine: Engine) -> str:
    """A session that failed in SessionFailed's v1 shape (no reason_code, no class_version)."""
    from distill_es.config.settings import Settings
    from distill_es.domain.vocabulary import AutonomyMode, Trigger, TriggerKind

    session = Session.start(
        trigger=Trigger(kind=TriggerKind.ON_DEMAND, metadata={"source": "golden v1"}),
        autonomy_mode=AutonomyMode.TIERED,
        settings=Settings().model_dump(mode="json"),
        workspace=str(HOME),
    )
    session.check_readiness(trace_count=2, min_traces=20, git_head=None, git_tree=None)
    engine.store.save(session)
    at = datetime.now(UTC)
    payload = {"error": "too few traces (the first release's SessionFailed, without reason_code)"}
    version = session.version + 1
    digest = chain.chain_digest(session.last_digest, ev.SessionFailed.TOPIC, version, at, payload)
    mapper = engine.store.app.mapper
    raw = mapper.transcoder.encode({"timestamp": at, "digest": digest, **payload})
    stored = StoredEvent(originator_id=session.id, originator_version=version,
                         topic=ev.SessionFailed.TOPIC, state=mapper.compressor.compress(raw))  # fmt: skip
    engine.store.app.recorder.insert_events([stored])
    return str(session.id)


def record() -> dict[str, Any]:
    """Run every scenario in GOLDEN_HOME; return what the expectations need (ids, by role)."""
    shutil.rmtree(HOME.parent, ignore_errors=True)
    HOME.parent.mkdir(parents=True)
    world.create_demo_workspace(HOME)
    w = World()
    ids: dict[str, str] = {}

    engine = w.engine()
    # A loop first (nothing may await review before it starts): its one session stops it, awaiting review.
    looped = engine.loop(OnDemandTrigger({"source": "golden loop"}), stagnation_k=1)
    loop_id = looped.id
    ids["awaiting_review"] = looped.sessions[0].session_id
    # Order matters: once edit_003 is applied for good, later plans no longer propose it.
    rejected = engine.run_session(OnDemandTrigger({"source": "golden"})).id
    ids["completed_rejected"] = engine.reject(rejected, "edit_003", reviewer="bo", reason="too vague").id
    rolled = engine.run_session(OnDemandTrigger({"source": "golden"})).id
    engine.approve(rolled, "edit_003", reviewer="ana")
    ids["rolled_back"] = engine.rollback(rolled, requested_by="cy").id
    approved = engine.run_session(OnDemandTrigger({"source": "golden"})).id
    ids["completed_approved"] = engine.approve(approved, "edit_003", reviewer="ana", note="looks right").id
    engine.close()

    # LoRA edits: one trained by a fake trainer beside one dry run, then one whose trainer fails.
    lora_teacher = ScriptedTeacher(teacher_with_lora)
    for name, trainer in (("trained", write_trainer("ok")), ("train_failed", write_trainer("fail"))):
        settings = {"session": {"autonomy_mode": "auto"},
                    "training": {"trainer_command": trainer, "timeout_seconds": 60}}  # fmt: skip
        lora = w.engine(settings, teacher=lora_teacher)
        sid = lora.run_session(OnDemandTrigger({"source": "golden"})).id
        for edit in EDITS_TO_APPROVE:
            lora.approve(sid, edit, reviewer="ana")
        ids[f"lora_{name}"] = sid
        lora.close()

    # The trigger log: a flag the daemon launched a session for, and one still pending. The launched
    # session fails its readiness check (a cold start: too few traces), which keeps the corpus small.
    daemon = w.engine({"session": {"min_traces": 1000}})
    flags = {"launched": daemon.flag("t003", note="Sydney again", flagged_by="eve").flag_id}
    base = TriggerSettings.load(HOME)
    flag_on = base.user_flag.model_copy(update={"enabled": True})
    fired = tick(
        daemon,
        now=datetime.now(UTC),
        settings=base.model_copy(update={"user_flag": flag_on, "pause_while_review_pending": False}),
    )
    assert fired.session_id, fired.lines()
    ids["failed_cold_start"] = str(fired.session_id)
    flags["pending"] = daemon.flag("t005", note="Canberra?", flagged_by="eve").flag_id
    daemon.close()

    # Sessions not at rest last: a loop or a daemon would adopt them (or refuse to start beside them).
    engine = w.engine()
    ids["initiated"] = engine.start(OnDemandTrigger({"source": "golden"}))
    ids["diagnosing"] = w.interrupted(engine, at("diagnosing", "CallTeacher"))
    ids["planning"] = w.interrupted(engine, at("planning", "CallTeacher"))
    ids["executing"] = w.interrupted(engine, at("executing", "ScoreTree"))
    # Cancelled mid-gate: its committed, ungated edit is reverted and skipped (EditSkipped).
    cancelled = w.interrupted(engine, at("executing", "ScoreTree"))
    ids["cancelled"] = engine.cancel(cancelled, by="dee", reason="student retired").id
    ids["failed_v1"] = raw_failed_v1(engine)
    engine.store.take_snapshot(ids["completed_approved"])
    engine.close()
    return {
        "sessions": ids,
        "loop": loop_id,
        "flags": flags,
        # `show --at`: the sessions at some of their earlier versions (start, mid-diagnosis, mid-plan…)
        # `sessions --json` shows every session as it is now: `show` (a load by id, through the snapshot
        # for completed_approved) and `history` for the ones whose paths differ.
        "show": ["completed_approved", "failed_v1", "executing"],
        "history": [
            "rolled_back",
            "completed_rejected",
            "lora_trained",
            "cancelled",
            "failed_v1",
            "failed_cold_start",
            "initiated",
            "diagnosing",
            "planning",
            "executing",
        ],
        "show_at": {
            "awaiting_review": [1, 6, 20],
            "rolled_back": [40],
            "failed_v1": [2],
            "lora_trained": [30],
        },
    }


def main() -> None:
    ids = record()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("expected/*"):
        old.unlink()
    export = golden.cli(["export", "--all"], home=HOME)
    assert export.returncode == 0, export.stderr
    (OUT / "sessions.export.jsonl").write_text(export.stdout, encoding="utf-8")
    session_ids = {json.loads(line)["session_id"] for line in export.stdout.splitlines()
                   if "session_id" in json.loads(line)}  # fmt: skip
    rows = dump_rows(HOME / ".distill_es" / "events.sqlite")
    raw = [r for r in rows if r["table"] != "events" or r["originator_id"] not in session_ids]
    (OUT / "stored_events.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in raw))
    workspace = {
        "anchors": anchors(HOME),
        "traces": [t for t in world.traces() if t["trace_id"] in {"t003", "t005"}],
    }
    (OUT / "workspace.json").write_text(json.dumps(workspace, indent=2, sort_keys=True) + "\n")
    # `show --at TIME`: the session awaiting review at the moment of its 10th event.
    times = [json.loads(line)["timestamp"] for line in export.stdout.splitlines()
             if json.loads(line).get("session_id") == ids["sessions"]["awaiting_review"]]  # fmt: skip
    ids["show_at_time"] = {"awaiting_review": times[9]}
    runs = json.loads(golden.cli(["training", "list", "--json"], home=HOME).stdout)
    by_session = {sid: role for role, sid in ids["sessions"].items()}
    ids["training_runs"] = {by_session[r["session_id"]]: r["run_id"] for r in runs}
    (OUT / "ids.json").write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")

    # Expectations: from a copy loaded the test's way, never from the original store; but the copy must
    # read exactly as the original did (else the corpus lacks something a read command needs).
    commands = golden.commands(ids)
    original = {name: golden.expectation(result) for name, result in golden.run_all(commands).items()}
    golden.load_corpus()
    assert dump_rows(HOME / ".distill_es" / "events.sqlite") == rows, "the corpus does not reload exactly"
    (OUT / "expected").mkdir(exist_ok=True)
    for name, result in golden.run_all(commands).items():
        text = golden.expectation(result)
        assert text == original[name], f"{name}: the reloaded corpus reads unlike the original store"
        (OUT / "expected" / name).write_text(text, encoding="utf-8")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"golden corpus: {len(commands)} expectations, {size // 1024} KB in {OUT}")


def refresh_expected() -> None:
    """Rewrite tests/golden/expected/ from the committed corpus, loaded as the test loads it."""
    commands = golden.commands(golden.ids())
    with golden.golden_lock():
        golden.load_corpus()
        try:
            results = golden.run_all(commands)
        finally:
            shutil.rmtree(HOME.parent, ignore_errors=True)
    changed = []
    for name, result in results.items():
        path = OUT / "expected" / name
        text = golden.expectation(result)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    print(f"golden expectations: {len(changed)} of {len(commands)} rewritten: {', '.join(changed) or '-'}")


def dump_rows(path: Path) -> list[dict[str, Any]]:
    """Every stored row (events and snapshots), state decompressed to its JSON text."""
    found = []
    with sqlite3.connect(path) as db:
        for table in ("events", "snapshots"):
            query = (f"SELECT originator_id, originator_version, topic, state FROM stored_{table} "
                     "ORDER BY originator_id, originator_version")  # fmt: skip
            for oid, version, topic, state in db.execute(query):
                found.append({"table": table, "originator_id": str(UUID(oid)), "originator_version": version,
                              "topic": topic, "state": zlib.decompress(state).decode()})  # fmt: skip
    return found


def anchors(home: Path) -> list[str]:
    """The trailer paragraphs of the workspace's commits that anchor a log head, oldest first."""
    log = subprocess.run(["git", "-C", str(home), "log", "--reverse", "--format=%(trailers:only)%x00"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [t.strip() for t in log.split("\0") if "Distill-Log-Head" in t]


if __name__ == "__main__":
    if sys.argv[1:] == ["--refresh-expected"]:
        refresh_expected()
    else:
        with golden.golden_lock():  # the test loads its copy at the same path
            main()
