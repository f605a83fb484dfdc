from __future__ import annotations

import distill_es.testing.servers as public
from distill_es.demo.servers import anthropic, json_http, openai, replies


def test_the_documented_path_exports_the_demo_servers_by_name() -> None:
    """`distill_es.testing.servers` is a documented path: it keeps exporting the same objects."""
    assert sorted(public.__all__) == sorted(
        [
            "MALFORMED",
            "MALFORMED_BODY",
            "AnthropicScript",
            "Json",
            "JsonHTTPServer",
            "ScriptedAnthropicServer",
            "ScriptedStudentServer",
            "last_user_text",
            "text_reply",
            "tool_use_reply",
            "tool_uses_reply",
            "with_usage",
        ]
    )
    homes = (anthropic, json_http, openai, replies)
    for name in public.__all__:
        assert any(getattr(home, name, None) is getattr(public, name) for home in homes), name
