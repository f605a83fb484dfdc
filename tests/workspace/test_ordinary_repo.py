"""Repositories written by distill_es stay ordinary git repositories (issue 15, item 1): `git fsck
--strict`, `git log` and a clean `git status` after applied, reverted and rolled-back edits; the
user's hooks and identity are respected as `git commit` would; and the per-step work starts no
process at all when the repository has no hooks."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.errors import WorkspaceConflict
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import EditOp, EditRiskTier
from distill_es.testing.fakes import ScriptedTeacher
from distill_es.workspace import git_refs
from distill_es.workspace.commit_messages import parse_trailers
from distill_es.workspace.git_workspace import GitWorkspace

from .conftest import CONFIG, git, make_edit

MAX_TURNS = {"agent": "simple", "param": "max_turns", "value": 5}
PROMPT = {"agent": "simple", "new_content": "Be terse.\n"}


def apply(ws: GitWorkspace, op: EditOp, payload: dict[str, Any], edit_id: str = "e1", session: str = "s1"):
    return ws.apply(make_edit(op, payload, edit_id=edit_id), session_id=session, risk_tier=EditRiskTier.AUTO)


def assert_ordinary(root: Path) -> None:
    """What any git user would check: the objects are sound, the log reads, nothing is left over."""
    subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=root, check=True, capture_output=True)
    assert git(root, "log", "--format=%H %s") != ""
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "diff", "--cached", "--name-only") == ""


def hook(root: Path, name: str, body: str) -> Path:
    path = root / ".git" / "hooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every process the code under test starts (their argv)."""
    seen: list[str] = []
    original = subprocess.Popen.__init__

    def counting(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        seen.append(" ".join(map(str, args)) if isinstance(args, list | tuple) else str(args))
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", counting)
    yield seen


# --- whole sessions --------------------------------------------------------------------------------


def test_a_session_with_applied_reverted_and_rolled_back_edits_leaves_an_ordinary_git_repo(
    tmp_path: Path,
) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    engine = Engine.open(home, teacher=ScriptedTeacher(world.teacher_reply), student=world.DemoStudent(home))
    try:
        view = engine.run_session(OnDemandTrigger())
        statuses = {o.edit_id: str(getattr(o.status, "value", o.status)) for o in view.edit_outcomes}
        assert statuses["edit_001"] == "applied" and statuses["edit_002"] == "rejected_by_gate"
        assert_ordinary(home)
        engine.rollback(view.id)
    finally:
        engine.close()
    assert_ordinary(home)
    subjects = git(home, "log", "--format=%s").splitlines()
    assert [s.split(":")[0] for s in subjects[:2]] == ["Revert edit edit_001", "Revert edit edit_002"]
    # HEAD's reflog names every commit the engine made, as `git commit` would have left it.
    reflog = git(home, "reflog", "--format=%H %gs").splitlines()
    assert len(reflog) == len(subjects) and reflog[0].split()[1] == "commit:"


def test_packed_refs_and_packed_objects_are_read_and_written(ws: GitWorkspace) -> None:
    first = apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS, "e1")
    git(ws.root, "gc", "-q", "--prune=now")  # refs into packed-refs, objects into a pack
    assert not (ws.root / ".git" / "objects" / first.commit_sha[:2]).exists()
    second = apply(ws, EditOp.REPLACE_SYSTEM_PROMPT, PROMPT, "e2")
    assert ws.find_edit_commit("s1", "e1") == first.commit_sha
    ws.revert(first.commit_sha, session_id="s1", edit_id="e1")
    assert git(ws.root, "rev-parse", "HEAD~1") == second.commit_sha
    assert (ws.root / "config.toml").read_text() == CONFIG
    assert_ordinary(ws.root)


def test_an_older_edit_reverted_by_a_merge_leaves_an_ordinary_repo(ws: GitWorkspace) -> None:
    first = apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS, "e1")
    apply(ws, EditOp.SET_AGENT_CLASS, {"agent": "simple", "new_class": "react"}, "e2")  # same file
    ws.revert(first.commit_sha, session_id="s1", edit_id="e1")
    text = (ws.root / "config.toml").read_text()
    assert "max_turns = 3" in text and 'class = "react"' in text
    assert_ordinary(ws.root)
    assert not (ws.root / ".git" / "REVERT_HEAD").exists()


