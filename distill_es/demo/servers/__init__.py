"""Real HTTP servers on 127.0.0.1 that speak the teacher's and the student's wire formats.

Tests point the real `anthropic.Anthropic` / `openai.OpenAI` clients at these, so retries, timeouts,
headers and response parsing are the SDKs' own. Everything a server returns is deterministic: ids are
derived from the request, token counts from its size.

    with ScriptedAnthropicServer([tool_use_reply("list_traces", {}), text_reply("done")]) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test")

- `json_http.py`: the threaded JSON server both build on, and injected failures;
- `derive.py`: ids and token counts derived from a request;
- `replies.py`: compact teacher replies for scripts;
- `anthropic.py`: `ScriptedAnthropicServer` (Messages API, prompt caching);
- `openai.py`: `ScriptedStudentServer` (OpenAI-compatible chat completions).

`distill_es.testing.servers` is the documented path that exports all of them.
"""
