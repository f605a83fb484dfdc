"""Shared builders for adapter tests: a real student workspace on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIG_TOML = """\
[agent]
default = "helper"

[agent.helper]
class = "simple"
tools = ["calculator", "web_search"]
temperature = 0.2
max_turns = 3

[intelligence]
default_model = "qwen3:8b"

[routing.policy_map]
math = "qwen3:32b"

[models."qwen3:8b"]
temperature = 0.7
max_tokens = 512
top_k = 20

[models."qwen3:32b"]
max_tokens = 1024
"""

DESCRIPTIONS_TOML = """\
[calculator]
description = "Evaluates arithmetic expressions."

[web_search]
description = "Searches the web."

[shell]
description = "Runs shell commands."
"""


@pytest.fixture
def student_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "agents" / "helper").mkdir(parents=True)
    (home / "tools").mkdir()
    (home / "config.toml").write_text(CONFIG_TOML, encoding="utf-8")
    (home / "agents" / "helper" / "system_prompt.md").write_text(
        "You are a careful helper.\n", encoding="utf-8"
    )
    few_shot = [{"user": "2+2?", "assistant": "4"}, {"user": "Capital of France?", "assistant": "Paris"}]
    (home / "agents" / "helper" / "few_shot.json").write_text(json.dumps(few_shot), encoding="utf-8")
    (home / "tools" / "descriptions.toml").write_text(DESCRIPTIONS_TOML, encoding="utf-8")
    return home
