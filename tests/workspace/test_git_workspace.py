"""GitWorkspace against real temp repos: baseline, commits with trailers, exact reverts, restore."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from distill_es.domain.errors import InvalidEdit, OpNotAvailable, WorkspaceConflict, WorkspaceError
from distill_es.domain.vocabulary import EditOp, EditRiskTier
from distill_es.ports import Workspace
from distill_es.workspace.appliers import APPLIERS
from distill_es.workspace.commit_messages import parse_trailers
from distill_es.workspace.git_workspace import GitWorkspace

from .conftest import CONFIG, ENGINE_FILES, PROMPT, git, make_edit, snapshot

SHA = re.compile(r"^[0-9a-f]{40}$")
DIFF = "@@ -2,1 +2,2 @@\n-Answer briefly.\n+Answer briefly.\n+Show your work.\n"

# One valid edit per file-writing op, as the engine would receive them.
EDITS: dict[EditOp, dict[str, Any]] = {
    EditOp.SET_MODEL_FOR_QUERY_CLASS: {"query_class": "math", "model": "qwen3.5:9b"},
    EditOp.SET_MODEL_PARAM: {"model": "qwen3.5:9b", "param": "temperature", "value": 0.2},
    EditOp.PATCH_SYSTEM_PROMPT: {"agent": "simple", "diff": DIFF},
    EditOp.REPLACE_SYSTEM_PROMPT: {"agent": "simple", "new_content": "Be terse.\n"},
    EditOp.SET_AGENT_CLASS: {"agent": "simple", "new_class": "react"},
    EditOp.SET_AGENT_PARAM: {"agent": "simple", "param": "max_turns", "value": 5},
    EditOp.EDIT_FEW_SHOT_EXEMPLARS: {"agent": "simple", "exemplars": [{"user": "q", "assistant": "a"}]},
    EditOp.ADD_TOOL_TO_AGENT: {"agent": "simple", "tool_name": "search"},
    EditOp.REMOVE_TOOL_FROM_AGENT: {"agent": "simple", "tool_name": "web_search"},
    EditOp.EDIT_TOOL_DESCRIPTION: {"tool_name": "calculator", "new_description": 'Adds "numbers".'},
}


def commit_count(root: Path) -> int:
    return int(git(root, "rev-list", "--count", "HEAD"))


def apply(ws: GitWorkspace, op: EditOp, payload: dict[str, Any], edit_id: str = "e1", session: str = "s1"):
    return ws.apply(make_edit(op, payload, edit_id=edit_id), session_id=session, risk_tier=EditRiskTier.AUTO)


def test_it_is_a_workspace() -> None:
    assert isinstance(GitWorkspace(Path(".")), Workspace)
    assert set(APPLIERS) - set(EDITS) == {EditOp.LORA_FINETUNE}


# --- init ---------------------------------------------------------------------------------------


def test_init_makes_one_baseline_and_is_idempotent(root: Path) -> None:
    ws = GitWorkspace(root)
    baseline = ws.init()
    assert SHA.match(baseline)
    assert baseline == git(root, "rev-parse", "HEAD") == ws.head_sha()
    assert ws.init() == baseline
    assert commit_count(root) == 1
    assert git(root, "config", "user.name") == "distill_es"
    assert git(root, "config", "user.email") == "distill_es@localhost"
    tracked = git(root, "ls-files").splitlines()
    assert tracked == [
        ".gitignore",
        "agents/simple/system_prompt.md",
        "config.toml",
        "tools/descriptions.toml",
    ]
    assert ws.tree_sha() == git(root, "rev-parse", "HEAD^{tree}")


def test_engine_files_never_make_the_tree_dirty(ws: GitWorkspace) -> None:
    root = ws.root
    (root / ".distill_es" / "blobs").mkdir()
    (root / ".distill_es" / "blobs" / "x").write_text("blob")
    (root / "traces.jsonl").write_text("changed\n")
    (root / "traces.db-shm").write_text("")
    (root / "benchmark.jsonl").write_text("changed\n")
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert ws.dirty_paths() == []
    # anchored patterns: a file of the same name inside the tracked paths is not hidden
    (root / "agents" / "simple" / "traces.jsonl").write_text("x")
    assert ws.dirty_paths() == ["agents/simple/traces.jsonl"]


def test_init_merges_an_existing_gitignore_and_repo(root: Path) -> None:
    git(root, "init", "-q")
    (root / ".gitignore").write_text("*.pyc\n/traces.jsonl")  # user's own, no final newline
    git(root, "add", ".gitignore")
    git(root, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "user commit")
    ws = GitWorkspace(root)
    baseline = ws.init()
    lines = (root / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["*.pyc", "/traces.jsonl"]
    assert lines.count("/traces.jsonl") == 1
    assert {"/.distill_es/", "/traces.db*", "/benchmark.jsonl", "/distill_es.toml"} <= set(lines)
    assert commit_count(root) == 2 and ws.init() == baseline
    assert git(root, "log", "-1", "--format=%an <%ae>") == "distill_es <distill_es@localhost>"


def test_operations_before_init_say_so(root: Path) -> None:
    ws = GitWorkspace(root)
    with pytest.raises(WorkspaceError, match="run init"):
        ws.head_sha()
    with pytest.raises(WorkspaceError, match="does not exist"):
        GitWorkspace(root / "nope").init()


# --- apply --------------------------------------------------------------------------------------


def test_apply_commits_with_trailers(ws: GitWorkspace) -> None:
    edit = make_edit(EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM], edit_id="edit-7")
    applied = ws.apply(edit, session_id="sess-1", risk_tier=EditRiskTier.AUTO)
    assert SHA.match(applied.commit_sha) and applied.commit_sha == git(ws.root, "rev-parse", "HEAD")
    assert applied.tree_sha == git(ws.root, "rev-parse", "HEAD^{tree}") == ws.tree_sha()
    assert applied.changed_files == ["config.toml"]
    message = git(ws.root, "log", "-1", "--format=%B")
    assert message.splitlines()[0].startswith("set_agent_param:")
    assert message.endswith("Edit-ID: edit-7\nSession-ID: sess-1\nRisk-Tier: auto\nOp: set_agent_param")
    assert parse_trailers(message) == {
        "Edit-ID": ["edit-7"],
        "Session-ID": ["sess-1"],
        "Risk-Tier": ["auto"],
        "Op": ["set_agent_param"],
    }
    # git itself reads the same trailers
    assert "Edit-ID: edit-7" in git(ws.root, "log", "-1", "--format=%(trailers:only)")
    assert ws.dirty_paths() == []


@pytest.mark.parametrize("op", list(EDITS))
def test_each_op_applies_and_reverts_byte_identically(ws: GitWorkspace, op: EditOp) -> None:
    before = snapshot(ws.root)
    pre = ws.head_sha()
    assert ws.validate(make_edit(op, EDITS[op])).ok
    applied = apply(ws, op, EDITS[op], edit_id=f"{op.value}-1", session="sess-1")
    assert snapshot(ws.root) != before
    assert ws.find_edit_commit("sess-1", f"{op.value}-1") == applied.commit_sha
    assert git(ws.root, "rev-parse", "HEAD~1") == pre

    revert_sha = ws.revert(applied.commit_sha, session_id="sess-1", edit_id=f"{op.value}-1")
    assert SHA.match(revert_sha) and revert_sha == ws.head_sha()
    assert snapshot(ws.root) == before
    assert git(ws.root, "rev-parse", "HEAD^{tree}") == git(ws.root, "rev-parse", f"{pre}^{{tree}}")
    assert ws.find_revert_commit("sess-1", f"{op.value}-1") == revert_sha
    assert parse_trailers(git(ws.root, "log", "-1", "--format=%B")) == {
        "Reverts-Edit-ID": [f"{op.value}-1"],
        "Session-ID": ["sess-1"],
        "Reverted-Commit": [applied.commit_sha],
    }
    assert ws.dirty_paths() == []


def test_apply_refuses_when_tracked_files_are_dirty(ws: GitWorkspace) -> None:
    (ws.root / "config.toml").write_text(CONFIG + "# hand edit\n")
    (ws.root / "agents" / "simple" / "notes.md").write_text("untracked")
    assert ws.dirty_paths() == ["agents/simple/notes.md", "config.toml"]
    with pytest.raises(WorkspaceConflict, match=r"agents/simple/notes.md, config.toml"):
        apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM])
    assert commit_count(ws.root) == 1
    assert (ws.root / "config.toml").read_text() == CONFIG + "# hand edit\n"  # the user's work is kept


def test_a_users_staged_files_stay_out_of_engine_commits(ws: GitWorkspace) -> None:
    (ws.root / "README.md").write_text("mine")
    git(ws.root, "add", "README.md")
    applied = apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM])
    assert applied.changed_files == ["config.toml"]
    assert git(ws.root, "diff", "--cached", "--name-only") == "README.md"  # still staged, not committed
    # The revert writes the parent's blobs for our paths only: their staged file stays staged.
    reverted = ws.revert(applied.commit_sha, session_id="s1", edit_id="e1")
    assert git(ws.root, "show", "--name-only", "--format=", reverted) == "config.toml"
    assert git(ws.root, "diff", "--cached", "--name-only") == "README.md"


def test_missing_and_empty_tracked_directories(root: Path) -> None:
    shutil.rmtree(root / "tools")
    (root / "agents" / "empty").mkdir()
    ws = GitWorkspace(root)
    ws.init()
    applied = apply(ws, EditOp.EDIT_TOOL_DESCRIPTION, EDITS[EditOp.EDIT_TOOL_DESCRIPTION])
    assert applied.changed_files == ["tools/descriptions.toml"]
    ws.revert(applied.commit_sha, session_id="s1", edit_id="e1")
    assert not (root / "tools" / "descriptions.toml").exists()
    assert ws.dirty_paths() == []


def test_staged_changes_are_dirty_too(ws: GitWorkspace) -> None:
    (ws.root / "tools" / "new.toml").write_text("")
    git(ws.root, "add", "tools/new.toml")
    assert ws.dirty_paths() == ["tools/new.toml"]


def test_an_edit_that_changes_nothing_makes_no_commit(ws: GitWorkspace) -> None:
    with pytest.raises(InvalidEdit, match="changes nothing"):
        apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 3})
    assert commit_count(ws.root) == 1 and ws.dirty_paths() == []


def test_invalid_edit_writes_nothing_and_commits_nothing(ws: GitWorkspace) -> None:
    before = snapshot(ws.root.parent)
    with pytest.raises(InvalidEdit, match="not a safe name"):
        apply(ws, EditOp.REPLACE_SYSTEM_PROMPT, {"agent": "../../x", "new_content": "pwned"})
    assert snapshot(ws.root.parent) == before
    assert commit_count(ws.root) == 1


def test_a_failed_commit_puts_the_files_back(ws: GitWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_commit(message: str, **options: Any) -> None:
        raise WorkspaceError("disk full")

    monkeypatch.setattr(ws, "_commit", broken_commit)
    with pytest.raises(WorkspaceError, match="disk full"):
        apply(ws, EditOp.EDIT_FEW_SHOT_EXEMPLARS, EDITS[EditOp.EDIT_FEW_SHOT_EXEMPLARS])
    assert not (ws.root / "agents/simple/few_shot.json").exists()
    assert ws.dirty_paths() == [] and commit_count(ws.root) == 1


def test_lora_makes_no_commit(ws: GitWorkspace) -> None:
    with pytest.raises(OpNotAvailable, match="changes weights, not files"):
        apply(ws, EditOp.LORA_FINETUNE, {"target_model": "qwen3.5:9b"})
    assert commit_count(ws.root) == 1 and ws.dirty_paths() == []


@pytest.mark.parametrize(
    ("edit_id", "session"), [("e1\nSession-ID: s2", "s1"), ("e1", "s1\n"), ("e1", " s1")]
)
def test_ids_that_cannot_be_trailers_are_refused(ws: GitWorkspace, edit_id: str, session: str) -> None:
    with pytest.raises(InvalidEdit, match="trailer"):
        apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM], edit_id=edit_id, session=session)
    assert commit_count(ws.root) == 1


def test_preview_and_validate_delegate(ws: GitWorkspace) -> None:
    edit = make_edit(EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM])
    assert "+max_turns = 5" in ws.preview(edit)
    bad = make_edit(EditOp.SET_AGENT_PARAM, {"agent": "ghost", "param": "x", "value": 1})
    assert not ws.validate(bad).ok


# --- finding commits ----------------------------------------------------------------------------


def test_trailers_match_exactly(ws: GitWorkspace) -> None:
    a = apply(
        ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 4}, "e1", "sess-10"
    )
    b = apply(
        ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 5}, "e10", "sess-1"
    )
    assert ws.find_edit_commit("sess-10", "e1") == a.commit_sha
    assert ws.find_edit_commit("sess-1", "e10") == b.commit_sha
    assert ws.find_edit_commit("sess-1", "e1") is None  # the reference's --grep found sess-10's commit
    assert ws.find_edit_commit("sess-", "e1") is None
    assert ws.find_edit_commit("sess.1", "e10") is None  # not a regex either
    assert ws.find_revert_commit("sess-10", "e1") is None


# --- revert -------------------------------------------------------------------------------------


def test_revert_undoes_only_that_commit(ws: GitWorkspace) -> None:
    first = apply(ws, EditOp.ADD_TOOL_TO_AGENT, EDITS[EditOp.ADD_TOOL_TO_AGENT], "e1")
    apply(ws, EditOp.REPLACE_SYSTEM_PROMPT, EDITS[EditOp.REPLACE_SYSTEM_PROMPT], "e2")
    ws.revert(first.commit_sha, session_id="s1", edit_id="e1")
    assert (ws.root / "config.toml").read_text() == CONFIG
    assert (ws.root / "agents/simple/system_prompt.md").read_text() == "Be terse.\n"


def test_revert_is_idempotent(ws: GitWorkspace) -> None:
    applied = apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM])
    first = ws.revert(applied.commit_sha, session_id="s1", edit_id="e1")
    count = commit_count(ws.root)
    assert ws.revert(applied.commit_sha, session_id="s1", edit_id="e1") == first
    assert commit_count(ws.root) == count


def test_revert_conflict_leaves_the_repo_clean(ws: GitWorkspace) -> None:
    first = apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 5}, "e1")
    apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 7}, "e2")
    head, text = ws.head_sha(), (ws.root / "config.toml").read_text()
    with pytest.raises(WorkspaceConflict, match=r"cannot revert edit 'e1'.*config.toml.*left unchanged"):
        ws.revert(first.commit_sha, session_id="s1", edit_id="e1")
    assert ws.head_sha() == head
    assert (ws.root / "config.toml").read_text() == text
    assert "<<<<<<<" not in text
    assert git(ws.root, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (Path(git(ws.root, "rev-parse", "--absolute-git-dir")) / "REVERT_HEAD").exists()
    # and the workspace still works
    apply(ws, EditOp.ADD_TOOL_TO_AGENT, EDITS[EditOp.ADD_TOOL_TO_AGENT], "e3")


def test_revert_checks_the_commit(ws: GitWorkspace) -> None:
    applied = apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM], "e1")
    with pytest.raises(WorkspaceConflict, match="not the commit of edit 'e2'"):
        ws.revert(applied.commit_sha, session_id="s1", edit_id="e2")
    with pytest.raises(WorkspaceError, match="full 40-hex"):
        ws.revert(applied.commit_sha[:7], session_id="s1", edit_id="e1")
    with pytest.raises(WorkspaceError, match="does not exist"):
        ws.revert("0" * 40, session_id="s1", edit_id="e1")


def test_revert_refuses_a_dirty_tree(ws: GitWorkspace) -> None:
    applied = apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM])
    (ws.root / "tools" / "scratch.toml").write_text("")
    with pytest.raises(WorkspaceConflict, match=r"tools/scratch\.toml"):
        ws.revert(applied.commit_sha, session_id="s1", edit_id="e1")


def test_revert_of_a_change_already_undone_is_still_recorded(ws: GitWorkspace) -> None:
    applied = apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 5}, "e1")
    apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 3}, "e2")
    sha = ws.revert(applied.commit_sha, session_id="s1", edit_id="e1")
    assert ws.find_revert_commit("s1", "e1") == sha
    assert (ws.root / "config.toml").read_text() == CONFIG


# --- restore / crash reconciliation -------------------------------------------------------------


def test_restore_after_a_write_without_commit(ws: GitWorkspace) -> None:
    """Crash between the file write and the commit: restore(pre_sha), then apply again."""
    pre = ws.head_sha()
    before = snapshot(ws.root)
    edit = make_edit(EditOp.EDIT_FEW_SHOT_EXEMPLARS, EDITS[EditOp.EDIT_FEW_SHOT_EXEMPLARS])
    APPLIERS[edit.op].apply(edit, ws.root)  # the write happened...
    (ws.root / "agents/simple/.few_shot.json.x.distill_es-tmp").write_text("torn")  # ...and a torn temp file
    assert ws.find_edit_commit("s1", "e1") is None  # ...but no commit
    assert ws.dirty_paths() == [
        "agents/simple/.few_shot.json.x.distill_es-tmp",
        "agents/simple/few_shot.json",
    ]
    ws.restore(pre)
    assert ws.dirty_paths() == [] and ws.head_sha() == pre
    assert snapshot(ws.root) == before
    applied = ws.apply(edit, session_id="s1", risk_tier=EditRiskTier.REVIEW)
    assert ws.find_edit_commit("s1", "e1") == applied.commit_sha


def test_restore_to_an_older_sha_keeps_head(ws: GitWorkspace) -> None:
    baseline = ws.head_sha()
    apply(ws, EditOp.EDIT_FEW_SHOT_EXEMPLARS, EDITS[EditOp.EDIT_FEW_SHOT_EXEMPLARS], "e1")
    applied = apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM], "e2")
    ws.restore(baseline)
    assert ws.head_sha() == applied.commit_sha
    assert (ws.root / "config.toml").read_text() == CONFIG
    assert not (ws.root / "agents/simple/few_shot.json").exists()
    assert ws.dirty_paths() == ["agents/simple/few_shot.json", "config.toml"]
    ws.restore(applied.commit_sha)
    assert ws.dirty_paths() == []


def test_restore_brings_back_deleted_directories_and_clears_a_half_revert(ws: GitWorkspace) -> None:
    first = apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 5}, "e1")
    apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 7}, "e2")
    head = ws.head_sha()
    with pytest.raises(Exception):  # noqa: B017 - a crash mid-revert leaves git's state behind
        git(ws.root, "revert", "--no-commit", first.commit_sha)
    shutil.rmtree(ws.root / "tools")
    ws.restore(head)
    assert ws.dirty_paths() == []
    assert (ws.root / "tools/descriptions.toml").exists()
    assert not (Path(git(ws.root, "rev-parse", "--absolute-git-dir")) / "REVERT_HEAD").exists()


def test_apply_after_a_crash_left_a_revert_state_behind(ws: GitWorkspace) -> None:
    first = apply(ws, EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": 5}, "e1")
    git_dir = Path(git(ws.root, "rev-parse", "--absolute-git-dir"))
    (git_dir / "REVERT_HEAD").write_text(first.commit_sha + "\n")  # as a crash after restore would leave it
    applied = apply(ws, EditOp.SET_AGENT_CLASS, EDITS[EditOp.SET_AGENT_CLASS], "e2")
    assert applied.changed_files == ["config.toml"] and ws.dirty_paths() == []
    assert not (git_dir / "REVERT_HEAD").exists()
    assert git(ws.root, "rev-list", "--count", "HEAD") == "3"


def test_inherited_git_dir_does_not_redirect_the_workspace(
    ws: GitWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    applied = apply(ws, EditOp.SET_AGENT_PARAM, EDITS[EditOp.SET_AGENT_PARAM])
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert git(ws.root, "rev-parse", "HEAD") == applied.commit_sha
    assert git(other, "rev-list", "--all") == ""


def test_read_prompt(ws: GitWorkspace) -> None:
    assert ws.read_prompt("simple") == PROMPT
    assert ws.read_prompt("nobody") is None  # no prompt file: not the same as an empty one
    (ws.root / "agents" / "empty").mkdir(parents=True)
    (ws.root / "agents" / "empty" / "system_prompt.md").write_text("", encoding="utf-8")
    assert ws.read_prompt("empty") == ""
    with pytest.raises(InvalidEdit):
        ws.read_prompt("../../etc")
    assert set(ENGINE_FILES) <= set(snapshot(ws.root))
