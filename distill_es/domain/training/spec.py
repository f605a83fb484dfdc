"""The experiment spec a trainer receives, the result it must return, and the check between them.

The spec is ORPO-first (the seed's only training mode). Its `config_fingerprint` covers everything
that decides *what* is trained (backend, mode, model family, hyperparameters); the `code_hash` covers
*what trains it* (the trainer command and its script files). A trainer echoes the experiment id,
backend, model family and all three fingerprints in its result; `validate_result` refuses any result
that does not, before anything is registered.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill_es.domain.chain import canonical_json
from distill_es.domain.payloads import describe_validation
from distill_es.domain.training.errors import TrainingSpecInvalid
from distill_es.domain.vocabulary import Value

SPEC_SCHEMA_VERSION = 1
Backend = Literal["peft-trl-orpo", "unsloth-orpo", "dry-run"]
TrainingMode = Literal["orpo"]
HardwareTier = Literal["cpu", "consumer-gpu-24gb", "datacenter-gpu"]
AdapterFormat = Literal["peft-adapter", "safetensors", "gguf-lora"]
ResultStatus = Literal["completed", "failed", "dry_run"]

DEFAULT_HARDWARE_TIER: dict[str, HardwareTier] = {
    "peft-trl-orpo": "consumer-gpu-24gb",
    "unsloth-orpo": "consumer-gpu-24gb",
    "dry-run": "cpu",
}
GPU_ONLY_BACKENDS = frozenset({"unsloth-orpo"})  # unsloth's kernels need CUDA
_SHA256_HEX = r"^[0-9a-f]{64}$"


class Hyperparameters(Value):
    """ORPO defaults from the seed: conservative for one consumer GPU (24 GB)."""

    learning_rate: float = Field(default=3e-4, gt=0, lt=1)
    batch_size: int = Field(default=2, ge=1, le=1024)
    gradient_accumulation: int = Field(default=8, ge=1, le=1024)
    lora_rank: int = Field(default=16, ge=1, le=1024)
    lora_alpha: int = Field(default=32, ge=1, le=4096)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_steps: int = Field(default=1000, ge=1, le=10_000_000)
    max_seq_length: int = Field(default=2048, ge=16, le=1_048_576)


# Names a teacher may plausibly use in a `lora_finetune` payload, mapped to the spec's names.
HYPERPARAMETER_ALIASES: dict[str, str] = {
    "lr": "learning_rate",
    "batch": "batch_size",
    "grad_accum": "gradient_accumulation",
    "gradient_accumulation_steps": "gradient_accumulation",
    "rank": "lora_rank",
    "r": "lora_rank",
    "alpha": "lora_alpha",
    "dropout": "lora_dropout",
    "warmup": "warmup_ratio",
    "steps": "max_steps",
    "seq_len": "max_seq_length",
    "max_seq_len": "max_seq_length",
}


class Budget(Value):
    max_wall_clock_minutes: float = Field(default=240.0, gt=0)  # the trainer is killed after this
    max_train_tokens: int = Field(default=2_000_000, ge=1)


class DatasetRef(Value):
    path: str
    fingerprint: str = Field(pattern=_SHA256_HEX)
    rows: int = Field(ge=0)


class ExpectedArtifact(Value):
    checkpoint_name: str
    adapter_format: AdapterFormat = "peft-adapter"


class ExperimentSpec(Value):
    schema_version: int = SPEC_SCHEMA_VERSION
    experiment_id: str = Field(min_length=1)
    run_id: str
    session_id: str
    edit_id: str
    backend: Backend
    training_mode: TrainingMode = "orpo"
    target_model_family: str = Field(min_length=1, max_length=200)
    hardware_tier: HardwareTier
    dataset: DatasetRef | None = None  # filled in once the dataset is exported
    benchmark_path: str | None = None  # the personal benchmark, for the trainer's own eval
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    budget: Budget = Field(default_factory=Budget)
    output_dir: str
    result_path: str  # the fallback result file (used when stdout is empty)
    expected_artifact: ExpectedArtifact
    config_fingerprint: str = Field(pattern=_SHA256_HEX)
    code_hash: str = Field(pattern=_SHA256_HEX)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.backend in GPU_ONLY_BACKENDS and self.hardware_tier == "cpu":
            raise ValueError(f"backend {self.backend!r} needs a GPU hardware tier, not 'cpu'")
        expected = config_fingerprint(
            self.backend, self.training_mode, self.target_model_family, self.hyperparameters
        )
        if self.config_fingerprint != expected:
            raise ValueError("config_fingerprint does not match the spec's configuration")
        return self

    def with_dataset(self, dataset: DatasetRef) -> ExperimentSpec:
        return self.model_copy(update={"dataset": dataset})

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def config_fingerprint(
    backend: str, training_mode: str, target_model_family: str, hyperparameters: Hyperparameters
) -> str:
    material = {
        "backend": backend,
        "training_mode": training_mode,
        "target_model_family": target_model_family,
        "hyperparameters": hyperparameters.model_dump(mode="json"),
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def code_hash(trainer_command: list[str] | None, cwd: Path, version: str) -> str:
    """sha256 over the trainer argv, the contents of every argv element that is a file, and our version.

    A changed trainer script gives a new hash, so a checkpoint always names the code that made it.
    """
    files: dict[str, str] = {}
    for arg in trainer_command or []:
        path = Path(arg) if Path(arg).is_absolute() else cwd / arg
        try:
            if path.is_file():
                files[arg] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:  # unreadable: the argv itself is still hashed
            continue
    material = {"argv": trainer_command, "files": files, "distill_es": version}
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def resolve_hyperparameters(overrides: dict[str, Any]) -> Hyperparameters:
    """Seed defaults with the payload's overrides (aliases allowed); unknown names are refused."""
    known = set(Hyperparameters.model_fields)
    data: dict[str, Any] = {}
    unknown = []
    for key, value in overrides.items():
        name = HYPERPARAMETER_ALIASES.get(key, key)
        if name in known:
            data[name] = value
        else:
            unknown.append(key)
    if unknown:
        raise TrainingSpecInvalid(
            f"unknown hyperparameter(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))} "
            f"(aliases: {', '.join(sorted(HYPERPARAMETER_ALIASES))})"
        )
    try:
        return Hyperparameters.model_validate(data)
    except ValidationError as exc:
        raise TrainingSpecInvalid(f"hyperparameters: {describe_validation(exc)}") from None


