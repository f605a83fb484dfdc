"""Generate docs/events.md from the event classes (a test fails when the file is stale).

python scripts/gen_event_docs.py          # rewrite docs/events.md
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path

from distill_es.domain.session import events as ev

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "digest"}

HEADER = """\
# Events reference

Generated from `distill_es/domain/session/events.py` by `scripts/gen_event_docs.py` — do not edit by hand.

Every event also carries its envelope: the session id (`originator_id`), its position in the session
(`originator_version`, from 1, contiguous), a UTC `timestamp`, and a `digest` chaining it to the
previous event of the session (see [architecture.md](architecture.md)). Topics are explicit and
stable: renaming a class never orphans stored events. `schema` is the event's `class_version`; older
stored shapes are upcast when read.
"""


def _type_name(annotation: object) -> str:
    if typing.get_origin(annotation) is None and hasattr(annotation, "__name__"):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def render() -> str:
    parts = [HEADER]
    for cls in ev.EVENT_TYPES:
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if f.name not in ENVELOPE]
        doc = (cls.__doc__ or "").strip().splitlines()
        schema = getattr(cls, "class_version", 1)
        parts.append(f"\n## {cls.__name__}\n\ntopic `{cls.TOPIC}` · schema {schema}\n")
        if doc and not doc[0].startswith(cls.__name__ + "("):
            parts.append("\n" + " ".join(line.strip() for line in doc) + "\n")
        if fields:
            parts.append("\n| field | type |\n|---|---|\n")
            parts.extend(f"| `{f.name}` | `{_type_name(hints.get(f.name, f.type))}` |\n" for f in fields)
    return "".join(parts)


def main() -> int:
    DOC.write_text(render())
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
