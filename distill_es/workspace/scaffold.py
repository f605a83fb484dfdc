"""Create a student workspace on disk: the files the contract names, and its baseline checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from distill_es.config.settings import DEFAULT_SETTINGS_TOML
from distill_es.domain.errors import WorkspaceConflict
from distill_es.domain.layout import DESCRIPTIONS_FILE, SETTINGS_FILE, few_shot_path, prompt_path

DEFAULT_CONFIG = """\
# The student agent's configuration. distill_es sessions edit this file, one git commit per edit.

[agent]
default = "{agent}"

[agent.{agent}]
class = "simple"
tools = []
temperature = 0.7

[intelligence]
default_model = "{model}"

[routing.policy_map]

[models."{model}"]
temperature = 0.7
max_tokens = 1024
"""

DEFAULT_PROMPT = "You are a helpful assistant. Answer the user's question.\n"
WORKSPACE_MARKERS = ("config.toml", SETTINGS_FILE)


def is_workspace(path: Path) -> bool:
    return all((Path(path) / marker).is_file() for marker in WORKSPACE_MARKERS)


def _jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows)


def create_workspace(
    home: Path,
    *,
    agent: str = "assistant",
    model: str = "qwen3.5:9b",
    config_toml: str | None = None,
    system_prompt: str = DEFAULT_PROMPT,
    few_shot: list[dict[str, str]] | None = None,
    tool_descriptions_toml: str = "",
    traces: Iterable[Mapping[str, Any]] = (),
    benchmark: Iterable[Mapping[str, Any]] = (),
    settings_toml: str = DEFAULT_SETTINGS_TOML,
    init_git: bool = True,
    traces_file: bool = True,
) -> Path:
    """Write a workspace into `home` (which must not hold one already) and make its baseline commit."""
    home = Path(home)
    existing = [name for name in ("config.toml", SETTINGS_FILE, "agents", "tools") if (home / name).exists()]
    if existing:
        raise WorkspaceConflict(
            f"{home} already holds a workspace ({', '.join(existing)}); refusing to overwrite"
        )
    (home / "agents" / agent).mkdir(parents=True, exist_ok=True)
    (home / "tools").mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config_toml or DEFAULT_CONFIG.format(agent=agent, model=model))
    (home / prompt_path(agent)).write_text(system_prompt)
    (home / few_shot_path(agent)).write_text(json.dumps(few_shot or [], indent=2) + "\n")
    (home / DESCRIPTIONS_FILE).write_text(tool_descriptions_toml)
    if traces_file:  # not when the traces live elsewhere ([traces] source)
        (home / "traces.jsonl").write_text(_jsonl(traces))
    (home / "benchmark.jsonl").write_text(_jsonl(benchmark))
    (home / SETTINGS_FILE).write_text(settings_toml)
    if init_git:
        from distill_es.workspace.git_workspace import GitWorkspace

        GitWorkspace(home).init()
    return home
