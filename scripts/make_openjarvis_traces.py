"""Write the pinned OpenJarvis home (`tests/data/openjarvis/`: `traces.db` and its `-wal`, `config.toml`)
with OpenJarvis's own `TraceStore` and config generator, so the reader and `init --openjarvis` are
tested against what OpenJarvis really writes.

Needs `openjarvis` 1.0.4 importable (`pip install openjarvis==1.0.4` in a scratch venv, or PYTHONPATH
set to its unpacked wheel: the store needs none of its dependencies). Not a dependency of distill_es:
run it by hand only to re-pin, then commit both files.

    python scripts/make_openjarvis_traces.py [OUT_DIR]

30 traces, every field used: agents, models, engines, outcomes (success, failure, unknown), feedback
(set and unset), steps of every step type, chat messages, metadata (some with `query_class`).
The last 5 are saved after a checkpoint and the files are copied while the store is still open, so
those rows live only in the write-ahead log, as they do on a running OpenJarvis.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from openjarvis import __version__
from openjarvis.core.config import HardwareInfo, generate_default_toml, load_config
from openjarvis.core.types import StepType, Trace, TraceStep
from openjarvis.traces.store import TraceStore

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "openjarvis"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
COUNT, WAL_ONLY = 30, 5
QUERIES = [
    ("What is 17 * 23?", "391", "math"),
    ("Convert 5 miles to km", "8.05 km", "math"),
    ("Summarise this email: the meeting moved to Thursday", "Meeting moved to Thursday.", "summarise"),
    ("Écris un haïku sur l'hiver", "Neige sur les toits / ...", "writing"),
    ("What's the weather in Paris?", "I cannot check the weather.", None),
    ("Find the bug: for i in range(10) print(i)", "Missing colon after range(10).", "code"),
]


def _trace(i: int) -> Trace:
    query, result, query_class = QUERIES[i % len(QUERIES)]
    started = T0 + i * 600
    outcome = ("success", "failure", None)[i % 3]
    feedback = None if i % 4 == 3 else round((i % 5) / 4, 2)
    steps = [
        TraceStep(StepType.ROUTE, started, 0.01, {"query": query}, {"model": "qwen3:8b"}, {"policy": "h"}),
        TraceStep(StepType.GENERATE, started + 0.1, 1.2, {"prompt_tokens": 40 + i}, {"content": result}, {}),
    ]
    if i % 5 == 0:
        steps.insert(
            1, TraceStep(StepType.TOOL_CALL, started + 0.05, 0.3, {"tool": "calculator"}, {"value": 391}, {})
        )
    if i % 7 == 0:
        steps.insert(1, TraceStep(StepType.RETRIEVE, started + 0.02, 0.05, {"k": 3}, {"hits": 0}, {}))
    steps.append(TraceStep(StepType.RESPOND, started + 1.4, 0.0, {}, {"content": result}, {}))
    metadata: dict = {"session": f"s{i // 10}"}
    if query_class:
        metadata["query_class"] = query_class
    return Trace(
        trace_id=f"oj-{i:03d}",
        query=query,
        agent="orchestrator" if i % 2 else "simple",
        model="qwen3:8b" if i % 3 else "llama3.2:3b",
        engine="ollama" if i % 2 else "vllm",
        steps=steps,
        result=result,
        outcome=outcome,
        feedback=feedback,
        started_at=started,
        ended_at=started + 1.5,
        total_tokens=100 + i,
        total_latency_seconds=1.5,
        metadata=metadata,
        messages=[{"role": "user", "content": query}, {"role": "assistant", "content": result}],
    )


# What a user changes in the generated config.toml: a model, the agent's tools, its prompt.
CONFIG_EDITS = [
    ('default_model = ""', 'default_model = "qwen3:8b"'),
    ('# tools = ""                   # Comma-separated tool names', 'tools = "calculator,web_search"'),
    ('# system_prompt = ""           # Inline system prompt', 'system_prompt = "You are Jarvis. Be brief."'),
]


def write_config(out: Path) -> None:
    text = generate_default_toml(HardwareInfo(), "ollama")
    for before, after in CONFIG_EDITS:
        assert before in text, before
        text = text.replace(before, after, 1)
    (out / "config.toml").write_text(text, encoding="utf-8")
    loaded = load_config(out / "config.toml")  # OpenJarvis reads it back as written
    assert loaded.agent.tools == "calculator,web_search" and loaded.intelligence.default_model == "qwen3:8b"


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "traces.db"
        store = TraceStore(db)
        for i in range(COUNT - WAL_ONLY):
            store.save(_trace(i))
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the first rows into traces.db itself
        for i in range(COUNT - WAL_ONLY, COUNT):
            store.save(_trace(i))  # these stay in traces.db-wal
        for name in ("traces.db", "traces.db-wal"):
            shutil.copyfile(Path(tmp) / name, out / name)  # copied while the store is open
        store.close()
    write_config(out)
    print(f"wrote {COUNT} traces ({WAL_ONLY} in the WAL only) with openjarvis {__version__} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
