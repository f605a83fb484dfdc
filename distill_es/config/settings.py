"""Engine settings: `<home>/distill_es.toml`, every key optional, overridable in code.

Sessions never edit this file. Unknown keys are refused so a typo is an error, not a silent default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill_es.config.paths import resolve
from distill_es.domain.errors import SettingsError
from distill_es.domain.layout import SETTINGS_FILE
from distill_es.domain.payloads import describe_validation
from distill_es.domain.vocabulary import AutonomyMode


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TeacherSettings(_Section):
    model: str = "claude-opus-4-6"
    max_tokens: int = Field(default=8192, ge=1)
    prompt_caching: bool = True


class StudentSettings(_Section):
    base_url: str = "http://127.0.0.1:11434/v1"
    model: str = ""  # empty: config.toml's routing / default_model
    api_key_env: str = ""
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)


class NetworkSettings(_Section):
    """How calls to the teacher, the judge and the student survive a flaky network (docs/engine.md)."""

    max_retries: int = Field(default=3, ge=0, le=20)  # teacher and judge; the student: [student]
    backoff_seconds: float = Field(default=0.5, ge=0.0)  # the first wait; doubles each retry
    max_backoff_seconds: float = Field(default=8.0, ge=0.0)
    # A 429 asking for a longer wait than this (in all, per call) interrupts the session instead.
    max_rate_limit_wait_seconds: float = Field(default=180.0, ge=0.0)


class SessionSettings(_Section):
    autonomy_mode: AutonomyMode = AutonomyMode.TIERED
    min_traces: int = Field(default=20, ge=0)
    max_cost_usd: float = Field(default=5.0, gt=0)
    max_turns: int = Field(default=30, ge=1)


class GateSettings(_Section):
    max_regression: float = Field(default=0.01, ge=0.0, le=1.0)  # ε, as the paper
    min_improvement: float = Field(default=0.0, ge=0.0, le=1.0)
    subsample_size: int = Field(default=50, ge=1)
    benchmark_version: str = "personal_v1"


class TracesSettings(_Section):
    # A traces.jsonl or an OpenJarvis traces.db; `~` and `$VARS` expanded, relative to the workspace.
    # Empty: the workspace's non-empty traces.jsonl, else its traces.db (adapters/traces.py).
    source: str = ""


class ModelPriceSettings(_Section):
    """One `[pricing."<model>"]` row: USD per million tokens (cache prices default to 1.25× and 0.1×
    the input price, Anthropic's 5-minute cache write and cache read)."""

    input: float = Field(ge=0.0, allow_inf_nan=False)
    output: float = Field(ge=0.0, allow_inf_nan=False)
    cache_write: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    cache_read: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)


class TrainingSettings(_Section):
    trainer_command: list[str] = []  # argv; empty: every training run ends as a dry run
    timeout_seconds: float = Field(default=4 * 3600.0, gt=0)


def read_settings_file(home: Path) -> dict[str, Any]:
    """`<home>/distill_es.toml` as a dict (empty when absent); invalid TOML is a SettingsError."""
    path = Path(home) / SETTINGS_FILE
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


class Settings(_Section):
    teacher: TeacherSettings = TeacherSettings()
    student: StudentSettings = StudentSettings()
    session: SessionSettings = SessionSettings()
    gate: GateSettings = GateSettings()
    traces: TracesSettings = TracesSettings()
    training: TrainingSettings = TrainingSettings()
    network: NetworkSettings = NetworkSettings()
    # Teacher prices that override or extend the hand table (adapters/pricing.py), by model id.
    pricing: dict[str, ModelPriceSettings] = Field(default_factory=dict)
    # The daemon's [triggers] table; validated by distill_es.config.trigger_settings.TriggerSettings.
    triggers: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def load(cls, home: Path, **overrides: Any) -> Settings:
        """Read `<home>/distill_es.toml` (if present), apply env and then code overrides.

        `overrides` use section names: `Settings.load(home, session={"autonomy_mode": "auto"})`.
        """
        path = Path(home) / SETTINGS_FILE
        data = read_settings_file(home)
        if url := os.environ.get("DISTILL_ES_STUDENT_URL"):
            data.setdefault("student", {})["base_url"] = url
        for section, values in overrides.items():
            data.setdefault(section, {}).update(values)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(f"{path}: {describe_validation(exc)}") from None

    def traces_source(self, home: Path) -> Path | None:
        """`[traces] source` as a path (`~`, `$VARS` expanded, relative to `home`); None when unset."""
        source = self.traces.source.strip()
        return resolve(source, home) if source else None

    def recorded(self) -> dict[str, Any]:
        """The settings as a session records them: `pricing` only when there is a table, so sessions
        of workspaces without one store exactly what they stored before it existed."""
        data = self.model_dump(mode="json")
        if not data["pricing"]:
            del data["pricing"]
        if not data["traces"]["source"]:
            del data["traces"]  # likewise: the default source is recorded as it always was, by absence
        return data

    def with_overrides(self, **overrides: dict[str, Any]) -> Settings:
        data = self.model_dump(mode="json")
        for section, values in overrides.items():
            data.setdefault(section, {}).update(values)
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(describe_validation(exc)) from None


DEFAULT_SETTINGS_TOML = """\
# distill_es engine settings. Every key is optional; the values shown are the defaults.
# Sessions never edit this file.

[teacher]
# model = "claude-opus-4-6"      # any Anthropic model id
# max_tokens = 8192
# prompt_caching = true

[student]                        # the default student: an OpenAI-compatible chat endpoint
# base_url = "http://127.0.0.1:11434/v1"   # env DISTILL_ES_STUDENT_URL overrides
# model = ""                     # empty: use config.toml's routing / default_model
# api_key_env = ""               # name of the env var holding a key, if the endpoint needs one
# concurrency = 8
# timeout_seconds = 120
# max_retries = 3

[network]                        # retries of teacher, judge and student calls (docs/engine.md)
# max_retries = 3                # teacher and judge; the student uses [student] max_retries
# backoff_seconds = 0.5          # first wait after a failure; doubles each retry
# max_backoff_seconds = 8
# max_rate_limit_wait_seconds = 180   # a 429 asking for longer interrupts the session (resume later)

[traces]
# source = ""                    # a traces.jsonl or an OpenJarvis traces.db (~ and $VARS expanded,
                                 # relative to this folder); empty: this workspace's non-empty
                                 # traces.jsonl, else its traces.db

[session]
# autonomy_mode = "tiered"       # auto | tiered | manual
# min_traces = 20
# max_cost_usd = 5.0
# max_turns = 30

[gate]
# max_regression = 0.01          # ε: how far any other cluster may drop
# min_improvement = 0.0          # the target cluster must improve by more than this
# subsample_size = 50
# benchmark_version = "personal_v1"

# [pricing."claude-opus-4-7"]     # teacher prices, USD per million tokens: override or add a model
# input = 5.0                    # (a model in neither table is priced at the dearest known rate and
# output = 25.0                  #  shown as "unknown price")
# cache_write = 6.25             # optional: 1.25 × input
# cache_read = 0.5               # optional: 0.1 × input

[training]                       # runs for approved lora_finetune edits (docs/training.md)
# trainer_command = []           # e.g. ["python", "scripts/trainers/peft_orpo.py"]; empty: dry run
# timeout_seconds = 14400
"""
