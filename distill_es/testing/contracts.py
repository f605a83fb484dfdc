"""The lifecycles as the contract states them, written out by hand for the state machine to check.

Deliberately NOT derived from `lifecycle.MOVES` or `edit_lifecycle.MOVES`: a change to a table that
the contract does not allow shows up as a failing `SessionMachineTest`.
"""

from __future__ import annotations

from typing import Any

from distill_es.domain.vocabulary import BenchmarkSnapshot, LearningPlan
from distill_es.testing.strategies import BOGUS_COMMAND

__all__ = ["CONTRACT", "EDIT_CONTRACT", "TERMINAL_PROBES"]

_F = frozenset
_ROLLBACK_FROM = {"request_rollback", "roll_back_edit"}

# The lifecycle as CONTRACT.md states it, written out by hand — deliberately NOT derived from
# `lifecycle.MOVES`, so a change to the machine that the contract does not allow shows up here.
# state -> {command -> states the session may be in after the command}. Commands that record a fact
# without moving stay in their state.
CONTRACT: dict[str, dict[str, frozenset[str]]] = {
    "initiated": {
        "check_readiness": _F({"initiated"}),
        "begin_diagnosis": _F({"diagnosing"}),
        "fail": _F({"failed"}),
        "cancel": _F({"failed"}),
        "record_interruption": _F({"initiated"}),
    },
    "diagnosing": {
        "record_teacher_call": _F({"diagnosing"}),
        "record_tool_result": _F({"diagnosing"}),
        "submit_diagnosis": _F({"planning"}),
        "fail": _F({"failed"}),
        "cancel": _F({"failed"}),
        "record_interruption": _F({"diagnosing"}),
    },
    "planning": {
        "record_teacher_call": _F({"planning"}),
        "freeze_plan": _F({"executing"}),
        "fail": _F({"failed"}),
        "cancel": _F({"failed"}),
        "record_interruption": _F({"planning"}),
    },
    "executing": {
        **{
            fact: _F({"executing"})
            for fact in (
                "record_teacher_call", "route_edit", "validate_edit", "start_apply", "record_apply",
                "skip_edit", "record_training", "choose_gate_tasks", "record_scores", "capture_benchmark",
                "record_gate", "revert_edit", "record_interruption",
            )
        },
        "await_review": _F({"awaiting_review"}),
        "complete": _F({"completed"}),
        "fail": _F({"failed"}),
        "cancel": _F({"failed"}),
    },
    "awaiting_review": {
        "approve_edit": _F({"executing"}),
        "reject_edit": _F({"executing", "completed"}),  # completed when the last pending edit is decided
        **{fact: _F({"awaiting_review"}) for fact in _ROLLBACK_FROM},
        "roll_back": _F({"rolled_back"}),
    },
    "completed": {
        **{fact: _F({"completed"}) for fact in _ROLLBACK_FROM},
        "roll_back": _F({"rolled_back"}),
    },
    "failed": {
        **{fact: _F({"failed"}) for fact in _ROLLBACK_FROM},
        "roll_back": _F({"rolled_back"}),
    },
    "rolled_back": {},
}  # fmt: skip

# The edit lifecycle as the contract's outcomes imply it, written out by hand — deliberately NOT derived
# from `edit_lifecycle.MOVES`. edit state -> {per-edit command -> states the edit may be in after it}.
EDIT_CONTRACT: dict[str, dict[str, frozenset[str]]] = {
    "planned": {"route_edit": _F({"routed", "queued_for_review"})},
    "routed": {"validate_edit": _F({"validated", "invalid"}), "skip_edit": _F({"skipped"})},
    "queued_for_review": {"approve_edit": _F({"approved"}), "reject_edit": _F({"rejected"})},
    "approved": {"validate_edit": _F({"validated", "invalid"}), "skip_edit": _F({"skipped"})},
    "validated": {
        "start_apply": _F({"apply_started"}),  # files
        "record_training": _F({"trained", "training_rejected", "training_failed"}),  # weights
        "skip_edit": _F({"skipped"}),
    },
    "apply_started": {
        "record_apply": _F({"applied"}),
        "validate_edit": _F({"apply_failed"}),  # applying it failed
        "skip_edit": _F({"skipped"}),
    },
    "applied": {"record_gate": _F({"gated", "gate_rejected"}), "revert_edit": _F({"withdrawn"})},
    "gate_rejected": {"revert_edit": _F({"reverted"})},
    "withdrawn": {"skip_edit": _F({"skipped"})},
    "gated": {"roll_back_edit": _F({"rolled_back"})},
    "trained": {"roll_back_edit": _F({"rolled_back"})},
    **{end: {} for end in (
        "invalid", "apply_failed", "rejected", "reverted", "skipped", "training_rejected", "training_failed",
        "rolled_back",
        "refused",  # entered at plan time (freeze_plan), never moved by a per-edit command
    )},
}  # fmt: skip

