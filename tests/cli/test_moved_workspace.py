"""A moved or copied workspace keeps its sessions: its own store (`.distill_es/events.sqlite`) holds
only its sessions whatever path they recorded, so every list shows them after `mv` or `cp -a`; a
shared store still lists each workspace's own sessions by their recorded path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.cli.conftest import Demo, cli, cli_json, run_demo_cli


def listed(home: Path, *extra: str, store: str | None = None) -> list[str]:
    chosen = ["--store", store] if store else []
    return [s["id"] for s in cli_json("--home", home, *chosen, "sessions", *extra)]


def test_a_moved_workspace_lists_reviews_regates_verifies_and_approves_its_session(tmp_path: Path) -> None:
    demo = run_demo_cli(tmp_path / "a")
    moved = tmp_path / "b"
    shutil.move(demo.home, moved)
    sid = demo.session_id
    assert listed(moved) == [sid]
    assert listed(moved, "--status", "awaiting_review") == [sid]
    assert [item["session_id"] for item in cli_json("--home", moved, "review")] == [sid]
    regate = cli_json("--home", moved, "regate", "--all")
    assert [s["session_id"] for s in regate["sessions"]] == [sid]
    assert [r["session_id"] for r in cli_json("--home", moved, "verify") if r["ok"]] == [sid]
    assert cli_json("--home", moved, "show", sid[:8])["id"] == sid
    # A write after the move: the runner works in the new folder, and git anchors still verify.
    [pending] = cli_json("--home", moved, "review")
    approved = cli("--home", moved, "approve", sid, pending["edit_id"], "--by", "me", "--json")
    assert approved.exit_code == 0, approved.output
    assert cli_json("--home", moved, "show", sid)["status"] == "completed"
    assert listed(moved, "--status", "completed") == [sid]
    assert cli_json("--home", moved, "review") == []
    assert all(r["ok"] for r in cli_json("--home", moved, "verify"))
    assert not (tmp_path / "a").exists()  # nothing was written at the old path


def test_each_copy_of_a_workspace_lists_the_session_from_its_own_store(tmp_path: Path) -> None:
    demo = run_demo_cli(tmp_path / "a")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(demo.home), str(copy)], check=True)
    assert listed(demo.home) == listed(copy) == [demo.session_id]
    # Approving in the copy changes only the copy's store.
    [pending] = cli_json("--home", copy, "review")
    approved = cli("--home", copy, "approve", demo.session_id, pending["edit_id"], "--by", "me")
    assert approved.exit_code == 0, approved.output
    assert cli_json("--home", copy, "review") == []
    assert [item["edit_id"] for item in cli_json("--home", demo.home, "review")] == [pending["edit_id"]]


def test_deleting_the_views_of_a_moved_workspace_rebuilds_the_same_list(tmp_path: Path) -> None:
    demo = run_demo_cli(tmp_path / "a")
    moved = tmp_path / "b"
    shutil.move(demo.home, moved)
    before = cli_json("--home", moved, "sessions")
    review = cli_json("--home", moved, "review")
    for views in (moved / ".distill_es").glob("views*.sqlite*"):
        views.unlink()
    assert cli_json("--home", moved, "sessions") == before
    assert cli_json("--home", moved, "review") == review
    assert [s["id"] for s in before] == [demo.session_id]


def shared_demo_in(home: Path, url: str) -> Demo:
    """A demo whose session was moved into the shared store `url` (export, then import --move)."""
    demo = run_demo_cli(home)
    exported = home.parent / f"{home.name}.jsonl"
    assert cli("--home", home, "export", "--all", "--out", exported).exit_code == 0
    moved = cli("--home", home, "import", exported, "--store", url, "--move")
    assert moved.exit_code == 0, moved.output
    return demo


def test_a_shared_store_lists_each_workspace_its_own_sessions_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'events.sqlite'}"
    one = shared_demo_in(tmp_path / "one", url)
    two = shared_demo_in(tmp_path / "two", url)
    assert one.session_id != two.session_id
    assert listed(one.home, store=url) == [one.session_id]
    assert listed(two.home, store=url) == [two.session_id]
    review = cli_json("--home", one.home, "--store", url, "review")
    assert [item["session_id"] for item in review] == [one.session_id]
    assert listed(one.home) == [one.session_id]  # its own store still holds its (old) copy


def store_check(home: Path, url: str) -> dict[str, object]:
    result = cli("--home", home, "--store", url, "doctor", "--json")
    [check] = [c for c in json.loads(result.stdout) if c["name"] == "store"]
    return check


def test_doctor_names_sessions_a_shared_store_recorded_at_the_old_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'events.sqlite'}"
    one = shared_demo_in(tmp_path / "one", url)
    shared_demo_in(tmp_path / "two", url)
    assert store_check(one.home, url)["ok"] is True
    moved = tmp_path / "moved"
    shutil.move(one.home, moved)
    assert listed(moved, store=url) == []  # a shared store keys sessions by their recorded path
    check = store_check(moved, url)
    assert check["ok"] is False
    assert "1 session(s) of this workspace" in str(check["detail"])
    assert str(one.home) in str(check["detail"]) and str(one.home) in str(check["hint"])
    assert "move the workspace back" in str(check["hint"])
    # Its own store is not the owner: doctor with it says nothing of the shared store's paths.
    assert store_check(moved, f"sqlite:///{moved / '.distill_es' / 'events.sqlite'}")["ok"] is True
