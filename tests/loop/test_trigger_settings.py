"""The [triggers] table: the documented example, defaults, and errors that name the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from distill_es.config.settings import Settings
from distill_es.config.trigger_settings import EXAMPLE_TOML, TriggerSettings
from distill_es.domain.errors import SettingsError
from distill_es.domain.layout import SETTINGS_FILE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "loop-and-triggers.md"


def documented_example() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    [example] = [b for b in blocks if b.startswith("[triggers]")]
    return example


def test_the_documented_example_is_the_full_table_and_parses() -> None:
    assert documented_example() == EXAMPLE_TOML
    parsed = TriggerSettings.from_table(tomllib.loads(EXAMPLE_TOML)["triggers"])
    assert parsed.scheduled.cron == ["0 3 * * *", "30 12 * * 1-5"]
    assert parsed.scheduled.min_new_traces == 20
    assert (parsed.cluster.enabled, parsed.cluster.window, parsed.cluster.threshold) == (True, 50, 0.4)
    assert parsed.cluster.min_traces == 10 and parsed.user_flag.enabled
    assert parsed.pause_while_review_pending
    # Every field of the model appears in the example, so the docs cannot fall behind the code.
    table = tomllib.loads(EXAMPLE_TOML)["triggers"]
    for name, field in TriggerSettings.model_fields.items():
        assert name in table, name
        if isinstance(table[name], dict):
            assert set(table[name]) == set(field.annotation.model_fields), name  # type: ignore[union-attr]


def test_defaults_only_user_flags_fire() -> None:
    defaults = TriggerSettings()
    assert defaults.scheduled.cron == [] and not defaults.cluster.enabled and defaults.user_flag.enabled


def test_the_settings_file_holds_both_tables(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("[session]\nmin_traces = 3\n\n" + EXAMPLE_TOML, encoding="utf-8")
    assert Settings.load(tmp_path).session.min_traces == 3  # [triggers] no longer refused
    assert TriggerSettings.load(tmp_path).cluster.threshold == 0.4
    assert TriggerSettings.load(tmp_path / "missing") == TriggerSettings()


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[triggers.scheduled]\ncron = ["every night"]\n', "'every night' is not a cron expression"),
        ('[triggers.scheduled]\ntimezone = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
        ("[triggers.cluster]\nthreshold = 1.5\n", "[triggers]: cluster.threshold: Input should be less"),
        ("[triggers.cluster]\nwindw = 5\n", "cluster.windw"),
        ("[triggers]\nschedule = {}\n", "schedule"),
        ("triggers = 3\n", "[triggers] must be a table"),
        ("[triggers\n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, toml: str, says: str) -> None:
    (tmp_path / SETTINGS_FILE).write_text(toml, encoding="utf-8")
    with pytest.raises(SettingsError, match=re.escape(says)) as caught:
        TriggerSettings.load(tmp_path)
    assert str(tmp_path / SETTINGS_FILE) in str(caught.value)