def build_spec(**fields: Any) -> ExperimentSpec:
    """An `ExperimentSpec` from keyword fields (the config fingerprint is computed here)."""
    hyper = fields.get("hyperparameters") or Hyperparameters()
    backend = fields["backend"]
    fields.setdefault("hardware_tier", DEFAULT_HARDWARE_TIER.get(backend, "cpu"))
    fields["hyperparameters"] = hyper
    fields["config_fingerprint"] = config_fingerprint(
        backend, fields.get("training_mode", "orpo"), fields["target_model_family"], hyper
    )
    try:
        return ExperimentSpec.model_validate(fields)
    except ValidationError as exc:
        raise TrainingSpecInvalid(f"experiment spec: {describe_validation(exc)}") from None


# --- the trainer's result ------------------------------------------------------------------------


class Artifact(Value):
    artifact_path: str = Field(min_length=1)
    adapter_format: AdapterFormat


class EvalBlock(Value):
    """The trainer's own evaluation of the candidate (e.g. on the spec's benchmark)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    candidate_score: float = Field(ge=0.0, le=1.0)
    baseline_score: float | None = Field(default=None, ge=0.0, le=1.0)  # informational only
    benchmark_id: str | None = None
    mode: str | None = None
    task_count: int | None = Field(default=None, ge=0)


class TrainerResult(BaseModel):
    """What a trainer prints on stdout (or writes to the result file). Unknown keys are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    experiment_id: str
    backend: str
    status: ResultStatus
    target_model_family: str
    dataset_fingerprint: str | None = None
    config_fingerprint: str
    code_hash: str
    checkpoint_id: str | None = None
    artifact: Artifact | None = None
    metrics: dict[str, float | int | str | None] = Field(default_factory=dict)
    eval: EvalBlock | None = None
    train_tokens: int | None = Field(default=None, ge=0)
    failure_reason: str | None = None
    created_at: str | None = None


def parse_result(data: Any) -> TrainerResult | str:
    """The result as a model, or a one-line reason it does not fit the protocol."""
    try:
        return TrainerResult.model_validate(data)
    except ValidationError as exc:
        return f"the trainer's result does not fit the protocol: {describe_validation(exc, limit=5)}"


def _mismatch(field: str, expected: Any, got: Any) -> str:
    return f"{field}: expected {expected!r}, got {got!r}"


def validate_result(spec: ExperimentSpec, result: TrainerResult) -> list[str]:
    """Every way `result` disagrees with `spec`; empty when it may be registered."""
    problems = []
    identity = [
        ("experiment_id", spec.experiment_id, result.experiment_id),
        ("backend", spec.backend, result.backend),
        ("target_model_family", spec.target_model_family, result.target_model_family),
        ("config_fingerprint", spec.config_fingerprint, result.config_fingerprint),
        ("code_hash", spec.code_hash, result.code_hash),
    ]
    if spec.dataset is not None:
        identity.append(("dataset_fingerprint", spec.dataset.fingerprint, result.dataset_fingerprint))
    problems.extend(_mismatch(f, want, got) for f, want, got in identity if want != got)
    if result.train_tokens is not None and result.train_tokens > spec.budget.max_train_tokens:
        problems.append(
            f"train_tokens: {result.train_tokens} exceed the budget of {spec.budget.max_train_tokens}"
        )
    if result.status == "completed":
        if spec.backend == "dry-run":
            problems.append("status: backend 'dry-run' must not report a trained checkpoint ('completed')")
        if result.artifact is None:
            problems.append("artifact: a completed result must name it (artifact_path, adapter_format)")
        else:
            if result.artifact.adapter_format != spec.expected_artifact.adapter_format:
                problems.append(
                    _mismatch("artifact.adapter_format", spec.expected_artifact.adapter_format,
                              result.artifact.adapter_format)
                )  # fmt: skip
            if not artifact_location(spec, result.artifact).exists():
                problems.append(f"artifact.artifact_path: {result.artifact.artifact_path!r} does not exist")
    return problems


def artifact_location(spec: ExperimentSpec, artifact: Artifact) -> Path:
    """The artifact's absolute path (a relative one is relative to the spec's output_dir)."""
    path = Path(artifact.artifact_path)
    return path if path.is_absolute() else Path(spec.output_dir) / path
