"""docs/events.md is generated from the event models and must match them."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_events_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_event_docs", ROOT / "scripts" / "gen_event_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "events.md").read_text() == module.render(), (
        "docs/events.md is stale: run python scripts/gen_event_docs.py"
    )
