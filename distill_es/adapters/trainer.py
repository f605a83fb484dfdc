"""The external trainer protocol: one subprocess per attempt; every outcome is a value.

    <trainer argv...> --spec <run dir>/spec.json

- stdout: the JSON result object, nothing else (at most `STDOUT_CAP` bytes; more kills the trainer
  and is `output_too_large`).
- stderr: progress logs, appended to `<run dir>/trainer.log` as they come (never held in memory).
- `<run dir>/result.json` (the spec's `result_path`): read only when stdout is empty.
- wall-clock timeout: the whole process group gets SIGTERM, then SIGKILL after a grace period.

`run_trainer` never raises for anything the trainer does: it returns `TrainerOk` or
`TrainerFailure(reason_code, message)` (codes: `distill_es.domain.training.reasons`). The trainer runs in
its own session (process group), so a timeout kills its children too — and a trainer left behind by a
crashed driver can be found from `trainer.pid` and stopped before the attempt is re-run
(`stop_orphan`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STDOUT_CAP = 1024 * 1024  # 1 MiB: the seed's cap; a result is small, logs belong on stderr
GRACE_SECONDS = 5.0
LOG_FILE = "trainer.log"
RESULT_FILE = "result.json"
SPEC_FILE = "spec.json"
PID_FILE = "trainer.pid"
_LOG_TAIL = 400


@dataclass(frozen=True)
class TrainerOk:
    result: dict[str, Any]
    source: str  # stdout | result_file
    exit_code: int
    duration_seconds: float


@dataclass(frozen=True)
class TrainerFailure:
    reason_code: str
    message: str
    exit_code: int | None = None
    duration_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


TrainerOutcome = TrainerOk | TrainerFailure


def trainer_argv(command: list[str], spec_path: Path) -> list[str]:
    return [*command, "--spec", str(spec_path)]


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the trainer's process group; SIGKILL whatever is left after `grace` seconds."""
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _kill_group(proc.pid, signal.SIGKILL)  # children that ignored SIGTERM, and the leader if it did
    proc.wait()


class _CappedReader(threading.Thread):
    """Drains stdout; keeps at most `cap` bytes and flags (and stops the trainer on) anything more."""

    def __init__(self, proc: subprocess.Popen[bytes], cap: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.cap = proc, cap
        self.data = bytearray()
        self.overflow = False

    def run(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            if self.overflow:
                continue
            if len(self.data) + len(chunk) > self.cap:
                self.overflow = True
                _kill_group(self.proc.pid, signal.SIGKILL)
                continue
            self.data.extend(chunk)


def _log_tail(log_path: Path, since: int) -> str:
    try:
        with log_path.open("rb") as fh:
            fh.seek(max(since, log_path.stat().st_size - _LOG_TAIL))
            text = fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f"; last stderr: {text!r}" if text else ""


def _parse_object(raw: bytes, where: str) -> dict[str, Any] | str:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        preview = raw[:120].decode("utf-8", "replace")
        return f"{where} is not valid JSON ({exc}); it starts with {preview!r} — logs belong on stderr"
    if not isinstance(value, dict):
        return f"{where} holds JSON {type(value).__name__}, not the result object"
    return value


def _read_result_file(path: Path, cap: int) -> dict[str, Any] | TrainerFailure | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > cap:
        return TrainerFailure("output_too_large", f"the result file {path} is {size} bytes (cap {cap})")
    parsed = _parse_object(path.read_bytes(), f"the result file {path}")
    return TrainerFailure("invalid_json", parsed) if isinstance(parsed, str) else parsed


def run_trainer(
    command: list[str],
    spec_path: Path,
    run_dir: Path,
    *,
    timeout_seconds: float,
    cwd: Path | None = None,
    header: str = "",
    stdout_cap: int = STDOUT_CAP,
    grace_seconds: float = GRACE_SECONDS,
) -> TrainerOutcome:
    """Run one trainer attempt to its end and say what happened. Never raises for the trainer's sake."""
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = trainer_argv(command, spec_path)
    log_path, result_path, pid_path = run_dir / LOG_FILE, run_dir / RESULT_FILE, run_dir / PID_FILE
    result_path.unlink(missing_ok=True)  # a fallback file must come from this attempt
    with log_path.open("ab") as log:
        log.write(f"=== {header or 'attempt'}: {json.dumps(argv)}\n".encode())
        log.flush()
        log_start = log.tell()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=cwd,
                start_new_session=True,  # its own process group: a timeout kills its children too
            )
        except FileNotFoundError as exc:
            return TrainerFailure("trainer_missing", f"trainer not found: {exc.filename or argv[0]!s}")
        except OSError as exc:
            return TrainerFailure("spawn_error", f"the trainer could not be started: {exc}")
        pid_path.write_text(json.dumps({"pid": proc.pid, "argv": argv}))
        reader = _CappedReader(proc, stdout_cap)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            _terminate(proc, grace_seconds)
        except BaseException:  # Ctrl-C / SIGTERM of the driver: do not leave the trainer running
            _terminate(proc, grace_seconds)
            pid_path.unlink(missing_ok=True)
            raise
        _kill_group(proc.pid, signal.SIGKILL)  # stragglers that outlived the trainer hold its resources
        reader.join(timeout=grace_seconds)  # a grandchild that escaped the group may hold stdout open
        pid_path.unlink(missing_ok=True)
    duration = round(time.monotonic() - started, 3)
    code = proc.returncode
    tail = _log_tail(log_path, log_start)
    details = {"exit_code": code, "duration_seconds": duration}

    def failure(reason: str, message: str) -> TrainerFailure:
        return TrainerFailure(reason, message, code, duration, details)

    if timed_out:
        return failure("timeout", f"the trainer ran longer than {timeout_seconds:g}s and was killed{tail}")
    if reader.overflow:
        message = f"the trainer printed more than {stdout_cap} bytes on stdout{tail}"
        return failure("output_too_large", message)
    if code != 0:
        return failure("nonzero_exit", f"the trainer exited with status {code}{tail}")
    stdout = bytes(reader.data).strip()
    if stdout:
        parsed = _parse_object(stdout, "the trainer's stdout")
        if isinstance(parsed, str):
            return failure("invalid_json", parsed)
        return TrainerOk(parsed, "stdout", code, duration)
    from_file = _read_result_file(result_path, stdout_cap)
    if from_file is None:
        return failure("no_result", f"the trainer exited 0 but printed nothing and wrote no {result_path}")
    if isinstance(from_file, TrainerFailure):
        return failure(from_file.reason_code, from_file.message)
    return TrainerOk(from_file, "result_file", code, duration)


def stop_orphan(run_dir: Path) -> bool:
    """Stop a trainer a crashed driver left running (from `trainer.pid`); True if one was stopped.

    The pid is only trusted when /proc shows the same argv, so a recycled pid is never signalled.
    """
    pid_path = run_dir / PID_FILE
    try:
        info = json.loads(pid_path.read_text())
        pid, argv = int(info["pid"]), [str(a) for a in info["argv"]]
    except (OSError, ValueError, KeyError, TypeError):
        pid_path.unlink(missing_ok=True)
        return False
    stopped = False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        if [part.decode("utf-8", "replace") for part in cmdline] == argv:
            _kill_group(pid, signal.SIGKILL)
            stopped = True
    except OSError:
        pass  # gone already, or no /proc: nothing we can safely signal
    pid_path.unlink(missing_ok=True)
    return stopped