# --- no process on the hot path --------------------------------------------------------------------


def test_the_per_step_work_starts_no_process(ws: GitWorkspace, started: list[str]) -> None:
    again = GitWorkspace(ws.root)
    again.init()  # the baseline is found in process
    pre = again.head_sha()
    assert again.tree_sha() and again.dirty_paths() == []
    assert again.find_edit_commit("s1", "e1", since=pre) is None
    applied = apply(again, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert again.find_edit_commit("s1", "e1", since=pre) == applied.commit_sha
    assert again.find_revert_commit("s1", "e1", since=applied.commit_sha) is None
    reverted = again.revert(applied.commit_sha, session_id="s1", edit_id="e1")
    assert again.find_revert_commit("s1", "e1", since=applied.commit_sha) == reverted
    assert again.dirty_paths() == []
    assert started == []
    assert_ordinary(ws.root)


def test_a_trailer_search_with_since_reads_only_later_commits(ws: GitWorkspace) -> None:
    old = apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS, "e1")
    pre = ws.head_sha()
    assert ws.find_edit_commit("s1", "e1") == old.commit_sha  # a full scan finds it
    assert ws.find_edit_commit("s1", "e1", since=pre) is None  # nothing after `pre` carries it
    unrelated = "f" * 40  # a sha not in HEAD's history: the whole history is read
    assert ws.find_edit_commit("s1", "e1", since=unrelated) == old.commit_sha


# --- hooks ------------------------------------------------------------------------------------------


def test_the_users_hooks_run_as_git_commit_runs_them(ws: GitWorkspace) -> None:
    log = ws.root.parent / "hooks.log"
    hook(ws.root, "pre-commit", f'echo "pre-commit $GIT_INDEX_FILE" >> {log}\n')
    hook(ws.root, "prepare-commit-msg", f'echo "prepare $2" >> {log}\n')
    hook(ws.root, "commit-msg", f'echo "Signed-off-by: Ada <ada@example.org>" >> "$1"\necho msg >> {log}\n')
    hook(ws.root, "post-commit", f'echo "post $(git rev-parse HEAD)" >> {log}\nexit 3\n')
    applied = apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["pre-commit", "prepare", "msg", "post"]
    assert lines[1] == "prepare message"
    assert lines[3] == f"post {applied.commit_sha}"  # post-commit sees the new HEAD; its status is ignored
    trailers = parse_trailers(git(ws.root, "log", "-1", "--format=%B"))
    assert trailers["Signed-off-by"] == ["Ada <ada@example.org>"] and trailers["Edit-ID"] == ["e1"]
    assert ws.find_edit_commit("s1", "e1") == applied.commit_sha
    assert_ordinary(ws.root)


def test_a_pre_commit_hook_that_refuses_commits_nothing(ws: GitWorkspace) -> None:
    before = ws.head_sha()
    hook(ws.root, "pre-commit", "echo 'no config changes on Fridays' >&2\nexit 1\n")
    with pytest.raises(WorkspaceConflict, match=r"pre-commit hook refused.*Fridays"):
        apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert ws.head_sha() == before and ws.dirty_paths() == []
    assert (ws.root / "config.toml").read_text() == CONFIG
    assert_ordinary(ws.root)


def test_a_commit_msg_hook_that_drops_our_trailers_commits_nothing(ws: GitWorkspace) -> None:
    before = ws.head_sha()
    hook(ws.root, "commit-msg", 'echo "tidy message" > "$1"\n')
    with pytest.raises(WorkspaceConflict, match="removed the trailers"):
        apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert ws.head_sha() == before
    assert_ordinary(ws.root)


def test_a_hook_that_is_not_executable_is_skipped_like_git_skips_it(ws: GitWorkspace) -> None:
    path = hook(ws.root, "pre-commit", "exit 1\n")
    path.chmod(0o644)
    apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert_ordinary(ws.root)


def test_core_hooks_path_is_honoured(ws: GitWorkspace, tmp_path: Path) -> None:
    hooks = tmp_path / "shared-hooks"
    hooks.mkdir()
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    git(ws.root, "config", "core.hooksPath", str(hooks))
    with pytest.raises(WorkspaceConflict, match="pre-commit"):
        apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert_ordinary(ws.root)


