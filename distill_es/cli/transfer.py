"""`distill-es export` and `distill-es import`, mounted on the main app with `register`.

Exit codes (CONTRACT "Command line"): 1 a damaged file (or a damaged session in the source store),
2 usage, 3 not found (session or file), 4 conflict (the session already exists in the target store).
The engine and the store are imported only when a command runs, so mounting costs `--help` nothing.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from distill_es.adapters.terminal_safe import inert, json_safe
from distill_es.cli.console import print_error
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import HomeOption, JsonOption
from distill_es.domain.errors import DistillError, SessionNotFound

if TYPE_CHECKING:
    from distill_es.api import Engine
    from distill_es.store.app import EventStore

EngineOpener = Callable[..., "Engine | AbstractContextManager[Engine]"]


def _code_for(exc: Exception) -> int:
    from distill_es.app.transfer import DuplicateSessions

    if isinstance(exc, CliFailure):
        return exc.code
    if isinstance(exc, SessionNotFound):
        return 3
    if isinstance(exc, DuplicateSessions):
        return 4
    return 1  # DamagedExport, DamagedSession


def _hint_for(exc: Exception) -> str:
    from distill_es.app.transfer import DamagedExport, DamagedSession, DuplicateSessions

    if isinstance(exc, CliFailure):
        return exc.hint
    if isinstance(exc, DamagedExport):
        return "the file was changed or cut after export; export the session again from its store"
    if isinstance(exc, DamagedSession):
        return "`distill-es verify` lists the damage; the session cannot travel until it verifies"
    if isinstance(exc, DuplicateSessions):
        return "a session is imported once; the copy already in the store is the same session"
    return ""


@contextmanager
def _reporting() -> Iterator[None]:
    """Our own errors become a short message and their exit code; anything else goes to the main app."""
    try:
        yield
    except (CliFailure, DistillError) as exc:
        from distill_es.app.transfer import TransferError

        if not isinstance(exc, CliFailure | TransferError | SessionNotFound):
            raise
        message = exc.message if isinstance(exc, CliFailure) else str(exc)
        code = _code_for(exc)
        print_error(message, _hint_for(exc), code)  # inert: messages quote the file being imported
        raise typer.Exit(code) from None


@contextmanager
def _engine(
    open_engine: EngineOpener, ctx: typer.Context, home: Path | None, store: str | None, **options: Any
) -> Iterator[Engine]:
    from distill_es.ports import accepts_keyword

    # Options an older opener does not take (`read_only`) are left out: it opens as it always did.
    taken = {name: value for name, value in options.items() if accepts_keyword(open_engine, name)}
    opened = open_engine(ctx, home, store, **taken)
    if not hasattr(opened, "__enter__"):  # an Engine itself: ours to close
        try:
            yield opened
        finally:
            opened.close()
    else:
        with opened as engine:
            yield engine


def _resolve(store: EventStore, ref: str) -> str:
    """A full session id, or a unique prefix of one among the store's sessions."""
    ref = ref.strip().lower()
    if not ref:
        raise CliFailure(2, "the session id is empty")
    matches = [str(sid) for sid in store.iter_session_ids() if str(sid).startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SessionNotFound(f"no session in {store.url} has an id starting with {ref!r}")
    raise CliFailure(2, f"session prefix {ref!r} matches {len(matches)} sessions", "give more of the id")


def _write_atomically(target: Path, lines: Iterator[str]) -> str:
    """Write to a temp file beside `target`, then rename: a failed export never leaves half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    last = ""
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for last in lines:
                handle.write(last)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return last


def _open_input(path: str) -> IO[str]:
    """The export to read, checked to be a text file before any store is opened (a wrong file must
    not leave a new, empty target store behind)."""
    if path == "-":
        return sys.stdin
    file = Path(path).expanduser()
    if file.is_dir():
        raise CliFailure(
            2, f"{file} is a directory, not an export file", "give the .jsonl file `export` wrote"
        )
    if not file.is_file():
        raise CliFailure(3, f"no export file {file}")
    try:
        _check_text(file)
        return file.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise CliFailure(2, f"cannot read the export file {file}: {exc.strerror or exc}") from None


def _check_text(file: Path, chunk: int = 1 << 20) -> None:
    """CliFailure (usage) unless `file` is UTF-8 text without NUL bytes: read once, in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with file.open("rb") as handle:
        while True:
            data = handle.read(chunk)
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                _not_text(file, offset + exc.start)
            if "\x00" in text:
                _not_text(file, offset + data.index(b"\x00"))
            if not data:
                return
            offset += len(data)


def _not_text(file: Path, at: int) -> None:
    raise CliFailure(
        2,
        f"{file} is not an export file: byte {at} is not UTF-8 text (a binary file?)",
        "give the .jsonl file `distill-es export` wrote",
    )


def register(app: typer.Typer, open_engine: EngineOpener) -> None:
    """Add `export` and `import` to `app`.

    `open_engine(ctx, home, store)` is called with the command's `--home` value (None when not given)
    and a store URL to use instead of the default one (None: the default), and `read_only=True` by
    `export` (create no store); it returns an `Engine` or a context manager yielding one (closed after
    the command either way).
    """

    @app.command("export")
    def export(
        ctx: typer.Context,
        session: Annotated[
            str | None,
            typer.Argument(metavar="SESSION", show_default=False,
                           help="The session id, or a unique prefix of one."),
        ] = None,
        all_sessions: Annotated[
            bool, typer.Option("--all", help="Every session of the store, session by session.")
        ] = False,
        out: Annotated[
            Path | None,
            typer.Option("--out", metavar="FILE", show_default=False,
                         help="Write here (atomically) instead of to stdout."),
        ] = None,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:  # fmt: skip
        """Write a session's complete event stream as JSON Lines (or every session with --all).

        One event per line with its position, type, schema version, timestamp, payload and digest
        chain, then an end line with the counts. `distill-es import` verifies and loads it elsewhere.
        The stream is JSON already; with --out and --json, the counts are printed as JSON.
        """
        from distill_es.app.transfer import export_all, export_session

        with _reporting():
            if (session is None) == (not all_sessions):
                raise CliFailure(
                    2, "give either SESSION or --all", "e.g. `distill-es export --all --out store.jsonl`"
                )
            with _engine(open_engine, ctx, home, None, read_only=True) as engine:  # creates nothing
                store = engine.store
                lines = (
                    export_all(store)
                    if all_sessions
                    else export_session(store, _resolve(store, session or ""))
                )
                if out is None:
                    for line in lines:
                        sys.stdout.write(line)
                    sys.stdout.flush()
                    return
                end = json.loads(_write_atomically(out, lines))["end"]
            if as_json:
                typer.echo(json_safe(json.dumps({**end, "out": str(out)})))
                return
            typer.echo(f"exported {end['events']} events of {end['sessions']} session(s) to {inert(out)}")

    @app.command("import")
    def import_(
        ctx: typer.Context,
        file: Annotated[
            str, typer.Argument(metavar="FILE", show_default=False, help="An export file, or - for stdin.")
        ],
        store: Annotated[
            str | None,
            typer.Option("--store", metavar="URL", show_default=False,
                         help="The store to import into: sqlite:///path or postgresql://user@host:port/db. "
                         "Default: the workspace's store."),
        ] = None,
        move: Annotated[
            bool,
            typer.Option("--move", help="Make this store the workspace's own from now on (moving a "
                         "workspace to another store: export from the old one, import here)."),
        ] = False,
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:  # fmt: skip
        """Load an export into a store, verifying every line and digest before writing anything.

        A damaged file is refused with its line number and the reason (exit 1); a session the store
        already holds is refused (exit 4). Nothing is imported in either case. A workspace runs sessions
        in one store only (its owner): --move makes this store the workspace's from now on.
        """
        from distill_es.app.transfer import import_events

        with _reporting():
            source = _open_input(file)
            # Copying sessions into any store is allowed (a backup, the first step of a move): only
            # the workspace's owner runs them, and --move makes this store the owner.
            with _engine(open_engine, ctx, home, store, own=False) as engine:
                try:
                    report = import_events(engine.store, source)
                except UnicodeDecodeError:  # stdin, which cannot be checked before it is read
                    raise CliFailure(2, f"{file} is not an export file: it is not UTF-8 text") from None
                finally:
                    if source is not sys.stdin:
                        source.close()
                engine.index.catch_up()
                damaged = [r for s in report.sessions for r in engine.verify(s.session_id) if not r.ok]
                if move and not damaged:
                    from distill_es.app.ownership import move_owner

                    move_owner(engine.home, engine.store.url)
            if as_json:
                typer.echo(json_safe(report.model_dump_json()))
            else:
                count = len(report.sessions)
                store = inert(report.store)
                typer.echo(f"imported {report.events} events of {count} session(s) into {store}")
                for item in report.sessions:
                    typer.echo(f"  {inert(item.session_id)}  {item.events} events")
            if damaged:
                details: list[Any] = [d.detail for r in damaged for d in r.damage]
                raise CliFailure(1, f"imported, but verify reports damage: {'; '.join(map(str, details))}")


__all__ = ["EngineOpener", "register"]
