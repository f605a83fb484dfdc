"""HEAD read and moved in process, as git does it: the ref file under a `.lock` taken with O_EXCL,
a compare-and-swap against the value we read, and a reflog entry for the branch and for HEAD."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from distill_es.domain.errors import WorkspaceConflict, WorkspaceError

_SHA = re.compile(r"^[0-9a-f]{40}$")
ZERO = "0" * 40


@dataclass(frozen=True)
class GitDirs:
    """`git_dir` holds HEAD and the index (a linked worktree has its own); `common_dir` holds
    objects, refs and config."""

    root: Path
    git_dir: Path
    common_dir: Path

    @property
    def index(self) -> Path:
        return self.git_dir / "index"

    @property
    def objects(self) -> Path:
        return self.common_dir / "objects"


def git_dirs(root: Path) -> GitDirs:
    """The repository at `root/.git` (a directory, or a `gitdir:` file for a worktree or submodule)."""
    dot = root / ".git"
    if dot.is_dir():
        return GitDirs(root, dot, dot)
    try:
        text = dot.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(f"{root} is not a git workspace yet; run init() first") from None
    if not text.startswith("gitdir:"):
        raise WorkspaceError(f"{dot} is neither a directory nor a 'gitdir:' file")
    git_dir = (root / text[len("gitdir:") :].strip()).resolve()
    common = git_dir
    with contextlib.suppress(FileNotFoundError):
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    return GitDirs(root, git_dir, common)


def _ref_dir(dirs: GitDirs, name: str) -> Path:
    # HEAD and per-worktree refs live in the worktree's git dir; branches in the common dir.
    per_worktree = name == "HEAD" or name.startswith(("refs/bisect/", "refs/worktree/", "refs/rewritten/"))
    return dirs.git_dir if per_worktree else dirs.common_dir


def read_ref(dirs: GitDirs, name: str) -> str | None:
    """The sha a (non-symbolic) ref names: its loose file, else packed-refs; None if unborn."""
    try:
        value = (_ref_dir(dirs, name) / name).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        value = _packed(dirs.common_dir, name)
    if value is None or not _SHA.match(value):
        return None
    return value


def _packed(common_dir: Path, name: str) -> str | None:
    try:
        lines = (common_dir / "packed-refs").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        if line.endswith(" " + name) and not line.startswith(("#", "^")):
            return line.split(" ", 1)[0]
    return None


def head(dirs: GitDirs) -> tuple[str | None, str | None]:
    """(the branch HEAD points at or None when detached, HEAD's sha or None without commits)."""
    try:
        text = (dirs.git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise WorkspaceError(f"{dirs.root} is not a git workspace yet; run init() first") from None
    if text.startswith("ref:"):
        branch = text[4:].strip()
        for _ in range(5):  # a symref to a symref: rare, but git follows a few
            target = _ref_dir(dirs, branch) / branch
            try:
                inner = target.read_text(encoding="ascii").strip()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                break
            if not inner.startswith("ref:"):
                break
            branch = inner[4:].strip()
        return branch, read_ref(dirs, branch)
    return None, text if _SHA.match(text) else None


def move_head(dirs: GitDirs, new: str, old: str | None, message: str, ident: str) -> None:
    """Point HEAD's branch (or a detached HEAD) at `new`, if it still names `old`; else
    `WorkspaceConflict`. `ident` is `Name <email> <time> <tz>`, the reflog's who and when."""
    branch, _ = head(dirs)
    name = branch or "HEAD"
    path = _ref_dir(dirs, name) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise WorkspaceConflict(
            f"another git process is updating {name} in {dirs.root} ({lock} exists); wait for it to "
            "finish, or remove that file if no git process is running"
        ) from None
    try:
        current = read_ref(dirs, name)
        if current != old:
            raise WorkspaceConflict(
                f"{name} in {dirs.root} moved from {(old or 'nothing')[:10]} to "
                f"{(current or 'nothing')[:10]} "
                "while distill_es was committing; nothing was committed"
            )
        os.write(fd, (new + "\n").encode())
        os.close(fd)
        fd = -1
        os.replace(lock, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        raise
    line = f"{old or ZERO} {new} {ident}\t{message.splitlines()[0] if message else ''}\n"
    _append_log(_ref_dir(dirs, name) / "logs" / name, line)
    if branch is not None:
        _append_log(dirs.git_dir / "logs" / "HEAD", line)


def _append_log(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write(line)
