"""PostgreSQL beside the pool: direct connections (advisory locks, table creation, the server's own
reason for a failure) and the check that the store's tables exist."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from eventsourcing.application import Application

from distill_es.store.faults import FAULTS, store_fault
from distill_es.store.urls import PG_CONNECT_TIMEOUT, describe_store, store_env

DDL_LOCK_KEY = 0x64697374696C6C  # pg_advisory_lock key of table creation ("distill" in hex)


def pg_connect(url: str) -> Any:
    """One direct autocommit connection to the store's database; a server that refuses or does not
    answer is a StoreUnavailable with the server's own reason (refused, no such database, …)."""
    import psycopg

    env = store_env(url, create_tables=False)
    try:
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=PG_CONNECT_TIMEOUT, autocommit=True,
        )  # fmt: skip
    except psycopg.Error as exc:
        raise store_fault(exc, describe_store(url)) or exc from exc


@contextlib.contextmanager
def pg_probe(url: str) -> Iterator[Any]:
    """A direct connection beside the pool's, closed on the way out (with any session lock it took)."""
    connection = pg_connect(url)
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def asking_the_server_why(url: str) -> Iterator[None]:
    """The pool says only "couldn't get a connection" (after its timeout): on a failure, one direct
    connection gets the server's own reason (refused, no such database, bad password) as a
    StoreUnavailable; if that connection works, the pool's error stands."""
    try:
        yield
    except Exception:
        pg_connect(url).close()
        raise


def pg_tables_present(app: Application, url: str) -> bool:
    tables = [f"{app.name}_events", f"{app.name}_snapshots"]  # the Application names its tables
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with asking_the_server_why(url), datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AS ok", tables)
        return bool(cursor.fetchone()["ok"])


def missing_tables(url: str) -> tuple[str, str]:
    _, message, hint = FAULTS["no_tables"]
    return message.format(where=describe_store(url), detail="no distill_es_events table"), hint


def register_row_types(app: Application) -> None:
    """Have each recorder's pool know the composite row types its tables use (a no-op once known)."""
    for recorder in (app.recorder, app.snapshots.recorder if app.snapshots else None):
        datastore = getattr(recorder, "datastore", None)
        if datastore is not None:
            datastore.register_type_adapters()
