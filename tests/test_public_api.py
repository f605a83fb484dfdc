"""The names the contract promises are importable from the package root."""

import distill_es


def test_contract_names() -> None:
    from distill_es import (  # noqa: F401
        AutonomyMode,
        ClusterTrigger,
        EditOp,
        EditPillar,
        EditRiskTier,
        Engine,
        OnDemandTrigger,
        ScheduledTrigger,
        SessionStatus,
        TriggerKind,
        UserFlagTrigger,
    )

    assert Engine.__name__ == "Engine" and callable(Engine.open)
    assert OnDemandTrigger({"a": 1}).kind == TriggerKind.ON_DEMAND
    assert UserFlagTrigger("t1").metadata == {"trace_id": "t1"}
    assert ScheduledTrigger("0 3 * * *", 5).metadata["new_trace_count"] == 5
    assert ClusterTrigger("x", ["t"], 0.5).metadata["failure_rate"] == 0.5
    assert len(EditOp) == 11 and {p.value for p in EditPillar} == {"intelligence", "agent", "tools", "engine"}
    assert set(distill_es.__all__) >= {"Engine", "SessionStatus", "AutonomyMode", "EditRiskTier"}
