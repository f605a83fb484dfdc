"""docs/testing.md shows its examples exactly as they run in our suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("heading", "test_file"),
    [
        ("## Property-test an embedding", "tests/testing/test_embedding_example.py"),
        ("## Strategies and the session state machine", "tests/transfer/test_travelling_machine.py"),
    ],
)
def test_the_documented_examples_are_the_ones_we_run(heading: str, test_file: str):
    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = doc.split(heading, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, f"{heading!r} shows exactly one code block"
    assert blocks[0] == (ROOT / test_file).read_text(encoding="utf-8")


def test_the_documented_export_line_has_the_exported_keys():
    import json

    from distill_es.app.transfer import EVENT_KEYS

    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    line = re.search(r"```json\n(.*?)\n```", doc, flags=re.DOTALL)
    assert line is not None
    shown = json.loads(line.group(1))
    assert set(shown) == EVENT_KEYS and list(shown) == sorted(shown)
