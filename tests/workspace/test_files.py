from __future__ import annotations

import os
from pathlib import Path

import pytest

from distill_es.domain.errors import InvalidEdit, WorkspaceError
from distill_es.workspace import files
from distill_es.workspace.files import TEMP_SUFFIX, atomic_write_text, read_text, resolve_inside


def test_resolve_inside_joins_relative_parts(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "agents", "simple", "system_prompt.md") == (
        tmp_path.resolve() / "agents" / "simple" / "system_prompt.md"
    )
    assert resolve_inside(tmp_path, "agents/simple/../other/x.md") == tmp_path.resolve() / "agents/other/x.md"
    assert resolve_inside(tmp_path) == tmp_path.resolve()


@pytest.mark.parametrize(
    "parts",
    [("../../x",), ("agents", "..", "..", "x"), ("..",), ("agents/../../etc/passwd",)],
)
def test_resolve_inside_refuses_dot_dot_escapes(tmp_path: Path, parts: tuple[str, ...]) -> None:
    with pytest.raises(InvalidEdit, match="outside the workspace"):
        resolve_inside(tmp_path / "home", *parts)


@pytest.mark.parametrize("part", ["/etc/passwd", "/", "\\\\server\\share", "C:\\x", "C:/x"])
def test_resolve_inside_refuses_absolute_parts(tmp_path: Path, part: str) -> None:
    with pytest.raises(InvalidEdit, match="absolute path"):
        resolve_inside(tmp_path, "agents", part)


def test_resolve_inside_refuses_nul(tmp_path: Path) -> None:
    with pytest.raises(InvalidEdit, match="NUL"):
        resolve_inside(tmp_path, "a\x00b")


def test_resolve_inside_refuses_symlink_pointing_out(tmp_path: Path) -> None:
    home, outside = tmp_path / "home", tmp_path / "outside"
    (home / "agents").mkdir(parents=True)
    outside.mkdir()
    (home / "agents" / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidEdit, match="symlink"):
        resolve_inside(home, "agents", "evil", "system_prompt.md")


def test_resolve_inside_allows_symlink_staying_inside(tmp_path: Path) -> None:
    (tmp_path / "agents" / "real").mkdir(parents=True)
    (tmp_path / "agents" / "alias").symlink_to(tmp_path / "agents" / "real", target_is_directory=True)
    assert resolve_inside(tmp_path, "agents", "alias", "p.md") == tmp_path.resolve() / "agents/real/p.md"


def test_atomic_write_keeps_bytes_exactly_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "f.txt"
    text = "line one\r\nzwei – ü\n\u2028 last without newline"
    atomic_write_text(target, text)
    assert target.read_bytes() == text.encode("utf-8")
    assert read_text(target) == text
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_atomic_write_keeps_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write_text(target, "new")
    assert target.stat().st_mode & 0o777 == 0o600
    assert target.read_text() == "new"


def test_atomic_write_crash_before_rename_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "config.toml"
    target.write_text("old = 1\n")

    def crash(src: str, dst: str) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        atomic_write_text(target, "new = 2\n")
    assert target.read_text() == "old = 1\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_atomic_write_refuses_unencodable_text_before_touching_anything(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800 surrogate")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_read_text_missing_and_non_utf8(tmp_path: Path) -> None:
    assert read_text(tmp_path / "nope") is None
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(WorkspaceError, match="not valid UTF-8"):
        read_text(tmp_path / "bin")
