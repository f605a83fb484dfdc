"""A fresh PostgreSQL database per test, on the server at 127.0.0.1:5432.

Skipped with a message when no server answers, unless DISTILL_ES_REQUIRE_POSTGRES=1 (CI), where an
unreachable server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "connect_timeout": 3}


def _admin():
    import psycopg

    return psycopg.connect(**ADMIN, autocommit=True)


def fresh_database(prefix: str = "distill_es_t") -> Iterator[str]:
    try:
        conn = _admin()
    except Exception as exc:
        if os.environ.get("DISTILL_ES_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but 127.0.0.1:5432 does not answer: {exc}")
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc}); these tests need it")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
