from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime

import pytest

from distill_es.adapters.traces import (
    EmptyTraceSource,
    JsonlTraceSource,
    OpenJarvisTraceSource,
    open_trace_source,
    to_epoch,
)
from distill_es.domain.errors import WorkspaceError
from distill_es.ports import TraceSource
from tests.data.openjarvis_home import TRACE_COUNT, copy_openjarvis_home

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def test_to_epoch():
    assert to_epoch(T0) == T0
    assert to_epoch(str(T0)) == T0
    assert to_epoch("2025-03-01T12:00:00Z") == T0
    assert to_epoch("2025-03-01T13:00:00+01:00") == T0
    assert to_epoch("2025-03-01T12:00:00") == T0  # naive: UTC
    assert to_epoch(None) is None
    with pytest.raises(ValueError):
        to_epoch("yesterday")


# --- traces.jsonl ---------------------------------------------------------------------------------


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return JsonlTraceSource(path)


def _rows():
    # t0..t9, one hour apart; the four oldest are failures by agent "b".
    rows = []
    for i in range(10):
        stamp = T0 + i * 3600
        rows.append(
            {
                "trace_id": f"t{i}",
                "query": f"Query {i}: c++ -O2 a/b:c" if i == 3 else f"Query {i}",
                "result": "Résultat ÉTONNANT" if i == 5 else f"result {i}",
                "agent": "b" if i < 4 else "a",
                "model": "qwen3:8b",
                "outcome": "failure" if i < 4 else "success",
                "feedback": 0.1 * i,
                # alternate epoch numbers and ISO strings
                "started_at": stamp if i % 2 else datetime.fromtimestamp(stamp, UTC).isoformat(),
            }
        )
    return rows


def test_jsonl_lists_newest_first_with_epoch_and_iso(tmp_path):
    source = _jsonl(tmp_path / "traces.jsonl", _rows())
    assert isinstance(source, TraceSource)
    listed = source.list(limit=10)
    assert [r.trace_id for r in listed] == [f"t{i}" for i in range(9, -1, -1)]
    assert [r.started_at for r in listed] == [T0 + i * 3600 for i in range(9, -1, -1)]
    assert source.count() == 10


def test_jsonl_filters_before_limiting(tmp_path):
    source = _jsonl(tmp_path / "traces.jsonl", _rows())
    assert [r.trace_id for r in source.list(limit=2, outcome="failure")] == ["t3", "t2"]
    assert [r.trace_id for r in source.list(limit=3, agent="b", outcome="failure")] == ["t3", "t2", "t1"]
    assert source.list(limit=5, agent="nobody") == []
    assert source.list(limit=0) == []


def test_jsonl_get_and_search(tmp_path):
    source = _jsonl(tmp_path / "traces.jsonl", _rows())
    assert source.get("t4").agent == "a" and source.get("missing") is None
    assert [r.trace_id for r in source.search("c++ -O2 a/b:c")] == ["t3"]  # FTS-hostile characters
    assert [r.trace_id for r in source.search("étonnant")] == ["t5"]  # case-insensitive, over result
    assert [r.trace_id for r in source.search("query", limit=3)] == ["t9", "t8", "t7"]


