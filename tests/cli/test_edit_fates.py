"""Every edit has a visible fate: refused at plan time, invalid, apply_failed — each with its reason, in
`run`'s summary, `show`, `show --json`, `review` and `history`, and never labelled `rejected_by_gate`
(that is for a gate that ran and refused the edit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill_es import Engine, OnDemandTrigger
from distill_es.demo import world
from distill_es.demo.dev_servers import create_dev_workspace
from distill_es.domain.errors import InvalidEdit
from distill_es.ports import EditCheck
from distill_es.testing import ScriptedTeacher
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer, tool_uses_reply
from distill_es.workspace.git_workspace import GitWorkspace
from tests.cli.conftest import cli

WIDE = {"COLUMNS": "250"}  # reasons stay on one line
GOOD, _, PATCH = world.EDITS
REFUSED = {
    "e-2": {**PATCH, "id": "e-2", "payload": {"agent": "../../outside", "diff": world.PROMPT_PATCH}},
    "e-3": {**GOOD, "id": "e-3", "op": "teleport_student"},
    "e-4": {**GOOD, "id": "e-4", "payload": {"query_class": 7, "model": ["x"]}},
}


def teacher_refusing_three(request: dict[str, Any]) -> dict[str, Any]:
    """The demo teacher, whose plan also holds three edits the plan must refuse."""
    if (request.get("tool_choice") or {}).get("name") == "submit_plan":
        return tool_uses_reply([("submit_plan", {"edits": [*world.EDITS, *REFUSED.values()]})])
    return world.teacher_reply(request)


@pytest.fixture(scope="module")
def refused_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(home, session id, `run`'s stdout) of a real `run` whose plan refused three edits."""
    with (
        ScriptedAnthropicServer(teacher_refusing_three) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        # not the demo (whose teacher is its cassette): the teacher is the server above
        home = create_dev_workspace(tmp_path_factory.mktemp("fates") / "ws", student_server.base_url)
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher_server.base_url, **WIDE}
        result = cli("--home", home, "run", env=env)
    assert result.exit_code == 0, result.output
    [view] = json.loads(cli("--home", home, "sessions", "--json").stdout)
    return home, view["id"], result.stdout


def test_refused_edits_are_outcomes_with_their_reason_in_json(refused_run: tuple[Path, str, str]) -> None:
    home, sid, _ = refused_run
    view = json.loads(cli("--home", home, "show", sid, "--json").stdout)
    fates = {o["edit_id"]: o for o in view["edit_outcomes"]}
    assert [o["edit_id"] for o in view["edit_outcomes"]][-3:] == ["e-2", "e-3", "e-4"]  # after the plan's
    assert {fates[i]["status"] for i in REFUSED} == {"refused"}
    assert "'../../outside' is not a safe name" in fates["e-2"]["error"]  # the path escaping the workspace
    assert "teleport_student" in fates["e-3"]["error"]  # the unknown op
    assert "query_class: Input should be a valid string" in fates["e-4"]["error"]  # the wrong type
    assert all(fates[i]["risk_tier"] is None and fates[i]["commit_sha"] is None for i in REFUSED)
    # The planned edits keep their fates: only a gate that ran says rejected_by_gate.
    assert {i: fates[i]["status"] for i in ("edit_001", "edit_002", "edit_003")} == {
        "edit_001": "applied",
        "edit_002": "rejected_by_gate",
        "edit_003": "pending_review",
    }
    assert fates["edit_002"]["benchmark_delta"] is not None


def test_run_show_and_review_name_each_refused_edit_and_why(refused_run: tuple[Path, str, str]) -> None:
    home, sid, run_output = refused_run
    show = cli("--home", home, "show", sid, env=WIDE)
    review = cli("--home", home, "review", env=WIDE)
    assert show.exit_code == 0 and review.exit_code == 0, show.output + review.output
    for output in (run_output, show.stdout):
        for edit_id in REFUSED:
            line = next(line for line in output.splitlines() if f" {edit_id} " in line)
            assert "refused" in line, line
        assert "not a safe name" in output and "teleport_student" in output
    assert "edit_003" in review.stdout  # what waits for a reviewer, then what the plan dropped
    for edit_id in REFUSED:
        assert f"session {sid[:8]}: edit {edit_id} refused (" in review.stdout, review.stdout
    assert json.loads(cli("--home", home, "review", "--json").stdout)[0]["edit_id"] == "edit_003"


def test_history_names_the_refused_edits_and_reasons(refused_run: tuple[Path, str, str]) -> None:
    home, sid, _ = refused_run
    entries = json.loads(cli("--home", home, "history", sid, "--json").stdout)
    [plan] = [e["what"] for e in entries if e["what"].startswith("plan frozen")]
    assert plan.startswith("plan frozen: 3 edits accepted, 3 refused: e-2 (edit 'e-2' (patch_system_prompt)")
    assert "; e-3 (invalid edit: op:" in plan and "; e-4 (edit 'e-4'" in plan
    assert plan in cli("--home", home, "history", sid, env=WIDE).stdout


# --- invalid and apply_failed: no gate ran -------------------------------------------------------------


def test_a_failed_check_is_invalid_and_a_failed_apply_is_apply_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    validate, apply = GitWorkspace.validate, GitWorkspace.apply

    def check(self: GitWorkspace, edit: Any) -> EditCheck:
        if edit.id == "edit_002":
            return EditCheck(ok=False, reason="the temperature is already 1.4")
        return validate(self, edit)

    def write(self: GitWorkspace, edit: Any, **kwargs: Any) -> Any:
        if edit.id == "edit_001":
            raise InvalidEdit("config.toml changed under it")
        return apply(self, edit, **kwargs)

    monkeypatch.setattr(GitWorkspace, "validate", check)
    monkeypatch.setattr(GitWorkspace, "apply", write)
    home = world.create_demo_workspace(tmp_path / "ws")
    engine = Engine.open(home, teacher=ScriptedTeacher(world.teacher_reply), student=world.DemoStudent(home))
    try:
        session = engine.run_session(OnDemandTrigger())
    finally:
        engine.close()
    fates = {o.edit_id: (o.status, o.error) for o in session.edit_outcomes}
    assert fates["edit_001"] == ("apply_failed", "apply failed: config.toml changed under it")
    assert fates["edit_002"] == ("invalid", "the temperature is already 1.4")

    view = json.loads(cli("--home", home, "show", session.id, "--json").stdout)
    assert {o["edit_id"]: (o["status"], o["error"]) for o in view["edit_outcomes"]} == fates
    assert all(o["benchmark_delta"] is None for o in view["edit_outcomes"] if o["edit_id"] != "edit_003")
    show = cli("--home", home, "show", session.id, env=WIDE).stdout
    for edit_id, status in (("edit_001", "apply_failed"), ("edit_002", "invalid")):
        line = next(line for line in show.splitlines() if f" {edit_id} " in line)
        assert status in line and "rejected_by_gate" not in line, line
    history = cli("--home", home, "history", session.id, env=WIDE).stdout
    assert "edit edit_001 invalid: apply failed: config.toml changed under it" in history
    assert "plan frozen: 3 edits accepted, 0 refused\n" in history
