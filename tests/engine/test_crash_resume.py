"""Kill the engine with SIGKILL after every committed event, and in the middle of every kind of side
effect; `run` must then finish the session exactly as an uninterrupted run does.

Set DISTILL_ES_CRASH_SAMPLE=N to try only N evenly spaced event boundaries locally; CI tries all.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import pytest

from distill_es.adapters.teacher import request_digest
from distill_es.api import Engine
from distill_es.demo import world
from distill_es.demo.world import DemoStudent
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer
from tests.engine.conftest import outcome_of

REPO = Path(__file__).resolve().parents[2]


def git(home: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(home), *args], capture_output=True, text=True, check=True).stdout


def open_engine(home: Path, server: ScriptedAnthropicServer) -> Engine:
    teacher = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
    return Engine.open(home, teacher=teacher, student=DemoStudent(home))


def summary(engine: Engine, home: Path) -> dict[str, Any]:
    """Everything that must not depend on where the run was interrupted (timestamps and shas aside)."""
    [session] = engine.sessions()
    view = engine.get(session.id)
    return {
        **outcome_of(view),
        "student_calls": (view.student_calls_made, view.student_calls_reused),
        "events": [e["type"] for e in engine.history(session.id)],
        "ledger": [(c["call_key"], c["purpose"], c["cost_usd"]) for c in engine.cost_ledger(session.id)],
        "tree": git(home, "rev-parse", "HEAD^{tree}").strip(),
        # Commit shas, session ids and anchored log digests differ between runs; the rest must not.
        "history": re.sub(
            r"\b[0-9a-f]{64}\b|\b[0-9a-f]{40}\b|\b[0-9a-f]{8}-[0-9a-f-]{27}\b",
            "<id>",
            git(home, "log", "--format=%s%n%b"),
        ),
        "verified": [r.ok for r in engine.verify(session.id)],
    }


def served_digests(server: ScriptedAnthropicServer) -> list[str]:
    return [request_digest(request) for request in server.requests]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = world.create_demo_workspace(tmp_path_factory.mktemp("reference") / "ws")
    with ScriptedAnthropicServer(world.teacher_reply) as server:
        engine = open_engine(home, server)
        engine.run_session(OnDemandTrigger())
        result = summary(engine, home)
        result["requests"] = len(server.requests)
    return result


def crash_then_resume(tmp_path: Path, mode: str, arg: str) -> tuple[dict[str, Any], list[str], int]:
    home = world.create_demo_workspace(tmp_path / "ws")
    with ScriptedAnthropicServer(world.teacher_reply) as server:
        child = subprocess.run(
            [sys.executable, "-m", "tests.engine.crash_child", str(home), server.base_url, mode, arg],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        killed = child.returncode == -signal.SIGKILL
        assert killed or child.returncode == 0, child.stderr[-2000:]
        engine = open_engine(home, server)
        [session] = engine.sessions()
        engine.run(session.id)  # the resume: the same call as a first run
        return summary(engine, home), served_digests(server), int(killed)


def event_boundaries(total: int) -> list[int]:
    sample = os.environ.get("DISTILL_ES_CRASH_SAMPLE")
    if not sample:
        return list(range(1, total + 1))
    count = max(1, int(sample))
    return sorted({1 + round(i * (total - 1) / max(1, count - 1)) for i in range(count)})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "boundary" in metafunc.fixturenames:
        # The reference run has a fixed number of events; computing it here keeps one test per k.
        metafunc.parametrize("boundary", event_boundaries(REFERENCE_EVENT_COUNT))


REFERENCE_EVENT_COUNT = 39  # checked against the reference run by test_reference_event_count


def test_reference_event_count(reference: dict[str, Any]) -> None:
    assert len(reference["events"]) == REFERENCE_EVENT_COUNT
    assert reference["status"] == "awaiting_review"


@pytest.mark.slow
def test_kill_after_every_event_then_resume(boundary: int, reference: dict[str, Any], tmp_path: Path) -> None:
    result, digests, killed = crash_then_resume(tmp_path, "after-event", str(boundary))
    assert killed == 1  # the hook fires after the save holding the k-th event, the last one included
    assert result == {k: v for k, v in reference.items() if k != "requests"}
    # Killed only after commits: every result in the log was asked for exactly once.
    assert [d for d, n in Counter(digests).items() if n > 1] == []
    assert len(digests) == reference["requests"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["teacher", "student", "write", "commit"])
def test_kill_in_the_middle_of_a_side_effect_then_resume(
    kind: str, reference: dict[str, Any], tmp_path: Path
):
    result, digests, killed = crash_then_resume(tmp_path, "during", kind)
    assert killed == 1
    expected = {k: v for k, v in reference.items() if k != "requests"}
    repeated = [d for d, n in Counter(digests).items() if n > 1]
    if kind == "teacher":
        # The response that arrived as the process died was never recorded, so it is asked again, once.
        assert len(repeated) == 1 and len(digests) == reference["requests"] + 1
        # The repeat reads the prompt cache its lost twin wrote, so it is billed less: same calls,
        # same costs for every other call.
        assert [c[:2] for c in result["ledger"]] == [c[:2] for c in expected["ledger"]]
        assert result.pop("ledger")[1:] == expected.pop("ledger")[1:]
        assert result == expected
    else:
        assert result == expected
        assert repeated == [] and len(digests) == reference["requests"]
