"""`distill_es.testing.servers`, the documented path of the real test servers (`distill_es.demo.servers`).

Real HTTP servers on 127.0.0.1 for the teacher's (Anthropic Messages) and the student's (OpenAI chat
completions) wire formats, and the compact replies their scripts are written in.

    python -m distill_es.testing.servers [--teacher-port P] [--student-port P] [--init DIR] [--json]

serves the demo world's scripted teacher and student until Ctrl-C: `distill-es dev-servers`.
"""

from __future__ import annotations

import sys

from distill_es.demo.servers.anthropic import AnthropicScript, ScriptedAnthropicServer
from distill_es.demo.servers.json_http import MALFORMED, MALFORMED_BODY, Json, JsonHTTPServer
from distill_es.demo.servers.openai import ScriptedStudentServer, last_user_text
from distill_es.demo.servers.replies import text_reply, tool_use_reply, tool_uses_reply, with_usage

__all__ = [
    "MALFORMED",
    "MALFORMED_BODY",
    "AnthropicScript",
    "Json",
    "JsonHTTPServer",
    "ScriptedAnthropicServer",
    "ScriptedStudentServer",
    "last_user_text",
    "text_reply",
    "tool_use_reply",
    "tool_uses_reply",
    "with_usage",
]


def main(argv: list[str] | None = None) -> None:
    """`python -m distill_es.testing.servers …`: the same as `distill-es dev-servers …`."""
    from distill_es.cli.main import app

    args = sys.argv[1:] if argv is None else argv
    app(["dev-servers", *args], prog_name="python -m distill_es.testing.servers")


if __name__ == "__main__":
    main()
