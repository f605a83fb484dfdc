"""`report -o PATH` writes only a new or regular file (a symlink: its target, in the target's folder);
a directory, device, FIFO or socket is refused with exit 2 before anything is written."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from .conftest import Store, cli


def report(store: Store, target: Path | str) -> tuple[int, dict[str, object]]:
    result = cli("--home", store.home, "report", store.session_id, "-o", target, "--json")
    error = json.loads(result.stderr) if result.exit_code else {}
    assert "this is a bug" not in result.output and "Traceback" not in result.output
    return result.exit_code, error


def test_a_fifo_is_refused_and_stays_a_fifo(demo_store: Store, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, error = report(demo_store, fifo)
    assert code == 2 and error["exit_code"] == 2
    assert str(fifo) in str(error["error"]) and "FIFO" in str(error["error"])
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_to_a_fifo_is_refused(demo_store: Store, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.html"
    link.symlink_to(fifo)
    code, error = report(demo_store, link)
    assert code == 2 and "FIFO" in str(error["error"]) and str(link) in str(error["error"])
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


def test_a_directory_is_a_usage_error(demo_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    code, error = report(demo_store, folder)
    assert code == 2 and "is a directory" in str(error["error"])
    assert folder.is_dir() and not any(folder.iterdir())


def test_a_socket_is_refused(demo_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        code, error = report(demo_store, path)
    assert code == 2 and "socket" in str(error["error"])


def test_a_device_is_refused_before_any_write(demo_store: Store) -> None:
    """/dev/null only: the refusal happens before any write, so the device is never touched."""
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    code, error = report(demo_store, "/dev/null")
    assert code == 2 and "/dev/null" in str(error["error"]) and "character device" in str(error["error"])
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_symlink_to_a_file_writes_the_target_and_keeps_the_link(demo_store: Store, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "r.html"
    target.write_text("old", encoding="utf-8")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    code, _ = report(demo_store, link)
    assert code == 0
    assert link.is_symlink() and "<html" in target.read_text(encoding="utf-8").lower()
    assert not [p for p in (tmp_path / "real").iterdir() if p.name.startswith(".report-")]


def test_a_missing_folder_is_exit_3_and_an_unwritable_one_a_clean_error(
    demo_store: Store, tmp_path: Path
) -> None:
    code, _ = report(demo_store, tmp_path / "missing" / "r.html")
    assert code == 3
    code, error = report(demo_store, "/proc/version")
    assert code in (1, 2) and "/proc/version" in str(error["error"])
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _ = report(demo_store, locked / "r.html")
        assert code in (1, 2)


@pytest.mark.parametrize("existing", [False, True])
def test_a_regular_file_is_written_atomically(demo_store: Store, tmp_path: Path, existing: bool) -> None:
    target = tmp_path / "r.html"
    if existing:
        target.write_text("old", encoding="utf-8")
    assert report(demo_store, target)[0] == 0
    assert target.is_file() and "<html" in target.read_text(encoding="utf-8").lower()
