"""pytest plugin (registered through the `pytest11` entry point): fixtures for embedders' tests.

`workspace_factory(**options)` builds a student workspace in a temp dir with a real git baseline
(options as `distill_es.workspace.scaffold.create_workspace`; `demo=True` builds the demo world).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def workspace_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    def build(*, demo: bool = False, **options: Any) -> Path:
        home = tmp_path_factory.mktemp("workspace")
        if demo:
            from distill_es.demo.world import create_demo_workspace

            return create_demo_workspace(home, **options)
        from distill_es.workspace.scaffold import create_workspace

        return create_workspace(home, **options)

    return build
