"""Where the student's past interactions come from: `traces.jsonl`, or OpenJarvis's `traces.db`.

Both sources list newest first, apply filters before the limit (the reference limited first, §4.3),
and search by case-insensitive substring over query and result (no FTS syntax to trip over).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from pydantic import ValidationError

from distill_es.domain.errors import (
    TracesSourceInvalid,
    TracesSourceNotFound,
    WorkspaceError,
    WorkspaceFileInvalid,
)
from distill_es.domain.layout import TRACES_DB, TRACES_JSONL
from distill_es.domain.payloads import describe_validation
from distill_es.ports import TraceRecord, TraceSource

_FIELDS = set(TraceRecord.model_fields)


def to_epoch(value: Any) -> float | None:
    """Epoch seconds from epoch numbers (or numeric strings) and ISO 8601 text; naive times are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a timestamp: {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError(f"not a timestamp: {value!r}")


def _newest_first(records: list[tuple[int, TraceRecord]]) -> list[TraceRecord]:
    # Undated traces sort last; ties go to the later line / row.
    ordered = sorted(
        records, key=lambda pr: (pr[1].started_at is not None, pr[1].started_at or 0.0, pr[0]), reverse=True
    )
    return [record for _, record in ordered]


def _matches(record: TraceRecord, needle: str) -> bool:
    return needle in record.query.casefold() or needle in record.result.casefold()


class EmptyTraceSource:
    """No traces yet: every query answers empty."""

    def count(self) -> int:
        return 0

    def list(
        self, limit: int = 20, agent: str | None = None, outcome: str | None = None
    ) -> list[TraceRecord]:
        return []

    def get(self, trace_id: str) -> TraceRecord | None:
        return None

    def search(self, query: str, limit: int = 20) -> list[TraceRecord]:
        return []


# --- traces.jsonl -------------------------------------------------------------------------------


def decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One line of a JSON Lines file as text; bytes that are not UTF-8 are an error naming the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1]
        where = f"{path}:{lineno}"
        raise WorkspaceFileInvalid(
            f"{where}: not valid UTF-8 (byte {bad!r} at column {exc.start + 1})"
        ) from None


