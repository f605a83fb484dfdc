#!/usr/bin/env python3
"""A real LoRA trainer for distill_es's `peft-trl-orpo` backend: ORPO with `peft` + `trl`.

Not run in CI (it needs torch, transformers, peft, trl, datasets, model weights and, realistically, a
GPU). Install those in the trainer's own environment, then point distill_es at this script:

    pip install torch transformers peft trl datasets accelerate
    TrainingService(store, home, trainer_command=[
        "/path/to/trainer-venv/bin/python", "/path/to/scripts/trainers/peft_orpo.py",
        "--base-model", "Qwen/Qwen2.5-0.5B-Instruct",
    ], timeout_seconds=4 * 3600)

distill_es appends `--spec <run dir>/spec.json`. The protocol this script follows:
- stdout carries exactly one JSON result object, printed at the end. Everything else the libraries
  print is redirected to stderr (distill_es appends stderr to `<run dir>/trainer.log`).
- The same result is also written to the spec's `result_path` (distill_es reads it only when stdout
  is empty, e.g. if a library wrote to the real stdout file descriptor).
- The result echoes experiment_id, backend, target_model_family, dataset_fingerprint,
  config_fingerprint and code_hash from the spec; distill_es refuses a result that does not.
- Budget: training stops itself a minute before `budget.max_wall_clock_minutes` (distill_es kills the
  process group at the limit) and once `budget.max_train_tokens` tokens have been trained on.
- The adapter is saved with `save_pretrained` under `<output_dir>/<expected_artifact.checkpoint_name>`
  (adapter_format "peft-adapter").
- Eval: when the spec names a benchmark (`benchmark_path`, one task per JSONL line with `query` and
  `reference_answer`), the script answers every task with and without the adapter (greedy decoding)
  and reports the fraction answered correctly (normalised reference contained in the answer) as
  `eval.candidate_score`, with the adapter-less score as `eval.baseline_score` (informational:
  distill_es judges against the baseline it was given).
- Any failure is reported as `{"status": "failed", "failure_reason": ...}` with exit status 0, so the
  reason reaches the log of the run; a crash exits non-zero and the log tail tells why.

Only `kind == "preference"` rows of the dataset train (ORPO needs prompt/chosen/rejected).
`--base-model` names the Hugging Face model to adapt (the spec's `target_model_family` is the name the
student runs it under, e.g. an Ollama tag, which is not a loadable checkpoint id).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ECHO = ("experiment_id", "backend", "target_model_family", "config_fingerprint", "code_hash")
SAFETY_MARGIN_SECONDS = 60.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_result(spec: dict[str, Any]) -> dict[str, Any]:
    result = {key: spec.get(key) for key in ECHO}
    result["dataset_fingerprint"] = (spec.get("dataset") or {}).get("fingerprint")
    result["created_at"] = datetime.now(timezone.utc).isoformat()  # noqa: UP017 (trainer envs vary)
    return result


def load_rows(spec: dict[str, Any]) -> list[dict[str, str]]:
    dataset = spec.get("dataset") or {}
    path = Path(dataset.get("path") or "")
    if not path.is_file():
        raise RuntimeError(f"dataset {path} does not exist")
    if sha256_file(path) != dataset.get("fingerprint"):
        raise RuntimeError(f"dataset {path} does not match the spec's fingerprint")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else None
        if row and row.get("kind") == "preference" and row.get("rejected"):
            rows.append({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]})
    if not rows:
        raise RuntimeError("the dataset has no preference rows; ORPO needs prompt/chosen/rejected pairs")
    return rows


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def score_benchmark(model: Any, tokenizer: Any, tasks: list[dict[str, Any]], max_new_tokens: int) -> float:
    import torch

    correct = 0
    for task in tasks:
        messages = [{"role": "user", "content": task["query"]}]
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = task["query"] + "\n"
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        correct += normalise(str(task["reference_answer"])) in normalise(answer)
    return correct / len(tasks) if tasks else 0.0


def train(spec: dict[str, Any], base_model: str, eval_tokens: int) -> dict[str, Any]:
    # Lazy imports: `--help` and the failure path work without the ML stack installed.
    try:
        import torch
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

        try:
            from trl import ORPOConfig, ORPOTrainer
        except ImportError:  # newer trl moved ORPO to trl.experimental
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    except ImportError as exc:
        raise RuntimeError(
            f"the ML stack is not installed ({exc}); pip install torch transformers peft trl datasets"
        ) from exc

    started = time.monotonic()
    hp, budget = spec["hyperparameters"], spec["budget"]
    rows = load_rows(spec)
    out_dir = Path(spec["output_dir"])
    adapter_dir = out_dir / spec["expected_artifact"]["checkpoint_name"]
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base_model, torch_dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")

    # Token budget: roughly what one example costs, times the examples a step consumes.
    sample = rows[: min(len(rows), 64)]
    avg_tokens = sum(len(tokenizer(r["prompt"] + r["chosen"] + r["rejected"])["input_ids"]) for r in sample)
    avg_tokens = max(1, avg_tokens // len(sample))
    tokens_per_step = avg_tokens * hp["batch_size"] * hp["gradient_accumulation"]
    deadline = started + budget["max_wall_clock_minutes"] * 60 - SAFETY_MARGIN_SECONDS
    state = {"tokens": 0, "stopped_by": None}

    class BudgetCallback(TrainerCallback):
        def on_step_end(self, args: Any, trainer_state: Any, control: Any, **kwargs: Any) -> Any:
            state["tokens"] += tokens_per_step
            if state["tokens"] + tokens_per_step > budget["max_train_tokens"]:
                state["stopped_by"], control.should_training_stop = "max_train_tokens", True
            elif time.monotonic() > deadline:
                state["stopped_by"], control.should_training_stop = "max_wall_clock_minutes", True
            return control

    config = ORPOConfig(
        output_dir=str(out_dir / "trainer"),
        learning_rate=hp["learning_rate"],
        per_device_train_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation"],
        warmup_ratio=hp["warmup_ratio"],
        max_steps=hp["max_steps"],
        max_length=hp["max_seq_length"],
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        bf16=dtype == torch.bfloat16,
    )
    lora = LoraConfig(
        r=hp["lora_rank"],
        lora_alpha=hp["lora_alpha"],
        lora_dropout=hp["lora_dropout"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    common = {"model": model, "args": config, "train_dataset": Dataset.from_list(rows), "peft_config": lora}
    try:
        trainer = ORPOTrainer(**common, processing_class=tokenizer)
    except TypeError:  # trl < 0.12 called it `tokenizer`
        trainer = ORPOTrainer(**common, tokenizer=tokenizer)
    trainer.add_callback(BudgetCallback())
    output = trainer.train()
    trainer.model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))

    result: dict[str, Any] = {
        "status": "completed",
        "checkpoint_id": f"ckpt-{spec['experiment_id']}",
        "artifact": {"artifact_path": str(adapter_dir), "adapter_format": "peft-adapter"},
        "train_tokens": state["tokens"],
        "metrics": {
            "train_loss": float(output.training_loss),
            "steps": int(output.global_step),
            "preference_rows": len(rows),
            "stopped_by": state["stopped_by"],
            "seconds": round(time.monotonic() - started, 1),
        },
    }
    benchmark = spec.get("benchmark_path")
    if benchmark and Path(benchmark).is_file():
        tasks = [json.loads(line) for line in Path(benchmark).read_text().splitlines() if line.strip()]
        tuned = trainer.model
        tuned.eval()
        candidate = score_benchmark(tuned, tokenizer, tasks, eval_tokens)
        with tuned.disable_adapter():
            baseline = score_benchmark(tuned, tokenizer, tasks, eval_tokens)
        result["eval"] = {
            "candidate_score": candidate,
            "baseline_score": baseline,
            "benchmark_id": Path(benchmark).name,
            "mode": "reduced_prompt",  # no system prompt: the adapter alone is measured
            "task_count": len(tasks),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ORPO LoRA trainer (peft + trl) for distill_es.")
    parser.add_argument("--spec", required=True, type=Path, help="the experiment spec (JSON)")
    parser.add_argument(
        "--base-model",
        default=os.environ.get("DISTILL_ES_BASE_MODEL"),
        help="Hugging Face model id or local path to adapt (default: $DISTILL_ES_BASE_MODEL)",
    )
    parser.add_argument("--eval-max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    result = base_result(spec)
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # library chatter must not corrupt the result
        try:
            if spec.get("backend") != "peft-trl-orpo":
                raise RuntimeError(f"this trainer runs backend 'peft-trl-orpo', not {spec.get('backend')!r}")
            if not args.base_model:
                raise RuntimeError("no base model: pass --base-model or set DISTILL_ES_BASE_MODEL")
            log(f"ORPO LoRA training of {args.base_model} for experiment {spec.get('experiment_id')}")
            result.update(train(spec, args.base_model, args.eval_max_new_tokens))
        except Exception as exc:  # every failure becomes a result the run records
            log(f"training failed: {type(exc).__name__}: {exc}")
            result.update(status="failed", failure_reason=f"{type(exc).__name__}: {exc}")
    text = json.dumps(result, sort_keys=True)
    result_path = spec.get("result_path")
    if result_path:
        Path(result_path).parent.mkdir(parents=True, exist_ok=True)
        Path(result_path).write_text(text + "\n", encoding="utf-8")
    print(text, file=real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
