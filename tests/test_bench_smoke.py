"""scripts/bench.py in its tiny --quick mode: it runs, prints its table, and writes every figure.

No timing is asserted here (the machine running the tests decides timings); docs/performance.md holds the
figures of a full run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench.py"

# Every figure issue 6 ("Measure it") and issue 9 ("Benchmarks", items 1-7) ask for, on SQLite.
EXPECTED = {
    # issue 6: gate scoring vs ceil(tasks / concurrency) × latency
    "any.gate_scoring.ideal_s",
    "any.gate_scoring.wall_s",
    "any.gate_scoring.http_floor_s",
    "any.gate_scoring.server_latency_ms",
    "any.gate_scoring.shipped_server_latency_ms",
    # issue 6: student calls vs the naive count; teacher tokens with and without caching
    "any.student_calls.made",
    "any.student_calls.naive",
    "any.teacher_tokens.cached",
    "any.teacher_tokens.uncached",
    "any.teacher_tokens.input_cost_ratio",
    # issue 9 item 1: per-transition overhead vs a raw eventsourcing append
    "sqlite.append.engine_us",
    "sqlite.append.raw_us",
    # item 2: replay 1k / 10k vs raw rebuild, and with snapshots
    "sqlite.replay.1k.engine_ms",
    "sqlite.replay.1k.raw_ms",
    "sqlite.replay.10k.engine_ms",
    "sqlite.replay.10k.raw_ms",
    "sqlite.replay.10k.snapshot_ms",
    # item 3: resume latency beyond interpreter start
    "sqlite.resume.interpreter_ms",
    "sqlite.resume.imports_ms",
    "sqlite.resume.cli_ms",
    "sqlite.resume.api_ms",
    "sqlite.resume.sdk_import_ms",
    "sqlite.resume.after_imports_ms",
    "sqlite.resume.warm_ms",
    # item 4: projection catch-up
    "sqlite.catchup.events_per_s",
    # item 5: a scripted session end to end
    "sqlite.e2e.wall_s",
    "sqlite.e2e.events",
    "sqlite.e2e.bytes_per_event",
    # item 6: the raw SQLite floor (its settings are checked below)
    "sqlite.floor.sqlite_us",
    # item 7: memory and disk
    "sqlite.rss.verify_mb",
    "sqlite.rss.session_mb",
    "sqlite.disk.session_vs_payload",
    "sqlite.disk.synthetic_session_vs_payload",
    # issue 15 item 2: store write transactions per step, beside every step saved on its own
    "sqlite.writes.per_step",
    "sqlite.writes.per_step_baseline",
    "sqlite.writes.index_per_session",
    "any.cached.plan_request_ms",
    "any.cached.cost_of_ms",
    # issue 15 item 3: cold read commands (÷ the interpreter floor) and resume to its first commit
    "any.cold.floor_ms",
    "any.cold.sessions_ms",
    "any.cold.show_ms",
    "any.cold.history_ms",
    "any.cold.resume_to_commit_ms",
    # issue 15 item 4: read commands and verify on a large store (200 sessions in quick mode)
    "sqlite.scale.sessions_json_ms",
    "sqlite.scale.review_ms",
    "sqlite.scale.show_ms",
    "sqlite.scale.verify_events_per_s",
    # issue 15 item 1: a whole session on real git vs an in-memory workspace; git processes started
    "sqlite.session.git_s",
    "sqlite.session.memory_s",
    "sqlite.session.git_vs_memory",
    "sqlite.session.sqlite_floor_s",
    "any.session.git_processes",
}
WITH_TARGET = {
    "any.gate_scoring.wall_s",
    "sqlite.append.engine_us",
    "sqlite.replay.1k.engine_ms",
    "sqlite.replay.10k.engine_ms",
    "sqlite.replay.10k.snapshot_ms",
    "sqlite.resume.cli_ms",
    "sqlite.resume.api_ms",
    "sqlite.resume.warm_ms",
    "sqlite.catchup.events_per_s",
    "sqlite.rss.verify_mb",
    "sqlite.rss.session_mb",
    "sqlite.disk.session_vs_payload",
    "sqlite.disk.synthetic_session_vs_payload",
    "sqlite.writes.per_step",
    "sqlite.session.git_vs_memory",
    "any.session.git_processes",
}


@pytest.mark.slow
def test_quick_bench_writes_every_figure(tmp_path: Path):
    out, markdown = tmp_path / "bench-results.json", tmp_path / "bench.md"
    options = ["--quick", "--no-postgres", "--repeat", "1", "--out", str(out), "--markdown", str(markdown)]
    run = subprocess.run(
        [sys.executable, str(BENCH), *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "distill_es benchmarks" in run.stdout
    results = json.loads(out.read_text())

    figures = results["figures"]
    missing = EXPECTED - set(figures)
    assert not missing, f"missing figures: {sorted(missing)}"
    for key in EXPECTED:
        figure = figures[key]
        assert figure["value"] is not None or "not available" in figure["note"], key
        assert figure["verdict"] in {"PASS", "MISS", "info", "n/a"}, key
    for key in WITH_TARGET:
        assert figures[key]["target"], f"{key} has no target"
        if figures[key]["value"] is not None:
            assert figures[key]["verdict"] in {"PASS", "MISS"}, key

    table = markdown.read_text()
    assert table.startswith("| # | figure |") and "gate scoring wall time" in table

    durability = results["sqlite_durability"]
    assert durability["journal_mode"] and durability["synchronous"]
    assert results["meta"]["mode"] == "quick"
