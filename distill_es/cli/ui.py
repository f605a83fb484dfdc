"""`distill-es ui` (the local read-only web audit view) and `distill-es report` (a session's page as
one self-contained HTML file). Both need the `ui` extra: `pip install 'distill_es[ui]'`."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from distill_es.cli.console import err, out, print_json
from distill_es.cli.engines import read_only_engine, resolve_home, resolve_session
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import HomeOption, JsonOption, SessionArg, globals_of

if TYPE_CHECKING:
    pass

MISSING = "the web view needs Starlette, Jinja2 and uvicorn"
INSTALL = "install them with `pip install 'distill_es[ui]'`"


def _require_web() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise CliFailure(2, f"{MISSING} ({exc.name} is missing)", INSTALL) from None


def ui(
    ctx: typer.Context,
    home: HomeOption = None,
    port: Annotated[
        int, typer.Option("--port", metavar="P", min=0, max=65535, help="The port (0: any free one).")
    ] = 8765,
    host: Annotated[
        str,
        typer.Option("--host", metavar="H", help="The address to listen on. Only loopback unless you ask."),
    ] = "127.0.0.1",
    as_json: JsonOption = False,
) -> None:
    """Serve the read-only web audit view of this workspace's sessions until Ctrl-C.

    Pages: sessions, a session (as of any version), an edit's lineage and gate chart, trends, what-if
    re-gating and the review queue. It never writes to the store. With --json, one line
    {"url": ...} is printed once the server is listening.
    """
    _require_web()
    from distill_es.web.app import create_app
    from distill_es.web.serve import bind, host_problem, is_loopback, server, url_of

    problem = host_problem(host)
    if problem is not None:  # before binding: "" would listen on every interface
        raise CliFailure(2, f"--host: {problem}", "the default, 127.0.0.1, serves this machine only")
    path = resolve_home(ctx, home)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise CliFailure(4, f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         "choose another --port (0 picks a free one)") from None  # fmt: skip
    quiet = globals_of(ctx).quiet
    with sock, read_only_engine(ctx, path) as engine:
        url = url_of(sock)

        def listening() -> None:
            if as_json:
                typer.echo(json.dumps({"url": url, "home": str(path)}, ensure_ascii=False))
            else:
                out().print(Text(f"distill-es audit view of {path}: {url}  (read-only; Ctrl-C stops it)"),
                            soft_wrap=True)  # fmt: skip
            if not is_loopback(host) and not quiet:
                err().print(Text(f"warning: listening on {host}, not only on this machine", style="yellow"))

        # uvicorn re-raises the Ctrl-C it shut down on: stopping the server that way is success
        with contextlib.suppress(KeyboardInterrupt):
            server(create_app(engine), sock, listening).run(sockets=[sock])


def report(
    ctx: typer.Context,
    session: SessionArg,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="PATH", help="The HTML file to write.", show_default=False),
    ],
    home: HomeOption = None,
    at: Annotated[
        int | None,
        typer.Option("--at", metavar="VERSION", min=1, show_default=False,
                     help="The session as it was at this event version."),
    ] = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Write a session's page as one self-contained HTML file (no script, no link out) to attach to a
    review or a ticket. With --json: {"path": ..., "session_id": ...}."""
    _require_web()
    from distill_es.web.report import render_report

    target = report_target(output)  # refused before anything is read or written
    path = resolve_home(ctx, home)
    with read_only_engine(ctx, path) as engine:
        session_id = resolve_session(engine, session)
        html = render_report(engine, session_id, at=at)
    _write_atomically(target, html)
    if as_json:
        print_json({"path": str(target), "session_id": session_id})
    else:
        out().print(Text(f"wrote {target} (session {session_id})"), soft_wrap=True)


# What an existing path that is not a regular file is, for the refusal (never replaced by a file).
KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISSOCK, "a socket"))  # fmt: skip
# Write failures that are the chosen path's fault (exit 2); any other (a full disk) is exit 1.
PATH_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}


def report_target(output: Path) -> Path:
    """The file `-o` names, a symlink followed to its target: a missing path or a regular file. Any
    other existing thing (a directory, a device, a FIFO, a socket) is refused (exit 2), before any
    write, so a device or pipe is never replaced by a file; a missing folder is exit 3."""
    target = output.expanduser().resolve()  # follows symlinks: the target is written, in its folder
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise CliFailure(
            2, f"cannot write {output}: {exc.strerror or exc}", "choose another -o PATH"
        ) from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
        shown = f"{output} (-> {target})" if str(target) != str(output) else str(output)
        raise CliFailure(2, f"cannot write {shown}: it is {kind}, not a regular file",
                         "choose a path to a new or regular file with -o PATH")  # fmt: skip
    if not target.parent.is_dir():
        raise CliFailure(3, f"cannot write {target}: {target.parent} is not a folder", "create it first")
    return target


def _write_atomically(target: Path, text: str) -> None:
    """All or nothing: a temp file beside the target, then a rename."""
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        code = 2 if exc.errno in PATH_ERRORS else 1
        why = exc.strerror or str(exc)
        if tmp is None:  # the folder itself takes no new file (permissions, /proc, a read-only mount)
            why = f"no file can be created in {target.parent} ({why})"
        raise CliFailure(code, f"cannot write {target}: {why}", "choose another -o PATH") from None
