"""One commit made in process, as `git commit --only <paths> -m MESSAGE` makes it: blobs and trees
written to the object database, the index entries of those paths updated first (so a crash before
HEAD moves leaves a dirty tree that `restore` repairs, never a commit with a stale index), the
user's hooks run, HEAD moved with a reflog entry. No git process starts unless a hook exists, and
no `git maintenance` or `gc` is ever started on the user's behalf."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from distill_es.domain.errors import WorkspaceConflict
from distill_es.workspace import git_hooks, git_index, git_refs
from distill_es.workspace.commit_messages import parse_trailers
from distill_es.workspace.git_cli import GitCli
from distill_es.workspace.git_config import read_config
from distill_es.workspace.git_objects import Entry, ObjectStore
from distill_es.workspace.git_refs import GitDirs
from distill_es.workspace.identity import commit_identity

_INHERITED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX")


def commit(
    dirs: GitDirs,
    store: ObjectStore,
    cli: GitCli,
    *,
    head: str,
    changes: Mapping[str, Entry | None],
    message: str,
) -> str:
    """Commit `changes` (path → (mode, blob sha), None to delete) on top of `head`; returns the new
    commit's sha. The blobs must be in the object database already and the working files must hold
    them (the index takes its stat data from them)."""
    config = read_config(dirs.common_dir)
    identity = commit_identity(lambda section, key: config.get(section, key))
    _update_index(dirs, cli, changes)
    hooks = git_hooks.hooks_dir(dirs.git_dir, dirs.root, config.get("core", "hooksPath"))
    env = _hook_env(dirs, cli, identity.env)
    final = dict(changes)
    if (pre_commit := git_hooks.find(hooks, "pre-commit")) is not None:
        git_hooks.run(pre_commit, [], root=dirs.root, env=env)
        # The hook may have re-staged our files (a formatter): commit what the index holds now.
        staged = git_index.read_entries(dirs.index)
        final = {p: git_index.entry_of(staged.get((p, 0))) for p in changes}
    message = message if message.endswith("\n") else message + "\n"
    message = _message_hooks(dirs, hooks, env, message)
    tree = store.with_files(store.commit(head).tree, final)
    body = (
        f"tree {tree}\nparent {head}\nauthor {identity.author}\ncommitter {identity.committer}\n\n{message}"
    )
    sha = store.write(b"commit", body.encode("utf-8"))
    subject = message.split("\n", 1)[0]
    git_refs.move_head(dirs, sha, head, f"commit: {subject}", identity.committer)
    if (post_commit := git_hooks.find(hooks, "post-commit")) is not None:
        git_hooks.run(post_commit, [], root=dirs.root, env=env, check=False)  # git ignores its status
    return sha


def _update_index(dirs: GitDirs, cli: GitCli, changes: Mapping[str, Entry | None]) -> None:
    try:
        git_index.update(dirs.index, dirs.root, changes)
    except git_index.IndexUnsupported:  # an index format GitPython cannot write: git writes it
        for path, entry in changes.items():
            if entry is None:
                cli("update-index", "--force-remove", "--", path)
            else:
                cli("update-index", "--add", "--cacheinfo", f"{entry[0]:o},{entry[1]},{path}")
        cli("update-index", "--refresh", "-q", "--", *changes)


def _hook_env(dirs: GitDirs, cli: GitCli, identity: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    env.update(cli.env(dirs.index))
    env.update(identity)
    env.update(GIT_INDEX_FILE=str(dirs.index), GIT_EDITOR=":")
    return env


def _message_hooks(dirs: GitDirs, hooks: Path, env: Mapping[str, str], message: str) -> str:
    """prepare-commit-msg and commit-msg, which may edit the message; the edited message must keep
    every trailer distill_es wrote (they are how a crash is reconciled)."""
    prepare = git_hooks.find(hooks, "prepare-commit-msg")
    check = git_hooks.find(hooks, "commit-msg")
    if prepare is None and check is None:
        return message
    path = dirs.git_dir / "COMMIT_EDITMSG"
    path.write_text(message, encoding="utf-8")
    if prepare is not None:
        git_hooks.run(prepare, [str(path), "message"], root=dirs.root, env=env)
    if check is not None:
        git_hooks.run(check, [str(path)], root=dirs.root, env=env)
    edited = path.read_text(encoding="utf-8", errors="replace")
    ours, theirs = parse_trailers(message), parse_trailers(edited)
    lost = [f"{k}: {v}" for k, values in ours.items() for v in values if v not in theirs.get(k, [])]
    if lost:
        raise WorkspaceConflict(
            f"the repository's commit message hooks removed the trailers distill_es needs "
            f"({', '.join(lost)}); nothing was committed"
        )
    return edited if edited.endswith("\n") else edited + "\n"
