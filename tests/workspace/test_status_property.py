"""The in-process clean check against `git status` itself (hypothesis): whatever a user does to the
managed files (edit, delete, chmod, stage, add untracked files, restore), the workspace is found
clean in process exactly when git finds it clean, and dirty paths are named as git names them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.domain.layout import TRACKED_PATHS
from distill_es.workspace import git_index, git_refs
from distill_es.workspace.git_objects import ObjectStore
from distill_es.workspace.git_status import possibly_dirty
from distill_es.workspace.git_workspace import GitWorkspace

from .conftest import git, write_workspace

FILES = ["config.toml", "agents/simple/system_prompt.md", "tools/descriptions.toml"]
ACTIONS = st.sampled_from(["edit", "delete", "chmod", "stage", "untracked", "restore", "same"])
STEPS = st.lists(st.tuples(ACTIONS, st.sampled_from(FILES)), min_size=1, max_size=5)


def git_dirty(root: Path) -> list[str]:
    args = ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--"]
    out = subprocess.run([*args, *TRACKED_PATHS], cwd=root, capture_output=True, text=True, check=True).stdout
    return sorted(entry[3:] for entry in out.split("\0") if len(entry) > 3)


def in_process_suspects(root: Path) -> set[str]:
    dirs = git_refs.git_dirs(root)
    store = ObjectStore(dirs.objects)
    head = git_refs.head(dirs)[1]
    head_files = store.files(store.commit(head).tree, TRACKED_PATHS)
    return possibly_dirty(
        root, TRACKED_PATHS, head_files, git_index.managed_entries(dirs.index, TRACKED_PATHS)
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_clean_in_process_exactly_when_git_says_clean(tmp_path: Path, steps: list[tuple[str, str]]) -> None:
    home = tmp_path / "home"
    shutil.rmtree(home, ignore_errors=True)
    ws = GitWorkspace(write_workspace(home))
    ws.init()
    for action, name in steps:
        path = home / name
        if action == "edit" and path.exists():
            path.write_text(path.read_text() + "# more\n")
        elif action == "same" and path.exists():
            path.write_bytes(path.read_bytes())  # rewritten with the same bytes: still clean
        elif action == "delete":
            path.unlink(missing_ok=True)
        elif action == "chmod" and path.exists():
            path.chmod(0o755)
        elif action == "stage":
            git(home, "add", "-A", "--", *[p for p in TRACKED_PATHS if (home / p).exists()])
        elif action == "untracked":
            (path.parent / "new.md").write_text("new\n")
        elif action == "restore":
            ws.restore(ws.head_sha())
        expected = git_dirty(home)
        assert bool(in_process_suspects(home)) == bool(expected), (steps, expected)
        assert ws.dirty_paths() == expected
