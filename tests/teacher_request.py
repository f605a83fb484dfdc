"""One teacher request the digest, prompt-cache and SDK tests share (unicode, tools, a tool turn)."""

PARAMS = {
    "model": "claude-opus-4-6",
    "max_tokens": 1024,
    "system": "You are the teacher. Ünïcödé ✓",
    "tools": [
        {"name": "list_traces", "description": "List traces", "input_schema": {"type": "object"}},
        {"name": "get_trace", "description": "One trace", "input_schema": {"type": "object"}},
    ],
    "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": "Study the student."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "list_traces", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "[]"}]},
    ],
}
