"""The caches that keep per-session reads short (the baseline, every commit's trailers) always give
what a full read of HEAD's history gives: after new commits, after HEAD was moved back and
forward by hand, and when the cache file is damaged or missing."""

from __future__ import annotations

from pathlib import Path

from distill_es.domain.vocabulary import EditOp, EditRiskTier
from distill_es.workspace import baseline, trailer_log
from distill_es.workspace.git_workspace import GitWorkspace
from distill_es.workspace.trailer_search import TrailerFinder

from .conftest import git, make_edit


def step(ws: GitWorkspace, value: int, edit_id: str) -> str:
    edit = make_edit(
        EditOp.SET_AGENT_PARAM, {"agent": "simple", "param": "max_turns", "value": value}, edit_id=edit_id
    )
    return ws.apply(edit, session_id="s1", risk_tier=EditRiskTier.AUTO).commit_sha


def full_read(ws: GitWorkspace) -> list[tuple[str, dict[str, list[str]]]]:
    fresh = GitWorkspace(ws.root)
    return TrailerFinder(fresh._odb).all(fresh.head_sha())


def cache(ws: GitWorkspace) -> Path:
    return ws.root / ".git" / trailer_log.CACHE_NAME


def test_commit_trailers_match_a_full_read_as_history_grows(ws: GitWorkspace) -> None:
    assert ws.commit_trailers() == full_read(ws)  # no cache yet
    step(ws, 5, "e1")
    step(ws, 6, "e2")
    assert GitWorkspace(ws.root).commit_trailers() == full_read(ws)  # cache, then two new commits
    assert [t.get("Edit-ID") for _, t in ws.commit_trailers()][:2] == [["e2"], ["e1"]]


def test_a_cache_whose_tip_left_the_history_is_not_used(ws: GitWorkspace) -> None:
    base = ws.head_sha()
    step(ws, 5, "e1")
    ws.commit_trailers()  # cached at e1's commit
    git(ws.root, "reset", "-q", "--hard", base)  # the user drops e1
    step(ws, 7, "e2")
    pairs = GitWorkspace(ws.root).commit_trailers()
    assert pairs == full_read(ws)
    assert all(t.get("Edit-ID") != ["e1"] for _, t in pairs)


def test_a_damaged_cache_is_read_again_from_git(ws: GitWorkspace) -> None:
    step(ws, 5, "e1")
    for junk in ("{not json", '{"tip": 3, "commits": 1}', '{"tip": "' + "a" * 40 + '", "commits": [[1]]}'):
        cache(ws).write_text(junk)
        assert GitWorkspace(ws.root).commit_trailers() == full_read(ws)


def test_the_baseline_cache_follows_history(ws: GitWorkspace) -> None:
    first = ws.init()
    step(ws, 5, "e1")
    assert GitWorkspace(ws.root).init() == first
    (ws.root / ".git" / baseline.CACHE_NAME).write_text("garbage")
    assert GitWorkspace(ws.root).init() == first
    (ws.root / ".git" / baseline.CACHE_NAME).write_text(f"{'b' * 40} {'c' * 40}\n")  # unknown shas
    assert GitWorkspace(ws.root).init() == first