# --- identity ---------------------------------------------------------------------------------------


@pytest.fixture
def no_outside_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global or system git config and no identity in the environment."""
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)


def test_commits_use_the_repositorys_identity(ws: GitWorkspace, no_outside_identity: None) -> None:
    git(ws.root, "config", "user.name", "Ada Lovelace")
    git(ws.root, "config", "user.email", "ada@example.org")
    apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert git(ws.root, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "Ada Lovelace <ada@example.org>|Ada Lovelace <ada@example.org>"
    )
    assert_ordinary(ws.root)


def test_the_environment_wins_as_it_does_for_git_commit(
    ws: GitWorkspace, no_outside_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Grace Hopper")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "grace@example.org")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
    apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert git(ws.root, "log", "-1", "--format=%an <%ae> %at|%cn") == (
        "Grace Hopper <grace@example.org> 1767225600|distill_es"  # committer: the repo's user.*
    )


def test_a_repo_without_any_identity_gets_distill_es(root: Path, no_outside_identity: None) -> None:
    git(root, "init", "-q")
    git(root, "add", "config.toml", "agents", "tools")
    git(root, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "user commit")
    ws = GitWorkspace(root)
    ws.init()
    apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert git(root, "log", "-1", "--format=%an <%ae>") == "distill_es <distill_es@localhost>"
    assert_ordinary(root)


# --- failures between the index and HEAD ------------------------------------------------------------


def test_a_failure_after_the_index_was_written_puts_everything_back(
    ws: GitWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = ws.head_sha()

    def no_ref_update(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(git_refs, "move_head", no_ref_update)
    with pytest.raises(OSError, match="disk full"):
        apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    assert ws.head_sha() == before and ws.dirty_paths() == []
    assert_ordinary(ws.root)


def test_a_branch_lock_held_by_git_is_a_conflict_and_nothing_moves(ws: GitWorkspace) -> None:
    before = ws.head_sha()
    branch = git(ws.root, "symbolic-ref", "HEAD")
    lock = ws.root / ".git" / f"{branch}.lock"
    lock.write_text("")
    with pytest.raises(WorkspaceConflict, match=r"\.lock"):
        apply(ws, EditOp.SET_AGENT_PARAM, MAX_TURNS)
    lock.unlink()
    assert ws.head_sha() == before and ws.dirty_paths() == []
    assert git(ws.root, "status", "--porcelain") == ""


def test_a_whole_session_in_a_repo_with_the_users_hooks_and_identity(
    tmp_path: Path, no_outside_identity: None
) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    Engine.open(home, teacher=ScriptedTeacher(world.teacher_reply), student=world.DemoStudent(home)).close()
    git(home, "config", "user.name", "Ada Lovelace")
    git(home, "config", "user.email", "ada@example.org")
    log = tmp_path / "hooks.log"
    hook(home, "pre-commit", f"echo pre >> {log}\n")
    hook(home, "commit-msg", 'echo "Signed-off-by: Ada Lovelace <ada@example.org>" >> "$1"\n')
    hook(home, "post-commit", f"echo post >> {log}\n")
    engine = Engine.open(home, teacher=ScriptedTeacher(world.teacher_reply), student=world.DemoStudent(home))
    try:
        view = engine.run_session(OnDemandTrigger())
        engine.rollback(view.id)
    finally:
        engine.close()
    assert_ordinary(home)
    ours = git(home, "log", "--format=%an|%(trailers:key=Signed-off-by,valueonly)", "--grep=^Edit-ID: ")
    edits = [line for line in ours.splitlines() if line]
    reverts = git(home, "log", "--format=%an", "--grep=^Reverts-Edit-ID: ").splitlines()
    assert len(edits) == 2 and len(reverts) == 2  # edit_001, edit_002; the gate's and the rollback's
    assert all(line.startswith("Ada Lovelace|Ada Lovelace <ada@example.org>") for line in edits)
    assert set(reverts) == {"Ada Lovelace"}
    assert log.read_text().split() == ["pre", "post"] * 4
