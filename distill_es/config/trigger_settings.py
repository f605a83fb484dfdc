"""The daemon's triggers: the `[triggers]` table of `<home>/distill_es.toml`.

Read on its own with tomllib for now (it will be folded into `Settings`); `Settings` accepts the
table as an opaque dict so the same file serves both. Every key is optional; with no `[triggers]`
table only user flags fire (a flag is an explicit request, so it is on by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill_es.config.settings import read_settings_file
from distill_es.domain.errors import SettingsError
from distill_es.domain.layout import SETTINGS_FILE
from distill_es.domain.payloads import describe_validation


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduledSettings(_Section):
    """Cron slots; a slot fires once, as soon as enough new traces arrived since the last session."""

    cron: list[str] = Field(default_factory=list)  # empty: the scheduled trigger is off
    min_new_traces: int = Field(default=0, ge=0)
    timezone: str = "UTC"  # the zone the cron expressions are read in

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, expressions: list[str]) -> list[str]:
        for expression in expressions:
            if not croniter.is_valid(expression):
                raise ValueError(f"{expression!r} is not a cron expression (e.g. '0 3 * * *')")
        return expressions

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. 'Europe/Paris')") from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ClusterSettings(_Section):
    """Failure rate over the most recent `window` traces with an outcome, above `threshold`."""

    enabled: bool = False
    window: int = Field(default=50, ge=1)
    threshold: float = Field(default=0.5, ge=0.0, lt=1.0)
    min_traces: int = Field(default=10, ge=1)  # fewer labelled traces than this: no verdict


class UserFlagSettings(_Section):
    enabled: bool = True


class TriggerSettings(_Section):
    scheduled: ScheduledSettings = ScheduledSettings()
    cluster: ClusterSettings = ClusterSettings()
    user_flag: UserFlagSettings = UserFlagSettings()
    # Pending edits must not pile up: while a session awaits review, nothing new is started.
    pause_while_review_pending: bool = True

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str = "[triggers]") -> TriggerSettings:
        try:
            return cls.model_validate(table)
        except ValidationError as exc:
            raise SettingsError(f"{where}: {describe_validation(exc)}") from None

    @classmethod
    def load(cls, home: Path) -> TriggerSettings:
        """The `[triggers]` table of `<home>/distill_es.toml` (defaults when absent)."""
        path = Path(home) / SETTINGS_FILE
        table = read_settings_file(home).get("triggers", {})
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: [triggers] must be a table")
        return cls.from_table(table, where=f"{path} [triggers]")


EXAMPLE_TOML = """\
[triggers]
pause_while_review_pending = true   # start nothing while a session awaits review

[triggers.scheduled]
cron = ["0 3 * * *", "30 12 * * 1-5"]   # each slot fires at most once
min_new_traces = 20                     # ...and only with this many traces newer than the last session
timezone = "UTC"

[triggers.cluster]
enabled = true
window = 50          # the most recent traces looked at
threshold = 0.4      # fire when more than 40% of those with an outcome failed
min_traces = 10      # no verdict on fewer labelled traces

[triggers.user_flag]
enabled = true       # `distill-es flag TRACE_ID` requests a session about that trace
"""
