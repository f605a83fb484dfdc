"""One owner per workspace: a command that writes with another store than the workspace's is refused
before anything is recorded (exit 4). The record lives in the workspace (workspace/ownership.py); the
store's identity is its credential-free name (store/urls.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

from distill_es.domain.errors import WorkspaceOwnedElsewhere
from distill_es.store.urls import default_store_url, describe_identity, store_identity
from distill_es.workspace import ownership


def require_owner(home: Path, url: str) -> None:
    """Record `url`'s store as the workspace's owner on first use; refuse any other store after."""
    identity = store_identity(url, home)
    owner = ownership.claim(home, identity, store_identity(default_store_url(home), home))
    if owner == identity:
        return
    quoted = shlex.quote(str(home))
    raise WorkspaceOwnedElsewhere(
        f"the workspace {home} belongs to {describe_identity(owner)}, not to {describe_identity(identity)}; "
        "nothing was recorded",
        f"use the workspace's own store, or move the workspace: `distill-es --home {quoted} export --all "
        f"--out ws.jsonl` (with its current store), then `distill-es --home {quoted} import ws.jsonl "
        "--store NEW_URL --move`; a session left running in the other store is ended with "
        "`distill-es --store OTHER_URL cancel SESSION`",
    )


def owner_of(home: Path) -> str | None:
    """The recorded owner's identity (None: no command has written yet)."""
    return ownership.recorded_owner(home)


def move_owner(home: Path, url: str) -> None:
    """Make `url`'s store the workspace's owner (after its sessions were imported there)."""
    ownership.move(home, store_identity(url, home))
