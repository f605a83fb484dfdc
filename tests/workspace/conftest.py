"""A small real workspace on disk (and under real git) for the workspace tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from distill_es.domain.vocabulary import OP_PILLAR, Edit, EditOp
from distill_es.workspace.git_workspace import GitWorkspace

CONFIG = """\
# The student's configuration. Comments and layout must survive every edit.
[agent]
default = "simple"  # the agent the CLI runs

[agent.simple]
class = "simple"
tools = ["web_search", "calculator"]  # what it may call
max_turns = 3

[intelligence]
default_model = "qwen3.5:9b"
"""

PROMPT = "You are a helpful assistant.\nAnswer briefly.\nCite your sources.\n"

DESCRIPTIONS = """\
# Descriptions the model sees for each tool
[web_search]
description = "Search the web."

[calculator]
description = "Evaluate arithmetic."
"""

# Engine-owned files: git must ignore them so they never make the tree dirty.
ENGINE_FILES = {
    "traces.jsonl": '{"trace_id": "t1"}\n',
    "traces.db": "",
    "traces.db-wal": "",
    "benchmark.jsonl": '{"task_id": "b1"}\n',
    "distill_es.toml": "[session]\nmin_traces = 1\n",
    ".distill_es/store.db": "",
}


def make_edit(op: EditOp, payload: dict[str, Any], *, edit_id: str = "e1", target: str = "") -> Edit:
    return Edit(id=edit_id, pillar=OP_PILLAR[op], op=op, target=target, payload=payload)


def write_workspace(root: Path) -> Path:
    (root / "agents" / "simple").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "config.toml").write_text(CONFIG)
    (root / "agents" / "simple" / "system_prompt.md").write_text(PROMPT)
    (root / "tools" / "descriptions.toml").write_text(DESCRIPTIONS)
    for rel, text in ENGINE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def git(root: Path, *args: str) -> str:
    """Plain git, independent of the code under test."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` except git's own, with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace directory without git, inside a parent that tests can watch for stray writes."""
    return write_workspace(tmp_path / "home")


@pytest.fixture
def ws(root: Path) -> GitWorkspace:
    workspace = GitWorkspace(root)
    workspace.init()
    return workspace
