"""Where everything lives in a workspace, relative to its root: the one definition of every path.

Names that become paths may come from the teacher, so an agent name is checked here on the way.
Reading and writing those paths (containment, atomic writes) is `workspace/files.py`'s job.
"""

from __future__ import annotations

import re

from distill_es.domain.errors import InvalidEdit

SETTINGS_FILE = "distill_es.toml"  # engine settings: never edited by sessions
CONFIG_FILE = "config.toml"  # the student's configuration
DESCRIPTIONS_FILE = "tools/descriptions.toml"
BENCHMARK_FILE = "benchmark.jsonl"
TRACES_JSONL = "traces.jsonl"
TRACES_DB = "traces.db"
STATE_DIR = ".distill_es"  # the engine's own state: event store, locks, training runs
TRAINING_DIR = "training"  # under STATE_DIR
# What sessions may change, and so what a checkpoint commits.
TRACKED_PATHS = (CONFIG_FILE, "agents", "tools")
# Engine state and git's own files: inside the workspace, but never the student's configuration.
PRIVATE_DIRS = (".git", STATE_DIR)

_SAFE_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def checked_agent(agent: str) -> str:
    """An agent name that is one plain path part (it may come from the teacher)."""
    if not isinstance(agent, str) or not _SAFE_AGENT.match(agent) or ".." in agent:
        raise InvalidEdit(
            f"{agent!r} is not a safe agent name (letters, digits, '_', '-', '.'; no '..', no '/', "
            "not absolute)"
        )
    return agent


def prompt_path(agent: str) -> str:
    """Where an agent's system prompt lives."""
    return f"agents/{checked_agent(agent)}/system_prompt.md"


def few_shot_path(agent: str) -> str:
    """Where an agent's few-shot exemplars live."""
    return f"agents/{checked_agent(agent)}/few_shot.json"
