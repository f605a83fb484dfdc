"""Re-record the demo's teacher cassette (`distill_es/demo/cassette.jsonl`).

Runs the demo session against the scripted teacher served over HTTP (the real anthropic client),
recording every request/response pair. Run it after changing anything that shapes a teacher request
(prompts, tool definitions, the demo world); `tests/demo` fails when the cassette is stale.

    python scripts/record_demo_cassette.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anthropic

from distill_es.adapters.cassette import RecordingTeacher
from distill_es.demo import world
from distill_es.demo.run import CASSETTE, run_demo
from distill_es.testing.servers import ScriptedAnthropicServer


def main() -> int:
    CASSETTE.unlink(missing_ok=True)
    with ScriptedAnthropicServer(world.teacher_reply) as server, tempfile.TemporaryDirectory() as tmp:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="recording", max_retries=0)
        session = run_demo(Path(tmp) / "demo", teacher=RecordingTeacher(client, CASSETTE))
    lines = len(CASSETTE.read_text().splitlines())
    print(f"recorded {lines} teacher calls into {CASSETTE}; session ended {session.status.value}")
    return 0 if session.status.value == "awaiting_review" else 1


if __name__ == "__main__":
    sys.exit(main())
