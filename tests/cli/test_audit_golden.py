"""regate and explain on the golden corpus: sessions recorded by earlier versions (every state, a v1
event, LoRA edits, a rollback) are re-gated and explained without error. The corpus is loaded as
tests/test_golden_corpus.py loads it (a copy under /tmp; tests/golden is only read)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distill_es import Engine
from tests.test_golden_corpus import GOLDEN_HOME, cli, golden_lock, ids, load_corpus


@pytest.fixture(scope="module")
def corpus() -> Iterator[dict[str, str]]:
    with golden_lock():
        load_corpus()
        yield ids()["sessions"]
        shutil.rmtree(Path(GOLDEN_HOME).parent, ignore_errors=True)


def _json(args: list[str]) -> Any:
    result = cli([*args, "--json"])
    assert result.returncode == 0, (args, result.stderr)
    return json.loads(result.stdout)


def test_regate_every_recorded_gate_of_the_corpus(corpus: dict[str, str]) -> None:
    report = _json(["regate", "--all"])
    assert report["flips"] == 0 and report["skipped_sessions"] == []
    assert report["gates"] > 0 and report["redecided"] == report["gates"]
    loose = _json(["regate", "--all", "--max-regression", "1", "--min-improvement", "0"])
    strict = _json(["regate", "--all", "--min-improvement", "1"])
    assert loose["gates"] == strict["gates"] == report["gates"]
    assert all(not g["whatif_accepted"] for s in strict["sessions"] for g in s["gates"])


def test_explain_every_edit_of_the_corpus(corpus: dict[str, str]) -> None:
    """In process (one interpreter per edit would take minutes on a loaded machine); the command itself
    is checked on one edit."""
    explained = 0
    engine = Engine.open(GOLDEN_HOME, create_tables=False)
    try:
        for sid in corpus.values():
            view = engine.get(sid).model_dump(mode="json")
            versions = {e["version"]: e["type"] for e in engine.history(sid)}
            for outcome in view["edit_outcomes"]:
                lineage = engine.explain(sid, outcome["edit_id"]).model_dump(mode="json")
                check(lineage, outcome, versions, sid)
                explained += 1
    finally:
        engine.close()
    assert explained >= 5
    sid = corpus["rolled_back"]
    outcomes = _json(["show", sid])["edit_outcomes"]
    [edit_id] = [o["edit_id"] for o in outcomes if o["status"] == "rolled_back"]
    lineage = _json(["explain", sid, edit_id])
    assert lineage["undo"]["kind"] == "rolled_back" and lineage["undo"]["requested_by"]
    assert lineage["review"]["decision"] == "approved" and lineage["gate"]["accepted"] is True


def check(lineage: dict[str, Any], outcome: dict[str, Any], versions: dict[int, str], sid: str) -> None:
    """The lineage agrees with `show` and every link is present, applying or saying why not."""
    assert lineage["status"] == outcome["status"]
    for name in ("traces", "cluster", "teacher_call", "edit", "routing", "validation", "commit", "gate",
                 "review", "undo"):  # fmt: skip
        link = lineage[name]
        assert link["applies"] or link["note"], (sid, outcome["edit_id"], name)
        assert set(link["versions"]) <= set(versions), (sid, name)
