"""Safe file access inside a workspace: paths that cannot escape it, writes that cannot be torn.

The reference wrote edits with plain `write_text` (a crash could leave half a `config.toml`) and
built paths from teacher-supplied names without checking where they pointed.

Reads and writes share one containment check, `resolve_inside`: whatever the engine reads for the
teacher or the student (config, prompts, few-shot, tool descriptions) resolves inside the workspace
or is refused, exactly as an edit's writes are. Where things live is defined once,
in `domain/layout.py`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from distill_es.domain.errors import InvalidEdit, WorkspaceError, WorkspaceFileInvalid
from distill_es.domain.layout import PRIVATE_DIRS

TEMP_SUFFIX = ".distill_es-tmp"


def read_inside(root: Path, relative: str) -> str | None:
    """The text of a workspace file (None when it does not exist), read only if it resolves inside the
    workspace: `InvalidEdit` for a '..', an absolute path or a symlink pointing out, as for writes."""
    return read_text(resolve_inside(root, relative))


def resolve_inside(root: Path, *parts: str) -> Path:
    """`root / parts`, fully resolved (symlinks followed); `InvalidEdit` if it would leave `root`."""
    for part in parts:
        if "\x00" in part:
            raise InvalidEdit(f"path part {part!r} contains a NUL byte")
        # Refuse both POSIX and Windows absolute forms: the name may come from a teacher.
        if PurePosixPath(part).is_absolute() or PureWindowsPath(part).is_absolute() or part.startswith("\\"):
            raise InvalidEdit(f"absolute path {part!r} is not allowed; paths are relative to the workspace")
    base = Path(root).resolve()
    joined = Path(*parts) if parts else Path()
    target = (base / joined).resolve()  # strict=False: the file may not exist yet
    if target != base and not target.is_relative_to(base):
        raise InvalidEdit(
            f"path {joined.as_posix()!r} resolves to {target}, outside the workspace {base} "
            "(a '..' part or a symlink pointing out)"
        )
    if target != base and target.relative_to(base).parts[0] in PRIVATE_DIRS:
        raise InvalidEdit(
            f"path {joined.as_posix()!r} resolves to {target}, inside the engine's or git's own files"
        )
    return target


def read_text(path: Path) -> str | None:
    """The file's exact text (no newline translation), or None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise WorkspaceError(f"{path} is a directory, expected a file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspaceFileInvalid(f"{path} is not valid UTF-8: {exc}") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8, bytes exactly as given) so that readers see the old file or the new one.

    A temp file in the same directory is written, fsynced and renamed over `path`; the directory is
    fsynced so the rename survives a crash. Missing parent directories are created. An existing file
    keeps its permission bits.
    """
    path = Path(path)
    data = text.encode("utf-8")  # fails before anything is written if `text` is not encodable
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Not every platform lets a directory be opened for fsync; the rename itself is still atomic.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
