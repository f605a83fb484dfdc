"""The git configuration a `git commit` in the workspace would see (system, global, repository;
later files win), read in process with GitPython's config parser instead of `git config`."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any

from git.config import GitConfigParser


def config_files(common_dir: Path) -> list[str]:
    env = os.environ
    files: list[Path] = []
    if not env.get("GIT_CONFIG_NOSYSTEM"):
        files.append(Path(env.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig"))
    if env.get("GIT_CONFIG_GLOBAL") is not None:
        files.append(Path(env["GIT_CONFIG_GLOBAL"]))
    else:
        xdg = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        files += [xdg / "git" / "config", Path.home() / ".gitconfig"]
    files.append(common_dir / "config")
    return [str(f) for f in files if f.is_file()]


class GitConfig:
    """A read-only view of the merged configuration."""

    def __init__(self, common_dir: Path) -> None:
        self._parser = GitConfigParser(config_files(common_dir), read_only=True)
        self._values: dict[tuple[str, str], Any] = {}

    def get(self, section: str, option: str, default: Any = None) -> Any:
        key = (section, option.lower())
        if key not in self._values:
            try:
                self._values[key] = self._parser.get_value(section, option.lower())
            except (configparser.Error, ValueError):
                self._values[key] = None
        found = self._values[key]
        return default if found is None else found

    def flag(self, section: str, option: str, default: bool) -> bool:
        value = self.get(section, option, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        return str(value).strip().lower() in ("true", "yes", "on", "1", "")


_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], GitConfig]] = {}


def read_config(common_dir: Path) -> GitConfig:
    """The configuration, parsed again only when one of its files changed (or appeared, or went)."""
    files = config_files(common_dir)
    stamp = tuple((f, (st := os.stat(f)).st_mtime_ns, st.st_size) for f in files)
    cached = _CACHE.get(common_dir)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    config = GitConfig(common_dir)
    _CACHE[common_dir] = (stamp, config)
    return config
