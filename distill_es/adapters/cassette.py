"""Teacher cassettes: record real teacher calls once, replay them offline at zero cost.

A cassette is JSONL, one line per call: `{"digest", "request", "response"}`, where `digest` is
`request_digest(params)` over the parameters exactly as passed to `messages.create`. Replay matches a
live request to a recorded one by `cassette_match.normalised` (volatile fields such as the student's
latency masked on both sides) and returns real `anthropic.types.Message` objects, so callers cannot
tell a cassette from the API.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from anthropic.types import Message
from pydantic import ValidationError

from distill_es.adapters.cassette_match import divergence, first_difference, match_digest, normalised
from distill_es.adapters.teacher import jsonable, request_digest, response_to_dict
from distill_es.domain.errors import CassetteMiss, DistillError


class CassetteError(DistillError):
    """A cassette file that is missing or cannot be read; the message names the file and line."""


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CassetteError(f"{path}: cassette not found (record one with RecordingTeacher)") from None
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read cassette ({exc})") from None
    except UnicodeDecodeError as exc:
        raise CassetteError(f"{path}: not a cassette: not UTF-8 text (byte {exc.start})") from None
    records: list[dict[str, Any]] = []
    lines = text.splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if lineno == len(lines) and not text.endswith("\n"):
                break  # a write torn by a crash: that call was never answered to anyone
            raise CassetteError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        missing = [
            k for k in ("digest", "request", "response") if not isinstance(record, dict) or k not in record
        ]
        if missing:
            raise CassetteError(f"{path}:{lineno}: cassette line lacks {', '.join(missing)}")
        try:
            Message.model_validate(record["response"])
        except ValidationError as exc:
            raise CassetteError(
                f"{path}:{lineno}: response is not a Message ({exc.error_count()} errors)"
            ) from None
        try:
            match_digest(record["request"])
        except (TypeError, ValueError) as exc:  # not JSON data, or a NaN no real request holds
            raise CassetteError(f"{path}:{lineno}: request is not plain JSON data ({exc})") from None
        records.append(record)
    return records


__all__ = ["CassetteError", "CassetteTeacher", "RecordingTeacher", "first_difference"]


def _closeness(recorded: dict[str, Any], request: dict[str, Any]) -> tuple[int, int, int]:
    # Same model first, then the longest shared conversation prefix, then the most equal top-level keys.
    same_model = int(recorded.get("model") == request.get("model"))
    shared = 0
    for x, y in zip(recorded.get("messages", []), request.get("messages", []), strict=False):
        if x != y:
            break
        shared += 1
    equal_keys = sum(1 for k in set(recorded) | set(request) if recorded.get(k) == request.get(k))
    return same_model, shared, equal_keys


class _CassetteMessages:
    def __init__(self, owner: CassetteTeacher) -> None:
        self._owner = owner

    def create(self, **params: Any) -> Message:
        return self._owner.replay(params)


class CassetteTeacher:
    """Serves recorded responses to the requests that match them (`cassette_match.match_digest`: the
    request with its volatile fields masked). A request recorded several times: its responses are served
    in recorded order, the last one repeating once they run out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._records = _load(self.path)
        # Keyed by the recorded request itself, not the stored `digest` (the exact one, kept for the
        # record): old cassettes replay under the matching rule without being re-recorded.
        self._by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in self._records:
            self._by_request[match_digest(record["request"])].append(record["response"])
        self._served: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self.messages = _CassetteMessages(self)

    def __len__(self) -> int:
        return len(self._records)

    def replay(self, params: dict[str, Any]) -> Message:
        key = match_digest(params)
        with self._lock:
            responses = self._by_request.get(key)
            if not responses:
                raise self._miss(request_digest(params), jsonable(params))
            index = min(self._served[key], len(responses) - 1)
            self._served[key] += 1
        return Message.model_validate(responses[index])

    def _miss(self, digest: str, request: dict[str, Any]) -> CassetteMiss:
        hint = f"the cassette holds no requests (model {request.get('model')!r})"
        if self._records:
            now = normalised(request)
            closest = max((normalised(r["request"]) for r in self._records), key=lambda r: _closeness(r, now))
            found = divergence(closest, now)
            shown = found.describe() if found else "<root>: no difference once normalised"
            hint = f"model {request.get('model')!r}; closest recorded request first differs at {shown}"
        error = CassetteMiss(
            f"no recorded response for request {digest[:16]}… in {self.path} "
            f"({len(self._records)} recorded calls): {hint}"
        )
        error.digest, error.path, error.hint = digest, self.path, hint  # type: ignore[attr-defined]
        return error


class _RecordingMessages:
    def __init__(self, owner: RecordingTeacher) -> None:
        self._owner = owner

    def create(self, **params: Any) -> Any:
        return self._owner.record(params)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left without its newline by a crash, so the next append starts a clean line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
            fh.flush()
            os.fsync(fh.fileno())


class RecordingTeacher:
    """Forwards to a real teacher and appends every call to the cassette, durably, as it happens."""

    def __init__(self, inner: Any, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._lock = threading.Lock()
        self.messages = _RecordingMessages(self)

    def record(self, params: dict[str, Any]) -> Any:
        digest = request_digest(params)
        response = self.inner.messages.create(**params)
        # The file's own format, not canonical JSON: lines are parsed back, never hashed (the digest is
        # `request_digest`, over `domain.chain.canonical_json`), and keep the recorded cassettes' layout.
        line = json.dumps(
            {"digest": digest, "request": jsonable(params), "response": response_to_dict(response)},
            ensure_ascii=False,
            sort_keys=True,
        )
        # One write per line under a lock, fsync'd: a crash loses at most the call in flight.
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return response
