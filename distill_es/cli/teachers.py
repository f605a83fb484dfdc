"""The `--teacher` option: which teacher a driving command uses, and the API key check it needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from distill_es.cli.errors import CliFailure

TEACHER_METAVAR = "anthropic|cassette:PATH"
API_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def require_api_key() -> None:
    if not any(os.environ.get(name) for name in API_KEY_VARS):
        raise CliFailure(
            2,
            "the anthropic teacher needs ANTHROPIC_API_KEY, which is not set",
            "export ANTHROPIC_API_KEY=..., or replay a recording with --teacher cassette:PATH "
            "(`distill-es demo` runs offline)",
        )


class LazyAnthropic:
    """The real teacher, built on first use: resuming a session past its teacher phases needs no key."""

    def __init__(self) -> None:
        self._client: Any = None

    @property
    def messages(self) -> Any:
        if self._client is None:
            from distill_es.adapters.teacher import default_teacher

            require_api_key()
            self._client = default_teacher()
        return self._client.messages


def teacher_spec(value: str | None) -> str | None:
    """The `--teacher` callback: `anthropic`, or `cassette:PATH` of a file that exists."""
    if value is None or value == "anthropic":
        return value
    if value.startswith("cassette:") and value[len("cassette:") :]:
        path = Path(value[len("cassette:") :]).expanduser()
        if not path.is_file():
            raise typer.BadParameter(f"cassette file {path} does not exist")
        return f"cassette:{path}"
    raise typer.BadParameter(f"{value!r} is neither 'anthropic' nor 'cassette:PATH'")


def build_teacher(spec: str | None, record: Path | None) -> Any:
    """None keeps the workspace's default (the demo's cassette, or Anthropic)."""
    teacher: Any = None
    if spec == "anthropic":
        teacher = LazyAnthropic()
    elif spec is not None:
        from distill_es.adapters.cassette import CassetteTeacher

        teacher = CassetteTeacher(spec[len("cassette:") :])
    if record is None:
        return teacher
    from distill_es.adapters.cassette import RecordingTeacher

    return RecordingTeacher(teacher if teacher is not None else LazyAnthropic(), record)
