"""Safe file access inside a workspace: paths that cannot escape it, writes that cannot be torn.

The reference wrote edits with plain `write_text` (a crash could leave half a `config.toml`) and
built paths from teacher-supplied names without checking where they pointed.

Reads and writes share one containment check, `resolve_inside`: whatever the engine reads for the
teacher or the student (config, prompts, few-shot, tool descriptions) resolves inside the workspace
or is refused, exactly as an edit's writes are. Where an agent's files live is defined once here
(`prompt_path`, `few_shot_path`), with the agent name checked on the way.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from distill_es.domain.errors import InvalidEdit, WorkspaceError

TEMP_SUFFIX = ".distill_es-tmp"
CONFIG_FILE = "config.toml"
DESCRIPTIONS_FILE = "tools/descriptions.toml"
# Engine state and git's own files: inside the workspace, but never the student's configuration.
_PRIVATE_DIRS = (".git", ".distill_es")
_SAFE_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _checked_agent(agent: str) -> str:
    """An agent name that is one plain path part (it may come from the teacher)."""
    if not isinstance(agent, str) or not _SAFE_AGENT.match(agent) or ".." in agent:
        raise InvalidEdit(
            f"{agent!r} is not a safe agent name (letters, digits, '_', '-', '.'; no '..', no '/', "
            "not absolute)"
        )
    return agent


def prompt_path(agent: str) -> str:
    """Where an agent's system prompt lives, relative to the workspace (the one definition)."""
    return f"agents/{_checked_agent(agent)}/system_prompt.md"


def few_shot_path(agent: str) -> str:
    """Where an agent's few-shot exemplars live, relative to the workspace."""
    return f"agents/{_checked_agent(agent)}/few_shot.json"


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
    if target != base and target.relative_to(base).parts[0] in _PRIVATE_DIRS:
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
        raise WorkspaceError(f"{path} is not valid UTF-8: {exc}") from None


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
