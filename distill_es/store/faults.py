"""Environment faults: failures of the machine or the database (read-only, disk full, unreachable,
no tables…), each turned into one StoreError that says what happened and what to do."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from distill_es.domain.errors import StoreError, StoreMissing, StoreUnavailable

# Failures of the machine or the database, told apart by errno, SQLSTATE, or (for sqlite3, which has
# neither) the message text; each becomes one StoreError that says what happened and what to do.
_READ_ONLY = ("readonly database", "read-only file system", "read-only transaction")
_FULL = ("database or disk is full", "no space left on device", "could not extend file", "disk quota")
_UNREACHABLE = ("connection refused", "couldn't get a connection", "timeout expired", "could not connect",
                "could not translate host name", "name or service not known", "connection timed out",
                "server closed the connection", "no route to host", "network is unreachable")  # fmt: skip
_SQLITE_CODES = (("SQLITE_NOTADB", "not_a_database"),
                 ("SQLITE_FULL", "full"), ("SQLITE_READONLY", "read_only"), ("SQLITE_IOERR", "io"),
                 ("SQLITE_CANTOPEN", "cannot_open"), ("SQLITE_BUSY", "locked"))  # fmt: skip
_PG_STATES = {"53100": "full", "25006": "pg_read_only", "42P01": "no_tables", "3D000": "no_database",
              "28P01": "denied", "28000": "denied", "42501": "denied", "57P03": "unreachable"}  # fmt: skip


# Only errors of these (the OS, the database drivers, git) can be the machine's fault; a message of
# any other error that happens to say "connection refused" is not looked at.
_ENVIRONMENT_MODULES = ("sqlite3", "eventsourcing", "psycopg", "git")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and its causes, those raised by the OS, a database driver or git only."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) or type(current).__module__.startswith(_ENVIRONMENT_MODULES):
            yield current
        current = current.__cause__ or current.__context__


def _fault_kind(exc: BaseException) -> str | None:
    for link in _chain(exc):
        state = getattr(link, "sqlstate", None)
        if state in _PG_STATES:
            return _PG_STATES[state]
        name = getattr(link, "sqlite_errorname", "")  # SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED, …
        if kind := next((k for prefix, k in _SQLITE_CODES if name.startswith(prefix)), None):
            return kind
        if isinstance(link, OSError) and link.errno in {errno.ENOSPC, errno.EDQUOT}:
            return "full"
        if isinstance(link, OSError) and link.errno == errno.EROFS:
            return "read_only"
        if isinstance(link, OSError) and link.errno in {errno.EACCES, errno.EPERM}:
            return "no_permission"
    text = " ".join(str(link) for link in _chain(exc)).lower()
    if "password authentication failed" in text or ("role " in text and "does not exist" in text):
        return "denied"
    if "database " in text and "does not exist" in text:
        return "no_database"
    for kind, needles in (("read_only", _READ_ONLY), ("full", _FULL), ("unreachable", _UNREACHABLE)):
        if any(needle in text for needle in needles):
            return kind
    if "file is not a database" in text:  # sqlite's words for a file that is anything else
        return "not_a_database"
    if "no such table" in text:
        return "no_tables"
    if "unable to open database file" in text:
        return "cannot_open"
    if "database is locked" in text:
        return "locked"
    if "disk i/o error" in text:  # sqlite's word for a WAL that cannot grow, or a failing disk
        return "io"
    return None


_NEXT = (
    " Nothing of the failed write was stored: once fixed, run the command again (a session stopped"
    " part-way continues with `distill-es resume SESSION`)."
)
FAULTS: dict[str, tuple[type[StoreError], str, str]] = {
    "read_only": (
        StoreUnavailable,
        "{where} is read-only ({detail})",
        "make the file and its folder writable (chmod, chattr -i, or remount read-write)." + _NEXT,
    ),
    "pg_read_only": (
        StoreUnavailable,
        "{where} is read-only ({detail})",
        "point --store at a writable primary (not a standby), or turn the database's "
        "default_transaction_read_only off." + _NEXT,
    ),
    "no_permission": (
        StoreUnavailable,
        "{where}: permission denied ({detail})",
        "check the permissions of the file and its folder (chmod, chown, chattr -i)." + _NEXT,
    ),
    "full": (
        StoreUnavailable,
        "{where} cannot grow: the disk is full ({detail})",
        "free disk space (or move the store with --store)." + _NEXT,
    ),
    "io": (
        StoreUnavailable,
        "{where} could not be read or written: the disk refused ({detail})",
        "check that the disk has free space and that the file and its folder are writable (chmod, "
        "chattr -i, or remount read-write)." + _NEXT,
    ),
    "not_a_database": (
        StoreUnavailable,
        "{where} cannot be read: file is not a database",
        "is it an event store? check --store / $DISTILL_ES_STORE (a SQLite event store is created by "
        "the first `distill-es run`); `distill-es doctor` checks everything",
    ),
    "cannot_open": (
        StoreUnavailable,
        "cannot open {where} ({detail})",
        "check that the file and its folder exist and are readable and writable",
    ),
    "locked": (
        StoreUnavailable,
        "{where} is locked by another process ({detail})",
        "wait for the other distill-es process to finish, then try again",
    ),
    "unreachable": (
        StoreUnavailable,
        "cannot reach {where} ({detail})",
        "start the database server, or check host and port in --store / $DISTILL_ES_STORE; then try again",
    ),
    "no_database": (
        StoreUnavailable,
        "{where} does not exist on its server ({detail})",
        "create the database (e.g. `createdb NAME`), or fix the name in --store",
    ),
    "denied": (
        StoreUnavailable,
        "{where} refused access ({detail})",
        "check the user and password in --store / $DISTILL_ES_STORE and the database's grants",
    ),
    "no_tables": (
        StoreMissing,
        "{where} holds no distill_es event log yet ({detail})",
        "check --store / $DISTILL_ES_STORE; a store is created by the first `distill-es run` "
        "(a worker store by `distill-es worker --migrate`)",
    ),
}


def store_fault(exc: BaseException, where: str, path: Path | None = None) -> StoreError | None:
    """The StoreError for an environment failure of `where` (read-only, disk full, unreachable, …);
    None when `exc` is not one (a bug, or a domain error: let it through as it is). `path`, the
    file concerned, lets a vague disk I/O error be told as a full disk when it is one."""
    if isinstance(exc, StoreError):
        return exc
    kind = _fault_kind(exc)
    if kind is None:
        return None
    if kind == "io" and path is not None and _disk_is_full(path):
        kind = "full"
    error_type, message, hint = FAULTS[kind]
    detail = " ".join(str(exc).split())[:200] or type(exc).__name__
    return error_type(message.format(where=where, detail=detail), hint)


def _disk_is_full(path: Path) -> bool:
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW_BYTES
    except OSError:
        return False


FULL_BELOW_BYTES = 64 * 1024  # less free space than a WAL append may need
