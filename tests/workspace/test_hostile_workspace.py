"""The user's work is theirs, and reads stay inside the workspace (issue 13, bullets 5 and 6).

Real git repos in temp dirs: a user's existing repo with uncommitted edits, staged files, no commits,
a symlink pointing out of the workspace, two first runs at once.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from distill_es.adapters.diagnose_toolbox import Toolbox
from distill_es.adapters.student import read_agent
from distill_es.adapters.traces import EmptyTraceSource
from distill_es.domain.errors import InvalidEdit, WorkspaceConflict, WorkspaceError
from distill_es.domain.layout import prompt_path
from distill_es.testing.fakes import ScriptedJudge, ScriptedStudent
from distill_es.workspace.files import read_inside
from distill_es.workspace.git_workspace import GitWorkspace

from .conftest import CONFIG, PROMPT, git

USER = ("-c", "user.name=u", "-c", "user.email=u@x")


def user_repo(root: Path) -> Path:
    """The user's own repo: their config committed, everything else as write_workspace left it."""
    git(root, "init", "-q")
    git(root, "add", "config.toml", "agents", "tools")
    git(root, *USER, "commit", "-q", "-m", "user commit")
    return root


# --- the baseline never takes the user's uncommitted work ----------------------------------------


def test_a_first_run_over_uncommitted_user_edits_refuses_and_names_them(root: Path) -> None:
    user_repo(root)
    (root / "config.toml").write_text("this is [not toml\n")  # a hand edit, corrupt, not committed
    before = git(root, "rev-parse", "HEAD")

    with pytest.raises(WorkspaceConflict, match=r"config\.toml.*commit or discard"):
        GitWorkspace(root).init()

    assert git(root, "rev-parse", "HEAD") == before  # no baseline made
    assert git(root, "show", "HEAD:config.toml") == CONFIG.strip()
    assert (root / "config.toml").read_text() == "this is [not toml\n"  # their edit is kept


def test_the_baseline_leaves_the_users_staged_files_staged_and_uncommitted(root: Path) -> None:
    user_repo(root)
    (root / "NOTES.md").write_text("mine, staged")
    git(root, "add", "NOTES.md")

    baseline = GitWorkspace(root).init()

    committed = git(root, "show", "--name-only", "--format=", baseline).splitlines()
    assert "NOTES.md" not in committed
    assert git(root, "diff", "--cached", "--name-only") == "NOTES.md"  # still staged, as they left it
    assert GitWorkspace(root).dirty_paths() == []


def test_the_baseline_keeps_the_users_uncommitted_gitignore_lines_out(root: Path) -> None:
    (root / ".gitignore").write_text("*.pyc\n")
    git(root, "init", "-q")
    git(root, "add", ".gitignore", "config.toml", "agents", "tools")
    git(root, *USER, "commit", "-q", "-m", "user commit")
    (root / ".gitignore").write_text("*.pyc\nmy-uncommitted-line\n")

    baseline = GitWorkspace(root).init()

    committed = git(root, "show", f"{baseline}:.gitignore")
    assert "my-uncommitted-line" not in committed and "/.distill_es/" in committed
    assert "my-uncommitted-line" in (root / ".gitignore").read_text()  # still theirs, uncommitted


def test_untracked_managed_files_are_adopted_and_the_index_follows(root: Path) -> None:
    git(root, "init", "-q")
    (root / "README.md").write_text("readme")
    git(root, "add", "README.md")
    git(root, *USER, "commit", "-q", "-m", "user commit")

    ws = GitWorkspace(root)
    baseline = ws.init()

    assert git(root, "show", f"{baseline}:agents/simple/system_prompt.md") == PROMPT.strip()
    assert git(root, "status", "--porcelain") == ""  # no staged deletions, nothing left behind
    assert ws.init() == baseline


def test_a_repo_without_commits_gets_a_baseline_and_keeps_other_staged_files(root: Path) -> None:
    git(root, "init", "-q")
    (root / "NOTES.md").write_text("mine")
    git(root, "add", "NOTES.md")

    baseline = GitWorkspace(root).init()

    committed = git(root, "show", "--name-only", "--format=", baseline).splitlines()
    assert "config.toml" in committed and "NOTES.md" not in committed
    assert git(root, "diff", "--cached", "--name-only") == "NOTES.md"


