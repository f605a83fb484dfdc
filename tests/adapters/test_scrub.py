from __future__ import annotations

import pytest

from distill_es.domain.scrub import SECRET_PATTERNS, scrub, scrub_obj

from .test_scrub_corpus import SAMPLES  # one sample per format, shared with the teacher-server test

# Fake credentials, assembled so no real-looking key sits in the source as one literal.
ANTHROPIC = "sk-ant-api03-" + "Ab3_" * 10
OPENAI = "sk-" + "T3stKey" * 6
OPENAI_PROJ = "sk-proj-" + "aB9-" * 10
AWS = "AKIA" + "IOSFODNN7EXAMPL1"
GITHUB = "ghp_" + "a1B2" * 9
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 4
SLACK = "xoxb-" + "1234567890-0987654321-" + "abcdef" * 4
JWT = (
    "eyJhbGciOiJIUzI1NiJ9"
    + "."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + "."
    + "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc/def+ghi==\n-----END RSA PRIVATE KEY-----"

CASES = [
    ("anthropic_key", f"export ANTHROPIC_API_KEY={ANTHROPIC}", ANTHROPIC),
    ("openai_key", f"key {OPENAI} here", OPENAI),
    ("openai_key", f"use {OPENAI_PROJ}.", OPENAI_PROJ),
    ("aws_access_key_id", f"aws id {AWS} ok", AWS),
    ("github_token", f"token {GITHUB}", GITHUB),
    ("github_token", f"pat {GITHUB_PAT}", GITHUB_PAT),
    ("slack_token", f"slack {SLACK}", SLACK),
    ("jwt", f"cookie={JWT};", JWT),
    ("private_key", f"key:\n{PEM}\nend", "MIIEpAIBAAKCAQEA7"),
    ("bearer_token", "Authorization: Bearer abc.DEF-123", "abc.DEF-123"),
    ("bearer_token", "sent with bearer header: Bearer " + "q" * 30, "q" * 30),
    ("basic_auth", "Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("url_password", "postgresql://app:s3cret!@db.internal:5432/prod", "s3cret!"),
    ("credential", "api_key=hunter2hunter2", "hunter2hunter2"),
    ("credential", 'password: "correct horse"', "correct"),
    ("credential", "CLIENT_SECRET = s3cr3tvalue", "s3cr3tvalue"),
    ("credential", '{"access_token": "tok_98765"}', "tok_98765"),
    ("email", "write to jane.doe+work@mail.example.co.uk today", "jane.doe+work@mail.example.co.uk"),
    *((s.kind, s.text, s.secret) for s in SAMPLES),
]


@pytest.mark.parametrize(("kind", "text", "secret"), CASES)
def test_each_documented_pattern_is_redacted(kind, text, secret):
    out = scrub(text)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out


def test_every_pattern_kind_has_a_case():
    assert {p.kind for p in SECRET_PATTERNS} == {kind for kind, _, _ in CASES}
    assert all(p.description for p in SECRET_PATTERNS)


def test_keys_and_surrounding_text_stay():
    assert scrub("api_key=hunter2hunter2 and more") == "api_key=[REDACTED:credential] and more"
    assert scrub("Authorization: Bearer abc.DEF-123") == "Authorization: Bearer [REDACTED:bearer_token]"
    assert scrub(f"x={ANTHROPIC}") == "x=[REDACTED:anthropic_key]"
    assert scrub(f"api_key={OPENAI}") == "api_key=[REDACTED:openai_key]"  # no double redaction
    assert scrub(f"a\n{PEM}\nb") == "a\n[REDACTED:private_key]\nb"


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France? Paris.",
        "Integrate x dx = x^2/2 + C; see https://example.com/docs?page=2#intro",
        "The risk-assessment task took 12.5 seconds and 4096 max_tokens.",
        "Reset your password via the settings page.",
        "Use the skeleton key metaphor: sk-etch it out.",
        "token counts: 1200 in, 300 out",
        "Call me at 10:30 @ the office",
        "def f(a, b):\n    return a == b  # compare",
        "Bearer bonds were popular in 1920.",
        "PWD=/home/user/project OLDPWD=/tmp",
        "See https://docs.example.com:8443/path and ftp://mirror.example.org/pub",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert scrub(text) == text


def test_scrub_obj_recurses_and_copies():
    data = {
        "query": f"my key is {OPENAI}",
        "steps": [{"input": {"email": "a@b.io"}}, 3, None, ("t", "x@y.org")],
        "n": 1.5,
        "api_key": "the key name stays, its value goes",
        "trace_id": "t001",
    }
    out = scrub_obj(data)
    assert out == {
        "query": "my key is [REDACTED:openai_key]",
        "steps": [{"input": {"email": "[REDACTED:email]"}}, 3, None, ["t", "[REDACTED:email]"]],
        "n": 1.5,
        "api_key": "[REDACTED:credential]",  # as `api_key = …` in text would be
        "trace_id": "t001",
    }
    assert data["query"].endswith(OPENAI)  # input untouched
