"""Experiment spec defaults and fingerprints, and result validation with readable reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_es.domain.training.errors import TrainingSpecInvalid
from distill_es.domain.training.evaluation import promotion, summarize_eval
from distill_es.domain.training.spec import (
    DatasetRef,
    EvalBlock,
    ExpectedArtifact,
    ExperimentSpec,
    Hyperparameters,
    TrainerResult,
    build_spec,
    code_hash,
    parse_result,
    resolve_hyperparameters,
    validate_result,
)


def make_spec(tmp_path: Path, **overrides: object) -> ExperimentSpec:
    fields: dict[str, object] = {
        "experiment_id": "exp-1",
        "run_id": "r1",
        "session_id": "s1",
        "edit_id": "e1",
        "backend": "peft-trl-orpo",
        "target_model_family": "qwen3.5:9b",
        "output_dir": str(tmp_path / "out"),
        "result_path": str(tmp_path / "result.json"),
        "expected_artifact": ExpectedArtifact(checkpoint_name="ckpt"),
        "code_hash": "c" * 64,
    }
    fields.update(overrides)
    spec = build_spec(**fields)
    return spec.with_dataset(DatasetRef(path=str(tmp_path / "d.jsonl"), fingerprint="d" * 64, rows=3))


def result_for(spec: ExperimentSpec, tmp_path: Path, **overrides: object) -> TrainerResult:
    artifact = tmp_path / "out" / "ckpt"
    artifact.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {
        "experiment_id": spec.experiment_id,
        "backend": spec.backend,
        "status": "completed",
        "target_model_family": spec.target_model_family,
        "dataset_fingerprint": spec.dataset.fingerprint if spec.dataset else None,
        "config_fingerprint": spec.config_fingerprint,
        "code_hash": spec.code_hash,
        "artifact": {"artifact_path": "ckpt", "adapter_format": "peft-adapter"},  # relative to output_dir
    }
    data.update(overrides)
    return TrainerResult.model_validate(data)


def test_hyperparameter_defaults_are_the_seeds() -> None:
    assert Hyperparameters().model_dump() == {
        "learning_rate": 3e-4,
        "batch_size": 2,
        "gradient_accumulation": 8,
        "lora_rank": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "warmup_ratio": 0.1,
        "max_steps": 1000,
        "max_seq_length": 2048,
    }


def test_overrides_accept_aliases_and_refuse_unknown_names() -> None:
    assert resolve_hyperparameters({"lr": 1e-4, "rank": 8, "steps": 50}).model_dump() == {
        **Hyperparameters().model_dump(),
        "learning_rate": 1e-4,
        "lora_rank": 8,
        "max_steps": 50,
    }
    with pytest.raises(TrainingSpecInvalid, match=r"unknown hyperparameter.*epochs.*known: batch_size"):
        resolve_hyperparameters({"epochs": 3})
    with pytest.raises(TrainingSpecInvalid, match="learning_rate"):
        resolve_hyperparameters({"lr": -1})


def test_spec_defaults_and_config_fingerprint(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    assert (spec.training_mode, spec.hardware_tier) == ("orpo", "consumer-gpu-24gb")
    assert spec.budget.max_wall_clock_minutes == 240 and spec.budget.max_train_tokens == 2_000_000
    # The fingerprint follows the configuration, and a spec with a stale one is refused.
    other = make_spec(tmp_path, hyperparameters=Hyperparameters(lora_rank=8))
    assert other.config_fingerprint != spec.config_fingerprint
    with pytest.raises(ValueError, match="config_fingerprint does not match"):
        ExperimentSpec.model_validate({**spec.model_dump(), "config_fingerprint": other.config_fingerprint})
    assert make_spec(tmp_path, backend="dry-run").hardware_tier == "cpu"
    with pytest.raises(TrainingSpecInvalid, match="needs a GPU hardware tier"):
        make_spec(tmp_path, backend="unsloth-orpo", hardware_tier="cpu")


def test_code_hash_follows_the_trainer_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print(1)")
    first = code_hash(["python", "train.py"], tmp_path, "0.1.0")
    assert first == code_hash(["python", "train.py"], tmp_path, "0.1.0")  # stable for the same code
    script.write_text("print(2)")
    assert code_hash(["python", "train.py"], tmp_path, "0.1.0") != first
    assert code_hash(None, tmp_path, "0.1.0") != code_hash([], tmp_path, "0.2.0")


def test_an_honest_result_validates(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    assert validate_result(spec, result_for(spec, tmp_path)) == []


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"experiment_id": "exp-2"}, "experiment_id: expected 'exp-1', got 'exp-2'"),
        ({"backend": "unsloth-orpo"}, "backend: expected 'peft-trl-orpo', got 'unsloth-orpo'"),
        ({"target_model_family": "llama3"}, "target_model_family: expected 'qwen3.5:9b', got 'llama3'"),
        ({"dataset_fingerprint": "e" * 64}, "dataset_fingerprint: expected 'ddd"),
        ({"config_fingerprint": "0" * 64}, "config_fingerprint: expected"),
        ({"code_hash": "0" * 64}, "code_hash: expected 'ccc"),
        ({"train_tokens": 3_000_000}, "train_tokens: 3000000 exceed the budget of 2000000"),
        ({"artifact": None}, "artifact: a completed result must name it"),
        (
            {"artifact": {"artifact_path": "/nope", "adapter_format": "peft-adapter"}},
            "artifact.artifact_path: '/nope' does not exist",
        ),
        (
            {"artifact": {"artifact_path": "ckpt", "adapter_format": "gguf-lora"}},
            "artifact.adapter_format: expected 'peft-adapter', got 'gguf-lora'",
        ),
    ],
)
def test_each_lie_has_a_clear_reason(tmp_path: Path, override: dict[str, object], reason: str) -> None:
    spec = make_spec(tmp_path)
    problems = validate_result(spec, result_for(spec, tmp_path, **override))
    assert len(problems) == 1 and problems[0].startswith(reason)


def test_dry_run_backend_must_not_claim_a_checkpoint(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, backend="dry-run")
    problems = validate_result(spec, result_for(spec, tmp_path))
    assert problems == ["status: backend 'dry-run' must not report a trained checkpoint ('completed')"]


def test_parse_result_names_the_bad_fields() -> None:
    reason = parse_result({"status": "finished", "backend": "x"})
    assert isinstance(reason, str)
    assert "experiment_id: Field required" in reason and "status:" in reason


@pytest.mark.parametrize(
    ("candidate", "baseline", "verdict", "deployable"),
    [
        (0.8, 0.5, "pass", True),
        (0.5, 0.5, "fail", False),
        (0.4, 0.5, "fail", False),
        (0.7, None, "compare_only", True),
    ],
)
def test_eval_verdict_and_promotion(
    candidate: float, baseline: float | None, verdict: str, deployable: bool
) -> None:
    summary = summarize_eval(EvalBlock(candidate_score=candidate), baseline, 0.0)
    assert summary.verdict == verdict
    assert summary.delta == (None if baseline is None else round(candidate - baseline, 6))
    assert promotion(summary.verdict)[0] is deployable


def test_no_eval_block_fails_the_gate() -> None:
    summary = summarize_eval(None, 0.5, 0.0)
    assert (summary.verdict, summary.candidate_score) == ("fail", None)
    assert "no eval" in summary.reason
    assert summarize_eval(EvalBlock(candidate_score=0.55), 0.5, 0.1).verdict == "fail"  # below min_delta
