"""The `--teacher` option: which teacher a driving command uses, and the API key check it needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from distill_es.cli.errors import CliFailure
from distill_es.config.paths import expand

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
        path = expand(value[len("cassette:") :])  # `~` and `$VARS`, as every path the CLI takes
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a directory, not a cassette file")
        if not path.is_file():
            raise typer.BadParameter(f"cassette file {path} does not exist")
        return f"cassette:{path}"
    raise typer.BadParameter(f"{value!r} is neither 'anthropic' nor 'cassette:PATH'")


def replaying(path: Path) -> Any:
    """The cassette teacher of `--teacher cassette:PATH`, loaded now: a file that is not a cassette, or
    one with no recorded call (it could answer nothing), is a usage error before a session is recorded."""
    from distill_es.adapters.cassette import CassetteError, CassetteTeacher

    try:
        teacher = CassetteTeacher(path)
    except CassetteError as exc:
        raise CliFailure(2, str(exc), "pass a cassette written by --record-cassette") from exc
    if len(teacher) == 0:
        raise CliFailure(
            2, f"{path}: the cassette holds no recorded teacher calls, so it can answer none",
            "record one first: `distill-es run --teacher anthropic --record-cassette PATH`",
        )  # fmt: skip
    return teacher


def record_spec(value: Path | None) -> Path | None:
    """The `--record-cassette` callback: a file to append to (it may not exist yet), never a folder."""
    if value is None:
        return None
    path = expand(value)
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a directory, not a cassette file")
    return path


def build_teacher(spec: str | None, record: Path | None) -> Any:
    """None keeps the workspace's default (the demo's cassette, or Anthropic)."""
    teacher: Any = None
    if spec == "anthropic":
        teacher = LazyAnthropic()
    elif spec is not None:
        teacher = replaying(Path(spec[len("cassette:") :]))
    if record is None:
        return teacher
    from distill_es.adapters.cassette import RecordingTeacher

    return RecordingTeacher(teacher if teacher is not None else LazyAnthropic(), record)
