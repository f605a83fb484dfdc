"""Which event store a workspace belongs to: recorded on first use in `<home>/.distill_es/owner.json`.

Two stores driving one workspace both pay the teacher and then fight over its git history (each
store's workspace lock is its own: a file for SQLite, an advisory lock for PostgreSQL). So the first
command that writes records its store here, and a command with another store is refused before
anything is recorded. Store identities are computed by `store.urls.store_identity` (no credentials).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from distill_es.domain.layout import STATE_DIR

OWNER_FILE = "owner.json"
LEGACY_DEFAULT_STORE = "events.sqlite"  # a workspace used before owners were recorded


def owner_path(home: Path) -> Path:
    return Path(home) / STATE_DIR / OWNER_FILE


def recorded_owner(home: Path) -> str | None:
    """The store the workspace belongs to, or None when none was recorded yet (or the file is
    unreadable: it is then recorded again by the next write)."""
    try:
        data = json.loads(owner_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    store = data.get("store") if isinstance(data, dict) else None
    return store if isinstance(store, str) and store else None


def claim(home: Path, identity: str, default_identity: str) -> str:
    """The workspace's owner, recording `identity` as it when there is none yet. A workspace that
    already has sessions in its own default store (used before owners were recorded) belongs to
    that store (`default_identity`). Safe against concurrent first uses: the first file wins."""
    owner = recorded_owner(home)
    if owner is not None:
        return owner
    legacy = (Path(home) / STATE_DIR / LEGACY_DEFAULT_STORE).is_file()
    _write(home, default_identity if legacy else identity, replace=False)
    return recorded_owner(home) or identity


def move(home: Path, identity: str) -> None:
    """Record `identity` as the owner, replacing any other (the last step of moving a workspace)."""
    _write(home, identity, replace=True)


def _write(home: Path, identity: str, *, replace: bool) -> None:
    target = owner_path(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".owner-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({"store": identity}, file)
            file.write("\n")
        if replace:
            os.replace(temp, target)
        else:
            with contextlib.suppress(FileExistsError):  # another process recorded it first: it wins
                os.link(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
