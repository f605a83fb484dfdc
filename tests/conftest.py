"""Fixtures shared by the whole suite.

- `postgres_url`: a PostgreSQL database created for this test run on 127.0.0.1:5432 and dropped at the
  end (skipped with a message when no server answers; a failure when DISTILL_ES_REQUIRE_POSTGRES=1).
- `fresh_postgres_url`: that database with the event store's tables emptied, for one test.
- `store_url`: an empty event store for one test, once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import ADMIN, fresh_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    yield from fresh_database("distill_es_test")


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """The run's database with every table emptied (ids restart), so each test sees an empty store."""
    import psycopg

    name = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(**{**ADMIN, "dbname": name}, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file in this test's temp dir, or the emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")
