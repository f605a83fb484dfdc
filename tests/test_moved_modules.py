"""The module paths earlier releases documented still import, as the very modules of their new homes."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from distill_es._moved import MOVED

PACKAGE = Path(__file__).resolve().parents[1] / "distill_es"


def _file_of(module: str) -> list[Path]:
    relative = Path(*module.split(".")[1:])
    return [PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_no_module_of_its_own_and_its_new_home_is(old: str) -> None:
    assert not any(path.exists() for path in _file_of(old)), f"{old} exists: the hook would shadow it"
    assert any(path.exists() for path in _file_of(MOVED[old])), f"{MOVED[old]} does not exist"


def test_every_old_path_is_the_new_module_and_warns_once_in_a_fresh_process() -> None:
    # A fresh interpreter: in this one, other tests have imported the new homes already.
    script = (
        "import importlib, sys, warnings\n"
        "from distill_es._moved import MOVED\n"
        "for old, new in sorted(MOVED.items()):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    assert module.__spec__.name == new, (old, module.__spec__.name)\n"
        "    assert any(new in str(w.message) for w in caught), (old, [str(w.message) for w in caught])\n"
        "print(len(MOVED))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(MOVED)


def test_an_old_name_inside_a_moved_package_loads_no_second_copy() -> None:
    sys.modules.pop("distill_es.training.events", None)  # an earlier test may have imported it
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("distill_es.training.events")
    assert old is importlib.import_module("distill_es.domain.training.events")
