"""docs/training.md shows the lifecycle the code enforces and lists every failure reason."""

from __future__ import annotations

import re
from pathlib import Path

from distill_es.domain.training import lifecycle
from distill_es.domain.training.reasons import FAILURE_REASONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def test_the_diagram_is_the_machine() -> None:
    text = DOC.read_text(encoding="utf-8")
    diagram = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert diagram is not None and diagram.group(1) == lifecycle.mermaid()


def test_every_reason_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in FAILURE_REASONS:
        assert f"| `{code}` |" in text, code
