"""Real environment faults for tests: files that refuse writes, and a disk that is full.

- `refusing_writes(*paths)`: as root (where chmod stops nothing) the files get `chattr +i`, which
  also fails writes through files already open; otherwise they lose their write bits. Skipped with
  the reason when neither works here.
- `small_disk(folder, size)`: a tmpfs of `size` mounted on `folder` (root only; skipped otherwise),
  and `fill(folder)` takes its last free byte.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def is_root() -> bool:
    return os.geteuid() == 0


def _chattr(flag: str, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def refusing_writes(*paths: Path) -> Iterator[None]:
    """While inside, every write to `paths` (files or folders) fails; restored on the way out."""
    targets = [Path(p) for p in paths if Path(p).exists()]
    if is_root():
        if shutil.which("chattr") is None:
            pytest.skip("running as root, where chmod does not stop writes, and chattr is not installed")
        done = _chattr("+i", targets)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i is refused here: {done.stderr.strip()}")
        try:
            yield
        finally:
            _chattr("-i", targets)
        return
    modes = {p: p.stat().st_mode for p in targets}
    for path in targets:
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def stops_open_files() -> None:
    """Skip unless `refusing_writes` also fails writes through files already open (chattr does)."""
    if not is_root():
        pytest.skip("without root only chmod is available, and it does not stop writes to open files")


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if not is_root():
        pytest.skip("mounting a small tmpfs (a disk that can be filled) needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its disk has no byte left; return it (delete it to free)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 4096, 512, 1):  # down to the last partial block
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    probe = folder / "probe"
    try:
        probe.write_bytes(b"x" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    else:
        probe.unlink()
        pytest.fail(f"{folder} still takes writes after filling it")
    return filler


def grow(folder: Path, size: str) -> None:
    """Give a `small_disk` more room (the files on it stay)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
