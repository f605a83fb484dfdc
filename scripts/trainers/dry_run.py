#!/usr/bin/env python3
"""Reference trainer for the distill_es trainer protocol: validates the spec, trains nothing.

    python scripts/trainers/dry_run.py --spec /path/to/spec.json

It reads the experiment spec, checks that the dataset file exists and still has the spec's sha256
fingerprint, and prints one JSON result object on stdout (logs go to stderr):

- all good: status "dry_run", echoing experiment_id, backend, target_model_family and the three
  fingerprints, with a few dataset metrics;
- a problem with the spec or dataset: status "failed" with a failure_reason.

Standard library only, so it runs in any Python 3.9+ (a real trainer's environment need not have
distill_es installed). Use it as `trainer_command` to exercise the whole plumbing without a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ECHO = ("experiment_id", "backend", "target_model_family", "config_fingerprint", "code_hash")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check(spec: dict) -> tuple[list[str], dict]:
    problems, metrics = [], {}
    problems += [f"spec has no {key}" for key in ECHO if not spec.get(key)]
    dataset = spec.get("dataset") or {}
    path = Path(dataset.get("path") or "")
    if not dataset:
        problems.append("spec has no dataset")
    elif not path.is_file():
        problems.append(f"dataset {path} does not exist")
    else:
        if sha256_file(path) != dataset.get("fingerprint"):
            problems.append(f"dataset {path} does not match its fingerprint")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        metrics = {
            "rows": len(rows),
            "preference_rows": sum(1 for r in rows if r.get("kind") == "preference"),
            "instruction_rows": sum(1 for r in rows if r.get("kind") == "instruction"),
        }
    return problems, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=Path, help="the experiment spec (JSON)")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    print(f"dry run of experiment {spec.get('experiment_id')}", file=sys.stderr)
    problems, metrics = check(spec)
    result = {key: spec.get(key) for key in ECHO}
    result["dataset_fingerprint"] = (spec.get("dataset") or {}).get("fingerprint")
    result["metrics"] = metrics
    result["created_at"] = datetime.now(timezone.utc).isoformat()  # noqa: UP017 (runs on 3.9+)
    if problems:
        result.update(status="failed", failure_reason="; ".join(problems))
    else:
        result["status"] = "dry_run"
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