def parse_trace_line(data: Any) -> TraceRecord:
    """One traces.jsonl object as a TraceRecord. Keys outside the contract are kept in `metadata`."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    data = dict(data)
    if "latency_seconds" not in data and "total_latency_seconds" in data:
        data["latency_seconds"] = data.pop("total_latency_seconds")  # OpenJarvis's name
    extra = {k: data.pop(k) for k in list(data) if k not in _FIELDS}
    if extra:
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata: must be an object")
        data["metadata"] = {**extra, **metadata}
    for key in ("query", "result", "steps", "metadata"):
        if key in data and data[key] is None:
            del data[key]  # null means "use the default"
    if "trace_id" in data and not isinstance(data["trace_id"], str):
        data["trace_id"] = str(data["trace_id"])
    data["started_at"] = to_epoch(data.get("started_at"))
    record = TraceRecord.model_validate(data)
    if not record.query.strip():  # diagnosis, and the tasks it makes, start from what was asked
        raise ValueError('a trace needs a "query": the non-empty text the agent was asked')
    return record


class JsonlTraceSource:
    """`traces.jsonl`. Re-read whenever the file changes. A repeated trace_id: the later line wins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: list[TraceRecord] = []
        self._by_id: dict[str, TraceRecord] = {}

    def _load(self) -> list[TraceRecord]:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._records, self._by_id = self._parse() if stamp else ([], {})
                self._stamp = stamp
            return self._records

    def _parse(self) -> tuple[list[TraceRecord], dict[str, TraceRecord]]:
        by_id: dict[str, tuple[int, TraceRecord]] = {}
        try:
            fh = self.path.open("rb")
        except OSError as exc:  # unreadable (permissions), or replaced by a folder since it was chosen
            raise WorkspaceError(f"{self.path}: cannot read the traces ({exc.strerror or exc})") from None
        with fh:
            for lineno, raw in enumerate(fh, start=1):
                line = decode_line(raw, self.path, lineno)
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # a byte order mark (utf-8-sig), as editors save
                if not line.strip():
                    continue
                try:
                    record = parse_trace_line(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise WorkspaceFileInvalid(f"{self.path}:{lineno}: not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise WorkspaceFileInvalid(f"{self.path}:{lineno}: JSON nested too deeply") from None
                except ValidationError as exc:
                    raise WorkspaceFileInvalid(f"{self.path}:{lineno}: {describe_validation(exc)}") from None
                except ValueError as exc:
                    raise WorkspaceFileInvalid(f"{self.path}:{lineno}: {exc}") from None
                by_id[record.trace_id] = (lineno, record)
        records = _newest_first(list(by_id.values()))
        return records, {r.trace_id: r for r in records}

    def count(self) -> int:
        return len(self._load())

    def list(
        self, limit: int = 20, agent: str | None = None, outcome: str | None = None
    ) -> list[TraceRecord]:
        picked = [
            r
            for r in self._load()
            if (agent is None or r.agent == agent) and (outcome is None or r.outcome == outcome)
        ]
        return picked[: max(limit, 0)]

    def get(self, trace_id: str) -> TraceRecord | None:
        self._load()
        return self._by_id.get(trace_id)

    def search(self, query: str, limit: int = 20) -> list[TraceRecord]:
        needle = query.casefold()
        return [r for r in self._load() if _matches(r, needle)][: max(limit, 0)]


# --- OpenJarvis traces.db -------------------------------------------------------------------------
# Schema: open-jarvis/OpenJarvis src/openjarvis/traces/store.py — table `traces` (id, trace_id, query,
# agent, model, engine, result, outcome, feedback, started_at, ended_at, total_tokens,
# total_latency_seconds, metadata JSON, messages JSON [later versions]) and `trace_steps` (trace_id,
# step_index, step_type, timestamp, duration_seconds, input/output/metadata JSON). Empty strings and
# 0.0 are OpenJarvis's "unset" defaults. Columns are read by name, so older files (no `messages`) work.


def _json_or_raw(text: Any, default: Any) -> Any:
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return text


class OpenJarvisTraceSource:
    """An OpenJarvis `traces.db`, opened read-only (`mode=ro`) for every call: we can never write it,
    and each call sees what OpenJarvis has committed since. (On a WAL database SQLite may create the
    `-wal`/`-shm` side files it needs to read; the database file itself is never touched.)"""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TracesSourceNotFound(f"{self.path}: OpenJarvis traces database not found")
        problem = not_sqlite(self.path)
        if problem:
            raise TracesSourceInvalid(f"{self.path}: not an OpenJarvis traces database ({problem})")

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{pathname2url(str(self.path.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise WorkspaceError(f"{self.path}: cannot open read-only ({exc})") from None
        conn.row_factory = sqlite3.Row
        return conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with closing(self._connect()) as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise WorkspaceError(f"{self.path}: not an OpenJarvis traces database ({exc})") from None

    def _records(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[TraceRecord]:
        with closing(self._connect()) as conn:
            try:
                has_steps = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trace_steps'"
                ).fetchone()
                cursor = conn.execute(sql, params)
                for row in cursor:
                    steps = self._steps(conn, row["trace_id"]) if has_steps else []
                    yield self._to_record(row, steps)
            except sqlite3.Error as exc:
                raise WorkspaceError(f"{self.path}: not an OpenJarvis traces database ({exc})") from None

    @staticmethod
    def _steps(conn: sqlite3.Connection, trace_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT * FROM trace_steps WHERE trace_id = ? ORDER BY step_index", (trace_id,)
        ).fetchall()
        return [
            {
                "step_type": r["step_type"],
                "timestamp": r["timestamp"],
                "duration_seconds": r["duration_seconds"],
                "input": _json_or_raw(r["input"], {}),
                "output": _json_or_raw(r["output"], {}),
                "metadata": _json_or_raw(r["metadata"], {}),
            }
            for r in rows
        ]

    @staticmethod
    def _to_record(row: sqlite3.Row, steps: list[dict[str, Any]]) -> TraceRecord:
        cols = row.keys()
        metadata = _json_or_raw(row["metadata"] if "metadata" in cols else None, {})
        if not isinstance(metadata, dict):
            metadata = {"raw_metadata": metadata}
        messages = _json_or_raw(row["messages"], []) if "messages" in cols else []
        if messages and "messages" not in metadata:
            metadata = {**metadata, "messages": messages}
        for key in ("engine", "ended_at"):
            if key in cols and row[key] and key not in metadata:
                metadata = {**metadata, key: row[key]}
        query_class = metadata.get("query_class")
        return TraceRecord(
            trace_id=str(row["trace_id"]),
            query=row["query"] or "",
            result=row["result"] or "",
            agent=row["agent"] or None,
            model=row["model"] or None,
            outcome=row["outcome"] or None,
            feedback=row["feedback"],
            started_at=float(row["started_at"]) if row["started_at"] else None,
            query_class=query_class if isinstance(query_class, str) else None,
            steps=steps,
            total_tokens=row["total_tokens"] if "total_tokens" in cols else None,
            latency_seconds=row["total_latency_seconds"] if "total_latency_seconds" in cols else None,
            metadata=metadata,
        )

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM traces")[0][0])

    def list(
        self, limit: int = 20, agent: str | None = None, outcome: str | None = None
    ) -> list[TraceRecord]:
        clauses, params = [], []
        if agent is not None:
            clauses.append("agent = ?")
            params.append(agent)
        if outcome is not None:
            clauses.append("outcome = ?")
            params.append(outcome)
        where = " AND ".join(clauses) or "1 = 1"
        sql = f"SELECT * FROM traces WHERE {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"
        return list(self._records(sql, (*params, max(limit, 0))))

    def get(self, trace_id: str) -> TraceRecord | None:
        found = list(self._records("SELECT * FROM traces WHERE trace_id = ?", (trace_id,)))
        return found[0] if found else None

    def search(self, query: str, limit: int = 20) -> list[TraceRecord]:
        # Python casefold, not SQL LIKE/lower(): those fold ASCII only.
        needle = query.casefold()
        rows = self._query("SELECT trace_id, query, result FROM traces ORDER BY started_at DESC, rowid DESC")
        hits = [
            r["trace_id"]
            for r in rows
            if needle in (r["query"] or "").casefold() or needle in (r["result"] or "").casefold()
        ][: max(limit, 0)]
        records = {t: self.get(t) for t in hits}
        return [rec for t in hits if (rec := records[t]) is not None]


SQLITE_MAGIC = b"SQLite format 3\x00"


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")  # what a file meant as a database is called


def _head(path: Path) -> bytes:
    """The first bytes of `path` (its SQLite header, if it has one); OSError when it cannot be read."""
    with path.open("rb") as fh:
        return fh.read(len(SQLITE_MAGIC))


def is_sqlite(path: Path) -> bool:
    """True when `path` starts like a SQLite database (what an OpenJarvis traces.db is)."""
    try:
        return _head(path) == SQLITE_MAGIC
    except OSError:
        return False


def not_sqlite(path: Path) -> str:
    """Why `path` cannot be a SQLite database ("" when it can): unreadable, empty, or another kind of
    file (told by the header every SQLite database starts with, never by its name)."""
    try:
        head = _head(path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if head == SQLITE_MAGIC:
        return ""
    if not head:
        return "the file is empty"
    return "not a SQLite database: it does not start with the SQLite header"


def has_traces_text(path: Path) -> bool:
    """True when the file holds anything but whitespace: an empty traces.jsonl (as `init` writes it)
    must not hide a traces.db beside it."""
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(65536):
                if chunk.strip():
                    return True
    except OSError:
        return False
    return False


SETTING_ORIGIN = "[traces] source in distill_es.toml"  # where a configured source was named
FLAG_ORIGIN = "--traces"


def open_source_file(path: str | Path, origin: str = SETTING_ORIGIN) -> TraceSource:
    """A configured source: an OpenJarvis traces.db (told by its SQLite header or a database's name —
    .db, .sqlite — or a folder holding one, such as ~/.openjarvis) or else a traces.jsonl. A missing one
    is `TracesSourceNotFound`, one that cannot be a source `TracesSourceInvalid`, never an empty source;
    `origin` (the flag or the setting that named it) is in the message."""
    path = Path(path)
    named = f"(given by {origin})"
    if path.is_dir():
        if (path / TRACES_DB).is_file():
            return _checked_db(path / TRACES_DB, named)
        if (path / TRACES_JSONL).is_file():
            return JsonlTraceSource(path / TRACES_JSONL)
        neither = f"a folder with neither {TRACES_DB} nor {TRACES_JSONL} in it"
        raise TracesSourceInvalid(f"{path}: {neither} {named}")
    if not path.exists():
        raise TracesSourceNotFound(f"{path}: traces source not found {named}")
    if not path.is_file():
        raise TracesSourceInvalid(f"{path}: not a file, so not a traces source {named}")
    try:
        head = _head(path)
    except OSError as exc:
        why = exc.strerror or exc
        raise TracesSourceInvalid(f"{path}: cannot read the traces source ({why}) {named}") from None
    if head == SQLITE_MAGIC or path.suffix.lower() in SQLITE_SUFFIXES:
        return _checked_db(path, named)
    return JsonlTraceSource(path)


def _checked_db(path: Path, named: str) -> OpenJarvisTraceSource:
    try:
        return OpenJarvisTraceSource(path)
    except WorkspaceError as exc:
        raise type(exc)(f"{exc} {named}") from None


def checked_source(path: str | Path, origin: str) -> TraceSource:
    """`open_source_file`, then read once (counted), so a source that cannot be read as traces stops a
    command before it records anything: `TracesSourceInvalid` naming the file, the line and `origin`."""
    source = open_source_file(path, origin)
    try:
        source.count()
    except (TracesSourceNotFound, TracesSourceInvalid):
        raise
    except WorkspaceError as exc:
        raise TracesSourceInvalid(f"{exc} (given by {origin})") from None
    return source


def open_trace_source(home: str | Path, source: str | Path | None = None) -> TraceSource:
    """`source` when given (already resolved: see config.paths); else the workspace's traces.jsonl if
    it holds any text, else its traces.db, else its (empty) traces.jsonl so lines appended later are
    seen, else an empty source."""
    if source:
        return open_source_file(source)
    home = Path(home)
    jsonl, db = home / TRACES_JSONL, home / TRACES_DB
    if jsonl.is_file() and has_traces_text(jsonl):
        return JsonlTraceSource(jsonl)
    if db.is_file():
        return OpenJarvisTraceSource(db)
    if jsonl.is_file():
        return JsonlTraceSource(jsonl)
    return EmptyTraceSource()