_PROBE_SNAPSHOT = BenchmarkSnapshot(benchmark_version="personal_v1", overall_score=0.5, task_count=1)

# Plausible payloads for probing a terminal session with every command (invariants cannot draw).
TERMINAL_PROBES: dict[str, dict[str, Any]] = {
    "check_readiness": {"trace_count": 50, "min_traces": 20, "git_head": None, "git_tree": None},
    "begin_diagnosis": {},
    "record_teacher_call": {
        "call_key": "probe/1", "purpose": "judge", "model": "m", "request_digest": "0" * 64,
        "response": {"content": []}, "usage": {}, "cost_usd": 0.0,
    },
    "record_tool_result": {"call_key": "diagnose/1", "tool_use_id": "toolu_1", "tool": "list_traces",
                           "content": "", "is_error": False},
    "submit_diagnosis": {"markdown": "# d", "clusters": []},
    "freeze_plan": {"plan": LearningPlan(session_id="probe"), "rejected": [], "tier_changes": [],
                    "downgrades": []},
    "route_edit": {"edit_id": "e1", "route": "apply"},
    "validate_edit": {"edit_id": "e1", "ok": True, "reason": ""},
    "start_apply": {"edit_id": "e1", "pre_sha": "a" * 40, "pre_tree": "b" * 40},
    "record_apply": {"edit_id": "e1", "commit_sha": "c" * 40, "tree_sha": "d" * 40, "changed_files": []},
    "skip_edit": {"edit_id": "e1", "reason": "probe"},
    "record_training": {"edit_id": "e1", "run_id": "r1", "state": "dry_run", "deployable": None,
                        "summary": "probe"},
    "choose_gate_tasks": {"seed": 1, "task_ids": []},
    "record_scores": {"tree_sha": "d" * 40, "seed": 1, "student_model": "m", "scores": []},
    "capture_benchmark": {"label": "after", "snapshot": _PROBE_SNAPSHOT},
    "record_gate": {"edit_id": "e1", "before": _PROBE_SNAPSHOT, "after": _PROBE_SNAPSHOT, "delta": 0.0,
                    "cluster_deltas": {}, "accepted": True, "reason": "probe"},
    "revert_edit": {"edit_id": "e1", "revert_sha": "e" * 40, "tree_sha": "f" * 40},
    "approve_edit": {"edit_id": "e1", "reviewer": "probe", "note": ""},
    "reject_edit": {"edit_id": "e1", "reviewer": "probe", "reason": "probe"},
    "await_review": {"git_post": None},
    "complete": {"git_post": None},
    "fail": {"error": "probe", "reason_code": "error"},
    "cancel": {"cancelled_by": "probe", "reason": "probe"},
    "request_rollback": {"requested_by": "probe"},
    "roll_back_edit": {"edit_id": "e1", "revert_sha": "e" * 40},
    "roll_back": {"git_post": None},
    "record_interruption": {"step": "ScoreTree", "role": "student", "endpoint": "http://127.0.0.1:9/v1",
                            "error_class": "APIConnectionError", "error": "probe", "attempts": 1},
    BOGUS_COMMAND: {},
}  # fmt: skip
