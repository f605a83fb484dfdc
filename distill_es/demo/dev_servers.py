"""The demo world served over real HTTP, to try the live path offline (`distill-es dev-servers`).

The demo's scripted teacher behind a real Messages API (`ScriptedAnthropicServer`) and its
deterministic student behind a real OpenAI-compatible endpoint (`ScriptedStudentServer`), on
127.0.0.1. Point the environment at them (`env()`) and `run`, `doctor` and the rest take the same
path as with Anthropic and Ollama: the SDKs, the retries, the wire formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill_es.demo import world
from distill_es.demo.servers.anthropic import ScriptedAnthropicServer
from distill_es.demo.servers.openai import ScriptedStudentServer

DEFAULT_TEACHER_PORT = 8351
DEFAULT_STUDENT_PORT = 8352
DEV_API_KEY = "dev-servers-key"  # the scripted teacher takes any key; the SDK insists on one
DEV_SETTINGS_MARKER = "# distill_es settings for the dev servers"


@dataclass
class DevServers:
    teacher: ScriptedAnthropicServer
    student: ScriptedStudentServer

    def env(self) -> dict[str, str]:
        """The environment that points distill-es at these servers."""
        return {
            "ANTHROPIC_BASE_URL": self.teacher.base_url,
            "ANTHROPIC_API_KEY": DEV_API_KEY,
            "DISTILL_ES_STUDENT_URL": self.student.base_url,
        }

    def close(self) -> None:
        self.teacher.close()
        self.student.close()


def start_dev_servers(
    teacher_port: int = DEFAULT_TEACHER_PORT, student_port: int = DEFAULT_STUDENT_PORT
) -> DevServers:
    """Both servers, serving from daemon threads (port 0 picks a free port). An `OSError` when a
    port is taken (the other server is closed first)."""
    teacher = ScriptedAnthropicServer(world.teacher_reply, port=teacher_port)
    try:
        student = ScriptedStudentServer(
            world.toy_answer, models=(world.MODEL, world.MATH_MODEL), port=student_port
        )
    except BaseException:
        teacher.close()
        raise
    return DevServers(teacher, student)


def create_dev_workspace(home: Path, student_url: str) -> Path:
    """A workspace with the demo world's agent, traces and benchmark, pointed at the dev student. An
    ordinary workspace, not a demo one: `run` calls the teacher and the student over HTTP."""
    settings = world.settings_toml(student_url).replace("# distill_es demo settings", DEV_SETTINGS_MARKER, 1)
    return world.create_demo_workspace(home, settings=settings)
