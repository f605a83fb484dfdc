"""Store URLs: `sqlite:///<path>` (default `<home>/.distill_es/events.sqlite`) or
`postgresql://user@host:port/db`, parsed, described for messages, and turned into the `eventsourcing`
environment that opens them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import ParseResult, quote, unquote, urlparse

from distill_es.domain.errors import StoreMissing, StoreUnavailable, StoreUrlError
from distill_es.domain.layout import STATE_DIR
from distill_es.store.faults import store_fault


def default_store_url(home: Path) -> str:
    return f"sqlite:///{(Path(home) / STATE_DIR / 'events.sqlite').resolve()}"


URL_FORMS = "sqlite:///path/to/events.sqlite or postgresql://user@host:port/db"
URL_HINT = f"pass --store {URL_FORMS} (or fix $DISTILL_ES_STORE)"


def parse_url(url: str) -> ParseResult:
    """The URL split into parts, or a StoreUrlError naming what is wrong with it."""
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - a port that is not a number raises only when read
    except ValueError as exc:
        raise StoreUrlError(f"store URL {url!r} is malformed ({exc})", URL_HINT) from None
    if parsed.scheme not in {"sqlite", "postgresql", "postgres"}:
        scheme = f"scheme {parsed.scheme!r}" if parsed.scheme else "no scheme"
        raise StoreUrlError(f"store URL {url!r} has {scheme}: distill_es stores events in SQLite or "
                            "PostgreSQL only", URL_HINT)  # fmt: skip
    return parsed


def sqlite_path(url: str) -> Path | None:
    """The SQLite file a store URL names; None for a PostgreSQL URL."""
    parsed = parse_url(url)
    if parsed.scheme != "sqlite":
        return None
    path = unquote(parsed.path)
    if path.startswith("//"):  # sqlite:////abs/path (four slashes) names /abs/path
        path = "/" + path.lstrip("/")
    if parsed.netloc or not path or path == "/":
        raise StoreUrlError(f"store URL {url!r} names no SQLite file (use sqlite:///path/to/file: three "
                            "slashes, then the path)", URL_HINT)  # fmt: skip
    return Path(path)


def describe_store(url: str) -> str:
    """The store for a message: its file, or its database and server (never the password)."""
    path = sqlite_path(url)
    if path is not None:
        return f"the event store {path}"
    parsed = parse_url(url)
    return (f"the PostgreSQL store {parsed.path.lstrip('/')!r} at "
            f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5432}")  # fmt: skip


def store_env(url: str, *, create_tables: bool = True, read_only: bool = False) -> dict[str, str]:
    """eventsourcing environment for a store URL. Without `create_tables` nothing is created: a
    SQLite file that does not exist is a StoreMissing (sqlite would otherwise create it). `read_only`
    (SQLite): the file is opened with mode=ro, so no write can reach it."""
    env = {
        "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "CREATE_TABLE": "y" if create_tables else "n",
    }
    parsed = parse_url(url)
    path = sqlite_path(url)
    if path is not None:
        if path.is_dir():  # sqlite would say "unable to open database file"; the URL is what is wrong
            raise StoreUrlError(
                f"store URL {url!r} names the directory {path}, not a SQLite file",
                f"name a file in it, e.g. --store sqlite:///{path / 'events.sqlite'}",
            )
        if create_tables:
            _make_parent(path)
        elif not path.is_file():
            raise StoreMissing(
                f"no event store at {path}: the file does not exist (nothing was created)",
                "check the path given to --store (or $DISTILL_ES_STORE); a store is created by the "
                "first `distill-es run`",
            )
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path), SQLITE_LOCK_TIMEOUT="10"
        )
        if read_only:  # eventsourcing connects with uri=True
            env["SQLITE_DBNAME"] = f"file:{quote(str(path))}?mode=ro"
    else:
        dbname = parsed.path.lstrip("/")
        if not dbname:
            raise StoreUrlError(
                f"store URL {url!r} names no database (postgresql://user@host:port/db)", URL_HINT
            )
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=dbname,
            POSTGRES_HOST=parsed.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parsed.port or 5432),
            POSTGRES_USER=unquote(parsed.username or "postgres"),
            POSTGRES_PASSWORD=unquote(parsed.password or ""),
            POSTGRES_CONNECT_TIMEOUT=str(PG_CONNECT_TIMEOUT),
            POSTGRES_POOL_SIZE="2",
            POSTGRES_MAX_OVERFLOW="4",
        )
    return env


PG_CONNECT_TIMEOUT = 5  # seconds: a server that does not answer is reported, not waited for


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store_fault(exc, f"the event store {path}") or StoreUnavailable(
            f"cannot create the folder {path.parent} for the event store: {exc.strerror or exc}",
            "choose another --store path, or create the folder yourself",
        ) from exc


def is_postgres(url: str) -> bool:
    return parse_url(url).scheme in {"postgresql", "postgres"}


DEFAULT_STORE_ID = "default"  # the workspace's own <home>/.distill_es/events.sqlite, wherever home moves


def store_identity(url: str, home: Path) -> str:
    """Which store `url` is, stable across spellings and free of credentials: what a workspace
    records as its owner. The workspace's own default store is `default` (so a moved or copied
    workspace still belongs to its own file); another SQLite store is its resolved path; a
    PostgreSQL store is its server and database (never the user or the password)."""
    if url == default_store_url(home):
        return DEFAULT_STORE_ID
    path = sqlite_path(url)
    if path is not None:
        return f"sqlite:///{path.expanduser().resolve()}"
    parsed = parse_url(url)
    host = (parsed.hostname or "127.0.0.1").lower()
    host = "127.0.0.1" if host == "localhost" else host
    return f"postgresql://{host}:{parsed.port or 5432}/{parsed.path.lstrip('/')}"


def describe_identity(identity: str) -> str:
    """A store identity for a message."""
    if identity == DEFAULT_STORE_ID:
        return "the workspace's own store (.distill_es/events.sqlite)"
    return identity
