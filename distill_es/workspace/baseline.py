"""The baseline commit: found in process on every open (a small cache file in the git directory
remembers it and the HEAD it was last seen from, so only commits made since are read), made once
with the git command line in the engine's own index (no hooks: `commit-tree` runs none).

Never a change we did not make: tracked managed files with uncommitted or staged changes refuse the
baseline, and the user's other staged files stay staged and uncommitted.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from git import GitCommandError

from distill_es.domain.errors import WorkspaceConflict
from distill_es.domain.layout import TRACKED_PATHS
from distill_es.workspace.commit_messages import BASELINE_MESSAGE, BASELINE_TRAILER
from distill_es.workspace.git_cli import GIT_EMAIL, GIT_NAME, GitCli
from distill_es.workspace.git_refs import GitDirs
from distill_es.workspace.gitignore import merged_gitignore
from distill_es.workspace.trailer_log import replace_text
from distill_es.workspace.trailer_search import TrailerFinder, history

CACHE_NAME = "distill_es-baseline"  # "<baseline sha> <a HEAD it is an ancestor of>"
# The baseline is made by distill_es itself, whatever identity the user's repo has.
_IDENTITY = {
    "GIT_AUTHOR_NAME": GIT_NAME,
    "GIT_AUTHOR_EMAIL": GIT_EMAIL,
    "GIT_COMMITTER_NAME": GIT_NAME,
    "GIT_COMMITTER_EMAIL": GIT_EMAIL,
}


def _is_baseline(trailers: dict[str, list[str]]) -> bool:
    return BASELINE_TRAILER[1] in trailers.get(BASELINE_TRAILER[0], [])


def find(dirs: GitDirs, finder: TrailerFinder, head: str | None) -> str | None:
    """The newest baseline commit in HEAD's history (None without one)."""
    if head is None:
        return None
    cached = _read_cache(dirs)
    if (
        cached is not None
        and finder.store.kind(cached[0]) == b"commit"
        and _is_baseline(finder.trailers(cached[0]))
    ):
        base, tip = cached
        known = {base, tip} if finder.store.kind(tip) == b"commit" else {base}
        if head in known:
            return base
        for commit in history(finder.store, head, frozenset(known)):
            if _is_baseline(finder.trailers(commit.sha)):
                return _remember(dirs, commit.sha, head)
            if known & set(commit.parents):
                return _remember(dirs, base, head)
    found = finder.find(head, _is_baseline)
    return None if found is None else _remember(dirs, found, head)


def _read_cache(dirs: GitDirs) -> tuple[str, str] | None:
    try:
        parts = (dirs.git_dir / CACHE_NAME).read_text(encoding="ascii").split()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if len(parts) != 2 or not all(len(p) == 40 for p in parts):
        return None
    return parts[0], parts[1]


def _remember(dirs: GitDirs, base: str, head: str) -> str:
    with contextlib.suppress(OSError):  # only a cache: a read-only git dir just walks again
        replace_text(dirs.git_dir / CACHE_NAME, f"{base} {head}\n")
    return base


def create_repo(cli: GitCli) -> None:
    cli("init", "-q")
    cli("config", "user.name", GIT_NAME)
    cli("config", "user.email", GIT_EMAIL)
    cli("config", "core.autocrlf", "false")  # files must stay byte-identical


def refuse_user_changes(cli: GitCli, root: Path) -> None:
    """Tracked managed files the user changed and did not commit: the baseline must not take them."""
    out = cli("status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", "--", *TRACKED_PATHS)
    changed = sorted({entry[3:] for entry in out.split("\0") if len(entry) > 3})
    if changed:
        raise WorkspaceConflict(
            f"{root} has uncommitted changes to files distill_es manages: {', '.join(changed)}; "
            "commit or discard them first (the baseline commit never includes your uncommitted work)"
        )


def known(cli: GitCli, paths: tuple[str, ...]) -> list[str]:
    """Those of `paths` git knows: in HEAD, in the index, or untracked and not ignored."""
    listed = cli("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths)
    found = {p.split("/", 1)[0] for p in listed.split("\0") if p}
    with contextlib.suppress(GitCommandError):  # no HEAD yet
        found.update(cli("ls-tree", "--name-only", "HEAD", "--", *paths).splitlines())
    return [p for p in paths if p in found]


def commit_baseline(cli: GitCli, dirs: GitDirs, head: str | None) -> str:
    """The baseline commit, made from the engine's own index: HEAD's tree plus the managed paths
    (only untracked files can differ from HEAD there) and the engine's .gitignore patterns merged
    into HEAD's .gitignore. HEAD moves; the user's index is updated for exactly those paths."""
    index = dirs.git_dir / "distill_es-baseline.index"
    index.unlink(missing_ok=True)
    try:
        if head is not None:
            cli("read-tree", head, index_file=index)
        managed = known(cli, TRACKED_PATHS)
        if managed:
            cli("add", "-A", "--", *managed, index_file=index)
        # HEAD's own .gitignore plus our patterns: the user's uncommitted lines stay uncommitted.
        blob = _hash_blob(cli, merged_gitignore(_show(cli, head, ".gitignore")))
        cli("update-index", "--add", "--cacheinfo", f"100644,{blob},.gitignore", index_file=index)
        tree = cli("write-tree", index_file=index)
    finally:
        index.unlink(missing_ok=True)
    staged_before = _staged_paths(cli, head)
    parents = ["-p", head] if head is not None else []
    sha = cli("commit-tree", tree, *parents, "-m", BASELINE_MESSAGE, identity=_IDENTITY)
    cli("update-ref", "-m", "distill_es: baseline", "HEAD", sha, head or "", identity=_IDENTITY)
    # After HEAD moved, the user's index entries for our paths follow it (or git would show our
    # files as staged deletions), except entries the user had staged themselves.
    ours = [p for p in [*managed, ".gitignore"] if p not in staged_before]
    if ours:
        cli("reset", "-q", "HEAD", "--", *ours)
    return _remember(dirs, sha, sha)


def _staged_paths(cli: GitCli, head: str | None) -> set[str]:
    """Paths (top-level parts and full paths) the user has staged relative to `head`."""
    if head is None:
        out = cli("ls-files", "-z", "--cached")
    else:
        out = cli("diff", "--cached", "--name-only", "-z", head)
    staged = {p for p in out.split("\0") if p}
    return staged | {p.split("/", 1)[0] for p in staged}


def _show(cli: GitCli, head: str | None, path: str) -> str:
    """The file's text at `head` ("" without a head or without the file)."""
    if head is None:
        return ""
    try:
        return cli("show", f"{head}:{path}", strip_newline_in_stdout=False)
    except GitCommandError:
        return ""


def _hash_blob(cli: GitCli, text: str) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
        handle.write(text.encode("utf-8"))
    try:
        return cli("hash-object", "-w", "--no-filters", handle.name)
    finally:
        os.unlink(handle.name)
