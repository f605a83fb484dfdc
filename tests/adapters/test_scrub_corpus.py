"""A corpus of credentials, one realistic sample per format, checked against what the teacher server
actually receives (issue 13, bullet 4), plus the things the teacher needs that must survive.

The samples are fake and assembled from pieces, so no real-looking key sits in the source as one literal.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.scrub import looks_random, scrub, scrub_obj
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer


@dataclass(frozen=True)
class Sample:
    kind: str
    text: str  # how it turns up in a trace, a file or a tool output
    secret: str  # what must never leave the machine


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
AWS_SECRET_2 = "je7MtGbClwBF/2Zp9Utk/" + "h3yCo8nvbEXAMPLEKEY"
AWS_ID = "AKIA" + "Z7Q3EXAMPLEID2XY"
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_RESTRICTED = "rk_live_" + "51H8xZ2eZvKYlo2C0aBcDeFgHiJk"
STRIPE_WEBHOOK = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HF = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
GITLAB = "glpat-" + "xY3zW9vU7tS5rQ1pO2nM"
AZURE = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/" + "K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_SAS = "c2VydmljZWJ1c2tleWV4YW1wbGVr" + "ZXl2YWx1ZTEyMzQ1Njc4OTA="
NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PYPI = "pypi-AgEIcHlwaS5vcmc" + "CJGQ4YjE3ZTk0LWQ5NjItNDc4Ny05YjlmLTc4MDYzZjA0MmI5MAACKlsz"
SENDGRID = "SG." + "ngeVfQFYQlKU0ufo8x5d1A" + "." + "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr"
SLACK_BOT = "xoxb-" + "1234567890-0987654321-" + "abcdefabcdefabcdefabcdef"
SLACK_HOOK = "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "aBcD1234eFgH5678iJkL9012"
SLACK_APP = "xapp-" + "1-A0123456789-1234567890123-abcdef0123456789"
GITHUB = "ghp_" + "a1B2" * 9
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 4
ANTHROPIC = "sk-ant-api03-" + "Ab3_" * 10
OPENAI = "sk-proj-" + "aB9-" * 10
JWT = (
    "eyJhbGciOiJIUzI1NiJ9"
    + "."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + "."
    + "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
PEM_BODY = "MIIEpAIBAAKCAQEA7q" + "Zx3Vb9sPlm2Ykr"
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY + "\nabc/def+ghi==\n-----END RSA PRIVATE KEY-----"
SESSION_SECRET = "f8Kq2Zt7Lw9Xp4Rv" + "1Nb6Hc3M"
API_TOKEN = "9fQ2mZ7kL4pX8rT1" + "vN6bW3"
SIGNING_KEY = "q7ZrT4mW9xK2" + "pL8vN3bH6cJ1"
DB_PASSWORD = "Xk9#mQ2$vL8pR4wZ"
BEARER = "Q29ubmVjdGlvbi1" + "0b2tlbi1mb3ItdGVzdHM"

SAMPLES = [
    Sample("aws_secret_key", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    Sample("aws_secret_key", f'{{"SecretAccessKey": "{AWS_SECRET_2}"}}', AWS_SECRET_2),
    Sample("aws_secret_key", f"Access key ID,Secret access key\n{AWS_ID},{AWS_SECRET_2}", AWS_SECRET_2),
    Sample("aws_access_key_id", f"aws_access_key_id = {AWS_ID}", AWS_ID),
    Sample("google_api_key", f"GOOGLE_API_KEY={GOOGLE} (maps)", GOOGLE),
    Sample("google_api_key", f"https://maps.googleapis.com/maps/api/geocode/json?key={GOOGLE}", GOOGLE),
    Sample("stripe_key", f"stripe.api_key = '{STRIPE}'", STRIPE),
    Sample("stripe_key", f"restricted {STRIPE_RESTRICTED} for refunds", STRIPE_RESTRICTED),
    Sample("stripe_key", f"STRIPE_WEBHOOK_SECRET: {STRIPE_WEBHOOK}", STRIPE_WEBHOOK),
    Sample("huggingface_token", f"huggingface-cli login --token {HF}", HF),
    Sample("gitlab_token", f"git clone https://oauth2:{GITLAB}@gitlab.example.com/g/p.git", GITLAB),
    Sample("gitlab_token", f"PRIVATE-TOKEN: {GITLAB}", GITLAB),
    Sample(
        "azure_storage_key",
        f"DefaultEndpointsProtocol=https;AccountName=distilldemo;AccountKey={AZURE};EndpointSuffix=core.windows.net",
        AZURE,
    ),
    Sample(
        "azure_storage_key",
        f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={AZURE_SAS}",
        AZURE_SAS,
    ),
    Sample("npm_token", f"//registry.npmjs.org/:_authToken={NPM}", NPM),
    Sample("pypi_token", f"[pypi]\n  username = __token__\n  password = {PYPI}", PYPI),
    Sample("sendgrid_key", f"SENDGRID_API_KEY={SENDGRID}", SENDGRID),
    Sample("slack_token", f"SLACK_BOT_TOKEN={SLACK_BOT}", SLACK_BOT),
    Sample("slack_token", f"posting to {SLACK_HOOK}", SLACK_HOOK.rsplit("/", 1)[1]),
    Sample("slack_token", f"socket mode with {SLACK_APP}", SLACK_APP),
    Sample("github_token", f"GH_TOKEN={GITHUB}", GITHUB),
    Sample("github_token", f"fine-grained {GITHUB_PAT}", GITHUB_PAT),
    Sample("anthropic_key", f"export ANTHROPIC_API_KEY={ANTHROPIC}", ANTHROPIC),
    Sample("openai_key", f"client = OpenAI(api_key={OPENAI!r})", OPENAI),
    Sample("jwt", f"Cookie: session={JWT}; Path=/", JWT),
    Sample("private_key", f"id_rsa:\n{PEM}\n", PEM_BODY),
    Sample("bearer_token", f"curl -H 'Authorization: Bearer {BEARER}' https://api.example.com", BEARER),
    Sample("basic_auth", "Authorization: Basic " + "YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    Sample(
        "url_password", "DATABASE_URL=postgres://app:" + "Pr0d-s3cret" + "@db.internal/app", "Pr0d-s3cret"
    ),
    Sample("credential", f'{{"password": "{DB_PASSWORD}"}}', DB_PASSWORD),
    Sample("email", "contact: ann.lee@example.com", "ann.lee@example.com"),
    Sample("generic_secret", f"SESSION_SECRET={SESSION_SECRET}", SESSION_SECRET),
    Sample("generic_secret", f"X-Api-Token: {API_TOKEN}", API_TOKEN),
    Sample("generic_secret", f'settings = {{"webhook_signing_key": "{SIGNING_KEY}"}}', SIGNING_KEY),
    Sample("generic_secret", f"db_pwd := {DB_PASSWORD}", DB_PASSWORD),
]

# What the teacher needs, or ordinary prose and config: none of it may be redacted.
KEPT = [
    "trace t001 and task m1 failed",
    "commit 3cc94c9a1b2c3d4e5f60718293a4b5c6d7e8f901 broke it",
    "request 3f2b1c9e-4d5a-4b6c-8d7e-9f0a1b2c3d4e timed out",
    "max_tokens: 1024",
    "token_budget = 120000",
    "primary_key = user_id",
    "sort_key=created_at_timestamp",
    "model_key: claude-sonnet-4-20250514",
    "cache_key = gpt-4o-mini-2024-07-18",
    "keyboard_layout = dvorak-programmer",
    "the password field was empty, so the login failed",
    "The tokenizer splits tokens: 1200 in, 300 out",
    "sk_live is the prefix of a live Stripe key",
    "hf_hub_download(repo_id='org/model')",
    "AccountKey= (missing)",
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.kind)
def test_each_sample_is_redacted_as_its_kind(sample: Sample) -> None:
    out = scrub(sample.text)
    assert sample.secret not in out, out
    assert f"[REDACTED:{sample.kind}]" in out, out
    assert scrub(out) == out  # a second pass changes nothing


@pytest.mark.parametrize("text", KEPT)
def test_what_the_teacher_needs_is_kept(text: str) -> None:
    assert scrub(text) == text


def test_random_looking_means_generated_not_words_numbers_or_identifiers() -> None:
    assert all(looks_random(v) for v in (SESSION_SECRET, API_TOKEN, SIGNING_KEY, DB_PASSWORD, AWS_SECRET))
    for value in ("created_at_timestamp", "gpt-4o-mini-2024-07-18", "12345678901234567890", "a1" * 12):
        assert not looks_random(value), value


def test_a_json_value_counts_its_key_name() -> None:
    metadata = {"aws_secret_access_key": AWS_SECRET, "deploy": {"signing_key": SIGNING_KEY}, "trace": "t001"}
    scrubbed = json.dumps(scrub_obj(metadata))
    assert AWS_SECRET not in scrubbed and SIGNING_KEY not in scrubbed and "t001" in scrubbed


# --- what the teacher server actually receives ----------------------------------------------------------

SECRET_TRACE_IDS = [f"s{i:03d}" for i in range(len(SAMPLES))]
KEPT_TRACE_IDS = [f"k{i:03d}" for i in range(len(KEPT))]


def secret_traces() -> list[dict[str, Any]]:
    """One failed trace per sample; the sample sits in the query, result, a step and the metadata."""
    rows = []
    for trace_id, sample in zip(SECRET_TRACE_IDS, SAMPLES, strict=True):
        rows.append(
            {
                "trace_id": trace_id,
                "query": f"Why does this fail? {sample.text}",
                "result": f"It failed near {sample.text}",
                "agent": world.AGENT,
                "model": world.MODEL,
                "outcome": "failure",
                "feedback": 0.0,
                "started_at": 1_767_225_600,
                "steps": [{"tool": "shell", "output": sample.text}, f"log: {sample.text}"],
                "metadata": {"env": sample.text, "token": sample.secret},
            }
        )
    for trace_id, text in zip(KEPT_TRACE_IDS, KEPT, strict=True):
        row = {
            "trace_id": trace_id,
            "query": text,
            "result": "ok",
            "agent": world.AGENT,
            "outcome": "failure",
        }
        rows.append({**row, "started_at": 1_767_225_600, "steps": [], "metadata": {}})
    return rows


def reading_teacher(request: dict[str, Any]) -> dict[str, Any]:
    """The demo teacher, which first reads every secret-bearing trace, the config, the prompt and the
    tool descriptions, and searches the traces."""
    reply = world.teacher_reply(request)
    if request.get("tools") and not any(m["role"] == "assistant" for m in request["messages"]):
        reads = [{"type": "tool_use", "id": f"toolu_read_{t}", "name": "get_trace", "input": {"trace_id": t}}
                 for t in [*SECRET_TRACE_IDS, *KEPT_TRACE_IDS]]  # fmt: skip
        reads += [
            {
                "type": "tool_use",
                "id": "toolu_prompt",
                "name": "get_agent_prompt",
                "input": {"agent_name": world.AGENT},
            },
            {"type": "tool_use", "id": "toolu_tools", "name": "list_available_tools", "input": {}},
            {"type": "tool_use", "id": "toolu_search", "name": "search_traces", "input": {"query": "fail"}},
        ]
        reply["content"] = reply["content"] + reads
    return reply


@pytest.fixture
def leaky_workspace(tmp_path: Path) -> Iterator[tuple[Path, ScriptedAnthropicServer, ScriptedStudentServer]]:
    every_secret = "\n".join(f"# {s.text}".replace("\n", "\n# ") for s in SAMPLES)
    with (
        ScriptedAnthropicServer(reading_teacher) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        with (home / "traces.jsonl").open("a", encoding="utf-8") as traces:
            traces.writelines(json.dumps(row) + "\n" for row in secret_traces())
        config = home / "config.toml"
        config.write_text(config.read_text(encoding="utf-8") + "\n" + every_secret + "\n", encoding="utf-8")
        prompt = home / "agents" / world.AGENT / "system_prompt.md"
        prompt.write_text(prompt.read_text(encoding="utf-8") + "\n" + every_secret + "\n", encoding="utf-8")
        descriptions = home / "tools" / "descriptions.toml"
        descriptions.write_text(
            descriptions.read_text(encoding="utf-8") + f"[vault]\ndescription = {json.dumps(every_secret)}\n",
            encoding="utf-8",
        )
        yield home, teacher_server, student_server


def test_no_secret_reaches_the_teacher_server(
    leaky_workspace: tuple[Path, ScriptedAnthropicServer, ScriptedStudentServer],
) -> None:
    home, teacher_server, _ = leaky_workspace
    subprocess.run(["git", "-C", str(home), "commit", "-qam", "secrets in the workspace"], check=True)
    client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
    engine = Engine.open(home, teacher=client)
    try:
        session = engine.run_session(OnDemandTrigger())
    finally:
        engine.close()
    assert session.status in ("awaiting_review", "completed"), session.error
    assert not teacher_server.errors, teacher_server.errors
    received = "\n".join(json.dumps(body, ensure_ascii=False) for body in teacher_server.requests)
    read_results = [r for r in teacher_server.requests if "toolu_read_s000" in json.dumps(r)]
    assert read_results, "the teacher must have read the secret-bearing traces"
    leaked = [s.kind for s in SAMPLES if s.secret in received]
    assert not leaked, f"sent to the teacher: {leaked}"
    for sample in SAMPLES:
        assert f"[REDACTED:{sample.kind}]" in received, sample.kind
    for text in KEPT:  # the evidence the teacher needs arrives whole
        assert json.dumps(text, ensure_ascii=False)[1:-1] in received, text
    assert all(trace_id in received for trace_id in SECRET_TRACE_IDS)


@pytest.mark.parametrize(
    "text",
    ["key" * 10_000, "a@" + "b." * 20_000, "a." * 20_000 + "@", "-----BEGIN PRIVATE KEY-----\n" * 1_000],
    ids=["key-run", "email-labels", "email-local", "pem-no-end"],
)
def test_hostile_shapes_are_scrubbed_in_linear_time(text: str) -> None:
    # Each took from 1 s to 47 s before the patterns were bounded (a trace can be built to stall a run).
    assert scrub(text) == text