def test_jsonl_optional_fields_extra_keys_and_reload(tmp_path):
    row = {
        "trace_id": 7,
        "query": "q",
        "result": None,
        "started_at": None,
        "query_class": "math",
        "steps": [{"tool": "calc"}],
        "total_tokens": 12,
        "total_latency_seconds": 1.5,
        "engine": "vllm",
        "metadata": {"k": "v"},
    }
    path = tmp_path / "traces.jsonl"
    source = _jsonl(path, [row])
    record = source.get("7")
    assert record.result == "" and record.started_at is None and record.query_class == "math"
    assert record.latency_seconds == 1.5 and record.steps == [{"tool": "calc"}]
    assert record.metadata == {"engine": "vllm", "k": "v"}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"trace_id": "later", "query": "r", "started_at": "2030-01-01T00:00:00Z"}) + "\n")
    assert source.count() == 2 and source.list(1)[0].trace_id == "later"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{broken", r"traces\.jsonl:3: not valid JSON"),
        ('"a string"', r"traces\.jsonl:3: expected a JSON object"),
        ('{"query": "no id"}', r"traces\.jsonl:3: trace_id"),
        ('{"trace_id": "x", "started_at": "last tuesday"}', r"traces\.jsonl:3: .*last tuesday"),
        ('{"trace_id": "x", "feedback": "good"}', r"traces\.jsonl:3: feedback"),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps({"trace_id": "a", "query": "q"}) + "\n\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(WorkspaceError, match=message):
        JsonlTraceSource(path).count()


# --- OpenJarvis traces.db -------------------------------------------------------------------------
# The schema OpenJarvis creates (open-jarvis/OpenJarvis, src/openjarvis/traces/store.py).

OPENJARVIS_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS traces (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id             TEXT    NOT NULL UNIQUE,
    query                TEXT    NOT NULL DEFAULT '',
    agent                TEXT    NOT NULL DEFAULT '',
    model                TEXT    NOT NULL DEFAULT '',
    engine               TEXT    NOT NULL DEFAULT '',
    result               TEXT    NOT NULL DEFAULT '',
    outcome              TEXT,
    feedback             REAL,
    started_at           REAL    NOT NULL DEFAULT 0.0,
    ended_at             REAL    NOT NULL DEFAULT 0.0,
    total_tokens         INTEGER NOT NULL DEFAULT 0,
    total_latency_seconds REAL   NOT NULL DEFAULT 0.0,
    metadata             TEXT    NOT NULL DEFAULT '{}',
    messages             TEXT    NOT NULL DEFAULT '[]'
)""",
    """CREATE TABLE IF NOT EXISTS trace_steps (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id         TEXT    NOT NULL,
    step_index       INTEGER NOT NULL,
    step_type        TEXT    NOT NULL,
    timestamp        REAL    NOT NULL DEFAULT 0.0,
    duration_seconds REAL    NOT NULL DEFAULT 0.0,
    input            TEXT    NOT NULL DEFAULT '{}',
    output           TEXT    NOT NULL DEFAULT '{}',
    metadata         TEXT    NOT NULL DEFAULT '{}',
    FOREIGN KEY (trace_id) REFERENCES traces(trace_id)
)""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS traces_fts USING fts5(
    trace_id, query, result, agent, content='traces', content_rowid='rowid', tokenize='unicode61'
)""",
    """CREATE TRIGGER IF NOT EXISTS traces_fts_ai AFTER INSERT ON traces BEGIN
    INSERT INTO traces_fts(rowid, trace_id, query, result, agent)
    VALUES (new.rowid, new.trace_id, new.query, new.result, new.agent);
END""",
]


def _build_db(path, rows, *, with_messages=True):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")  # as OpenJarvis opens it
    for statement in OPENJARVIS_SCHEMA:
        if not with_messages:
            statement = statement.replace(",\n    messages             TEXT    NOT NULL DEFAULT '[]'", "")
        conn.execute(statement)
    for row in rows:
        meta = {"query_class": "math"} if row["trace_id"] == "t2" else {}
        values = {
            "trace_id": row["trace_id"],
            "query": row["query"],
            "agent": row["agent"],
            "model": row["model"],
            "engine": "vllm",
            "result": row["result"],
            "outcome": row["outcome"],
            "feedback": row["feedback"],
            "started_at": to_epoch(row["started_at"]),
            "ended_at": to_epoch(row["started_at"]) + 2,
            "total_tokens": 40,
            "total_latency_seconds": 2.0,
            "metadata": json.dumps(meta),
        }
        if with_messages:
            values["messages"] = json.dumps([{"role": "user", "content": row["query"]}])
        conn.execute(
            f"INSERT INTO traces ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
    steps = [
        ("t2", 0, "generate", 1.0, 0.5, json.dumps({"prompt": "p"}), json.dumps({"text": "o"})),
        ("t2", 1, "tool_call", 2.0, 0.1, json.dumps({"tool": "calc"}), "{}"),
    ]
    conn.executemany(
        "INSERT INTO trace_steps (trace_id, step_index, step_type, timestamp, duration_seconds, input,"
        " output) VALUES (?, ?, ?, ?, ?, ?, ?)",
        steps,
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for side in ("-wal", "-shm"):
        (path.parent / (path.name + side)).unlink(missing_ok=True)


def _fingerprint(path):
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def traces_db(tmp_path):
    path = tmp_path / "traces.db"
    _build_db(path, _rows())
    return path


def test_openjarvis_source_reads_the_real_schema(traces_db):
    source = OpenJarvisTraceSource(traces_db)
    assert isinstance(source, TraceSource)
    assert source.count() == 10
    assert [r.trace_id for r in source.list(limit=3)] == ["t9", "t8", "t7"]
    assert [r.trace_id for r in source.list(limit=2, outcome="failure")] == ["t3", "t2"]
    assert [r.trace_id for r in source.list(limit=10, agent="b", outcome="failure")] == [
        "t3",
        "t2",
        "t1",
        "t0",
    ]
    record = source.get("t2")
    assert record.started_at == T0 + 2 * 3600 and record.latency_seconds == 2.0 and record.total_tokens == 40
    assert record.query_class == "math" and record.outcome == "failure"
    assert [s["step_type"] for s in record.steps] == ["generate", "tool_call"]
    assert record.steps[0]["input"] == {"prompt": "p"}
    assert record.metadata["messages"] == [{"role": "user", "content": "Query 2"}]
    assert record.metadata["engine"] == "vllm"
    assert source.get("nope") is None
    assert [r.trace_id for r in source.search("c++ -O2 a/b:c")] == ["t3"]
    assert [r.trace_id for r in source.search("étonnant")] == ["t5"]
    assert [r.trace_id for r in source.search("QUERY", limit=2)] == ["t9", "t8"]


def test_openjarvis_source_never_writes(traces_db):
    before = _fingerprint(traces_db)
    source = OpenJarvisTraceSource(traces_db)
    source.count(), source.list(limit=50), source.get("t1"), source.search("result")
    assert _fingerprint(traces_db) == before
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn = source._connect()
        try:
            conn.execute("INSERT INTO traces (trace_id) VALUES ('intruder')")
        finally:
            conn.close()
    assert _fingerprint(traces_db) == before
    assert source.count() == 10


def test_openjarvis_source_sees_new_rows(traces_db):
    source = OpenJarvisTraceSource(traces_db)
    assert source.count() == 10
    writer = sqlite3.connect(traces_db)  # OpenJarvis, appending while we read
    writer.execute(
        "INSERT INTO traces (trace_id, query, started_at) VALUES ('new', 'fresh', ?)", (T0 + 10**6,)
    )
    writer.commit()
    writer.close()
    assert source.count() == 11 and source.list(limit=1)[0].trace_id == "new"


def test_openjarvis_source_reads_older_files_without_messages(tmp_path):
    path = tmp_path / "traces.db"
    _build_db(path, _rows()[:2], with_messages=False)
    record = OpenJarvisTraceSource(path).get("t1")
    assert record.query == "Query 1" and "messages" not in record.metadata


def test_openjarvis_source_errors_are_clear(tmp_path):
    with pytest.raises(WorkspaceError, match="not found"):
        OpenJarvisTraceSource(tmp_path / "traces.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(WorkspaceError, match="not an OpenJarvis traces database"):
        OpenJarvisTraceSource(other).count()


def test_open_trace_source_prefers_jsonl_then_db_then_empty(tmp_path, traces_db):
    assert isinstance(open_trace_source(tmp_path), OpenJarvisTraceSource)
    _jsonl(tmp_path / "traces.jsonl", _rows()[:1])
    assert isinstance(open_trace_source(tmp_path), JsonlTraceSource)
    empty = open_trace_source(tmp_path / "nowhere")
    assert isinstance(empty, EmptyTraceSource) and isinstance(empty, TraceSource)
    assert (empty.count(), empty.list(), empty.get("x"), empty.search("x")) == (0, [], None, [])


@pytest.mark.parametrize("text", ["", "\n", "  \n\n\t\n"])
def test_an_empty_traces_jsonl_never_hides_traces_db(tmp_path, traces_db, text):
    (tmp_path / "traces.jsonl").write_text(text)  # as `distill-es init` leaves it
    source = open_trace_source(tmp_path)
    assert isinstance(source, OpenJarvisTraceSource) and source.count() == 10


def test_an_empty_traces_jsonl_alone_is_read_so_later_lines_count(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text("")
    source = open_trace_source(tmp_path)
    assert source.count() == 0
    _jsonl(path, _rows()[:3])
    assert source.count() == 3


def test_a_configured_source_wins_over_the_workspace_files(tmp_path, traces_db):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _jsonl(elsewhere / "mine.jsonl", _rows()[:2])
    _jsonl(tmp_path / "traces.jsonl", _rows()[:5])
    source = open_trace_source(tmp_path, elsewhere / "mine.jsonl")
    assert isinstance(source, JsonlTraceSource) and source.count() == 2
    db = open_trace_source(tmp_path / "nowhere", traces_db)  # told by its SQLite header
    assert isinstance(db, OpenJarvisTraceSource) and db.count() == 10
    folder = open_trace_source(tmp_path / "nowhere", tmp_path)  # a folder holding a traces.db
    assert isinstance(folder, OpenJarvisTraceSource)
    renamed = tmp_path / "renamed.data"
    renamed.write_bytes(traces_db.read_bytes())
    assert isinstance(open_trace_source(tmp_path, renamed), OpenJarvisTraceSource)


def test_a_configured_source_that_is_missing_is_an_error_not_an_empty_source(tmp_path):
    with pytest.raises(WorkspaceError, match="traces source not found"):
        open_trace_source(tmp_path, tmp_path / "gone.db")
    with pytest.raises(WorkspaceError, match=r"neither traces\.db nor traces\.jsonl"):
        open_trace_source(tmp_path, tmp_path)


def test_reads_the_pinned_traces_db_written_by_openjarvis_itself(tmp_path):
    home = copy_openjarvis_home(tmp_path / "oj")
    before = _fingerprint(home / "traces.db"), _fingerprint(home / "traces.db-wal")
    source = open_trace_source(tmp_path / "ws", home / "traces.db")
    assert isinstance(source, OpenJarvisTraceSource)
    assert source.count() == TRACE_COUNT  # the 5 rows only in the WAL included
    newest = source.list(limit=TRACE_COUNT)
    assert [r.trace_id for r in newest[:3]] == ["oj-029", "oj-028", "oj-027"]
    assert len({r.trace_id for r in newest}) == TRACE_COUNT
    wal_only = source.get("oj-029")
    assert wal_only.query and wal_only.result and wal_only.agent == "orchestrator"
    assert wal_only.total_tokens == 129 and wal_only.latency_seconds == 1.5
    first = source.get("oj-000")
    assert first.outcome == "success" and first.feedback == 0.0 and first.query_class == "math"
    assert [s["step_type"] for s in first.steps] == ["route", "retrieve", "tool_call", "generate", "respond"]
    assert first.metadata["messages"][0] == {"role": "user", "content": "What is 17 * 23?"}
    assert first.metadata["engine"] == "vllm" and first.metadata["session"] == "s0"
    assert source.get("oj-003").feedback is None and source.get("oj-002").outcome is None
    assert {r.trace_id for r in source.list(limit=50, outcome="failure")} == {
        f"oj-{i:03d}" for i in range(1, 30, 3)
    }
    assert [r.trace_id for r in source.search("haïku", limit=2)] == ["oj-027", "oj-021"]
    assert (_fingerprint(home / "traces.db"), _fingerprint(home / "traces.db-wal")) == before


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            b'{"trace_id": "t3", "query": "caf\xe9"}',
            r"traces\.jsonl:3: not valid UTF-8 \(byte b'\\xe9' at column 33\)",
        ),
        (b"[" * 100_000, r"traces\.jsonl:3: JSON nested too deeply"),
    ],
)
def test_undecodable_lines_name_file_and_line(tmp_path, bad: bytes, message: str) -> None:
    path = tmp_path / "traces.jsonl"
    good = b'{"trace_id": "t1", "query": "q"}\n{"trace_id": "t2", "query": "r"}\n'
    path.write_bytes(good + bad + b"\n")
    with pytest.raises(WorkspaceError, match=message):
        JsonlTraceSource(path).count()


@pytest.mark.parametrize(
    "line",
    ['{"trace_id": 1}', '{"trace_id": "t", "query": null}', '{"trace_id": "t", "query": "  "}',
     '{"trace_id": "t", "query": 5}', '{"query": "q"}'],
)  # fmt: skip
def test_a_line_that_is_not_a_trace_is_refused_naming_file_and_line(tmp_path, line: str) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_text('{"trace_id": "ok", "query": "what is 2+2"}\n' + line + "\n")
    with pytest.raises(WorkspaceError, match=f"{path}:2: "):
        JsonlTraceSource(path).count()


def test_a_byte_order_mark_at_the_start_is_accepted(tmp_path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"trace_id": "a", "query": "q"}\n{"trace_id": "b", "query": "r"}\n')
    source = JsonlTraceSource(path)
    assert source.count() == 2 and source.get("a") is not None