def test_the_baseline_runs_no_hooks(root: Path) -> None:
    user_repo(root)
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho blocked >&2\nexit 1\n")
    hook.chmod(0o755)
    baseline = GitWorkspace(root).init()
    assert git(root, "log", "-1", "--format=%an", baseline) == "distill_es"


def _init_in(root: str) -> str:
    return GitWorkspace(Path(root)).init()


def test_concurrent_first_runs_make_one_baseline(root: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        shas = pool.map(_init_in, [str(root)] * 4)
    assert len(set(shas)) == 1
    assert git(root, "rev-list", "--count", "HEAD") == "1"


def test_a_held_index_lock_is_one_clear_line(root: Path) -> None:
    ws = GitWorkspace(root)
    ws.init()
    (root / ".git" / "index.lock").write_text("")
    (root / "config.toml").write_text(CONFIG + "# hand edit\n")
    with pytest.raises(WorkspaceConflict, match=r"index\.lock"):
        ws.restore(ws.head_sha())


# --- read containment = write containment ----------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("OUTSIDE-SECRET-CONTENT\n")
    return secret


def _toolbox(root: Path) -> Toolbox:
    return Toolbox(
        home=root,
        traces=EmptyTraceSource(),
        benchmark=[],
        student=ScriptedStudent({}),
        judge=ScriptedJudge({}),
        self_run=lambda _: None,  # type: ignore[arg-type,return-value]
    )


def test_get_agent_prompt_refuses_a_symlink_out_of_the_workspace(root: Path, outside: Path) -> None:
    (root / "agents" / "evil").mkdir()
    (root / "agents" / "evil" / "system_prompt.md").symlink_to(outside)

    outcome = _toolbox(root).execute("get_agent_prompt", {"agent_name": "evil"})

    assert outcome.is_error
    assert "OUTSIDE-SECRET" not in outcome.content and "outside the workspace" in outcome.content
    assert "secret.txt" not in outcome.content  # not even where it points


def test_config_and_tool_descriptions_pointing_out_are_refused(root: Path, outside: Path) -> None:
    (root / "config.toml").unlink()
    (root / "config.toml").symlink_to(outside)
    (root / "tools" / "descriptions.toml").unlink()
    (root / "tools" / "descriptions.toml").symlink_to(outside)
    box = _toolbox(root)
    for tool in ("get_current_config", "list_available_tools"):
        outcome = box.execute(tool, {})
        assert outcome.is_error and "OUTSIDE-SECRET" not in outcome.content, tool


def test_agent_names_that_escape_are_refused_before_any_read(root: Path) -> None:
    for name in ("../../etc", "/etc/passwd", "a/b", ".."):
        with pytest.raises(InvalidEdit):
            prompt_path(name)
        assert _toolbox(root).execute("get_agent_prompt", {"agent_name": name}).is_error


def test_reads_and_writes_share_one_containment_check(root: Path, outside: Path) -> None:
    (root / "agents" / "simple" / "system_prompt.md").unlink()
    (root / "agents" / "simple" / "system_prompt.md").symlink_to(outside)
    with pytest.raises(InvalidEdit, match="outside the workspace"):
        read_inside(root, prompt_path("simple"))
    ws = GitWorkspace(root)
    with pytest.raises(InvalidEdit, match="outside the workspace"):
        ws.read_prompt("simple")


def test_engine_state_is_not_readable_through_a_symlink(root: Path) -> None:
    (root / "agents" / "spy").mkdir()
    (root / "agents" / "spy" / "system_prompt.md").symlink_to(root / ".distill_es" / "store.db")
    with pytest.raises(InvalidEdit, match="engine's or git's own files"):
        read_inside(root, prompt_path("spy"))


def test_the_student_does_not_send_a_prompt_from_outside(root: Path, outside: Path) -> None:
    (root / "agents" / "simple" / "system_prompt.md").unlink()
    (root / "agents" / "simple" / "system_prompt.md").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        read_agent(root)
