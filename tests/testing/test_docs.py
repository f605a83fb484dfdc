"""docs/testing.md shows the embedding example exactly as it runs in our suite."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_embedding_example_is_the_one_we_run():
    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = doc.split("## Property-test an embedding", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section shows exactly one code block"
    example = (ROOT / "tests" / "testing" / "test_embedding_example.py").read_text(encoding="utf-8")
    assert blocks[0] == example


def test_the_documented_export_line_has_the_exported_keys():
    import json

    from distill_es.transfer import EVENT_KEYS

    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    line = re.search(r"```json\n(.*?)\n```", doc, flags=re.DOTALL)
    assert line is not None
    shown = json.loads(line.group(1))
    assert set(shown) == EVENT_KEYS and list(shown) == sorted(shown)
