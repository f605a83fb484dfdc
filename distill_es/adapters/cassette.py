"""Teacher cassettes: record real teacher calls once, replay them offline at zero cost.

A cassette is JSONL, one line per call: `{"digest", "request", "response"}`, where `digest` is
`request_digest(params)` over the parameters exactly as passed to `messages.create`. Replay returns
real `anthropic.types.Message` objects, so callers cannot tell a cassette from the API.
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
        records.append(record)
    return records


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The path of the first place two JSON values differ (`messages[3].content[0].text`), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                return sub
            found = first_difference(a[key], b[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None if len(a) == len(b) else f"{path}[{min(len(a), len(b))}] (length {len(b)} vs {len(a)})"
    return None if a == b else (path or "<root>")


def _get(value: Any, path: str) -> Any:
    # Best effort: follow a first_difference path to show the two values side by side.
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return "<absent>"
    return value


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
    """Serves recorded responses by request digest. Same digest recorded several times: served in
    recorded order, the last one repeating once they run out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._records = _load(self.path)
        self._by_digest: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in self._records:
            self._by_digest[record["digest"]].append(record["response"])
        self._served: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self.messages = _CassetteMessages(self)

    def __len__(self) -> int:
        return len(self._records)

    def replay(self, params: dict[str, Any]) -> Message:
        digest = request_digest(params)
        with self._lock:
            responses = self._by_digest.get(digest)
            if not responses:
                raise self._miss(digest, jsonable(params))
            index = min(self._served[digest], len(responses) - 1)
            self._served[digest] += 1
        return Message.model_validate(responses[index])

    def _miss(self, digest: str, request: dict[str, Any]) -> CassetteMiss:
        hint = f"the cassette holds no requests (model {request.get('model')!r})"
        if self._records:
            closest = max(self._records, key=lambda r: _closeness(r["request"], request))["request"]
            where = first_difference(closest, request) or "<identical JSON but different digest>"
            hint = (
                f"model {request.get('model')!r}; closest recorded request first differs at {where}: "
                f"recorded {_short(_get(closest, where))} vs now {_short(_get(request, where))}"
            )
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
