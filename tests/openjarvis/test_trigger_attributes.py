"""Trigger objects expose their facts as attributes, as OpenJarvis's trigger dataclasses do, while
what is stored (kind + metadata) and equality stay exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_es import ClusterTrigger, Engine, OnDemandTrigger, ScheduledTrigger, TriggerKind, UserFlagTrigger
from distill_es.demo import world
from distill_es.domain.vocabulary import Trigger


def test_each_trigger_reads_its_facts_as_attributes() -> None:
    flag = UserFlagTrigger(trace_id="t-9")
    assert flag.trace_id == "t-9" and flag.kind == TriggerKind.USER_FLAG
    scheduled = ScheduledTrigger(cron="0 4 * * 1", new_trace_count=12)
    assert (scheduled.cron, scheduled.new_trace_count) == ("0 4 * * 1", 12)
    assert ScheduledTrigger().cron == "0 3 * * *" and ScheduledTrigger().new_trace_count == 0
    cluster = ClusterTrigger("unit errors", trace_ids=["a", "b"], failure_rate=0.4)
    assert (cluster.cluster_description, cluster.trace_ids, cluster.failure_rate) == (
        "unit errors",
        ["a", "b"],
        0.4,
    )
    assert ClusterTrigger("x").trace_ids == [] and ClusterTrigger("x").failure_rate == 0.0


def test_a_fact_a_trigger_does_not_carry_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="on_demand trigger has no 'trace_id'"):
        _ = OnDemandTrigger().trace_id
    assert not hasattr(UserFlagTrigger("t"), "cron")
    assert getattr(ScheduledTrigger(), "failure_rate", None) is None


def test_storage_and_equality_are_unchanged() -> None:
    flag = UserFlagTrigger(trace_id="t-9")
    assert flag == Trigger(kind=TriggerKind.USER_FLAG, metadata={"trace_id": "t-9"})
    assert flag.model_dump(mode="json") == {"kind": "user_flag", "metadata": {"trace_id": "t-9"}}
    assert Trigger.model_validate(flag.model_dump(mode="json")) == flag
    cluster = ClusterTrigger("c", ["a"], 0.5)
    assert cluster.model_dump(mode="json") == {
        "kind": "cluster",
        "metadata": {"cluster_description": "c", "trace_ids": ["a"], "failure_rate": 0.5},
    }
    cluster.trace_ids.append("mutated")  # a copy: the frozen value is untouched
    assert cluster.metadata["trace_ids"] == ["a"]


def test_a_started_session_records_the_trigger_as_before(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "demo")
    engine = Engine.open(home)
    try:
        sid = engine.start(UserFlagTrigger(trace_id="t009"))
        view = engine.get(sid)
        assert view.trigger == TriggerKind.USER_FLAG and view.trigger_metadata == {"trace_id": "t009"}
    finally:
        engine.close()
