"""Remove secrets from text before it leaves the machine (reference defect §11.14: traces went to the
teacher unscrubbed).

Each match becomes `[REDACTED:<kind>]`. For `key = value` and `Authorization: Bearer …` shapes, the
key part stays so the teacher still sees that a credential was there. Patterns run in list order, the
most specific first (an Anthropic key is also shaped like an OpenAI key), and never re-match a
redaction marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SecretPattern:
    kind: str
    regex: re.Pattern[str]
    keep_prefix: bool = False  # True: group 1 is kept, the rest of the match is redacted
    description: str = ""


def _p(
    kind: str, pattern: str, description: str, *, keep_prefix: bool = False, flags: int = 0
) -> SecretPattern:
    return SecretPattern(kind, re.compile(pattern, flags), keep_prefix, description)


_NOT_MARKER = r"(?!\[REDACTED:)"

SECRET_PATTERNS: list[SecretPattern] = [
    _p(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
        "PEM private key blocks (RSA, EC, OPENSSH, ENCRYPTED, plain PKCS#8)",
    ),
    _p("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}", "Anthropic API keys: sk-ant-…"),
    _p(
        "openai_key",
        r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        "OpenAI API keys: sk-…, sk-proj-…, sk-svcacct-…",
    ),
    _p("aws_access_key_id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "AWS access key ids: AKIA…/ASIA… + 16"),
    _p(
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})",
        "GitHub tokens: ghp_/gho_/ghu_/ghs_/ghr_…, fine-grained github_pat_…",
    ),
    _p("slack_token", r"\bxox[baprs]-[A-Za-z0-9\-]{10,}", "Slack tokens: xoxb-/xoxa-/xoxp-/xoxr-/xoxs-…"),
    _p(
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+",
        "JSON Web Tokens: base64url header.payload.signature, both starting eyJ",
    ),
    _p(
        "bearer_token",
        r"(\bAuthorization\s*[:=]\s*[\"']?\s*Bearer\s+)" + _NOT_MARKER + r"[A-Za-z0-9._~+/=\-]+",
        "the credential in an `Authorization: Bearer …` header",
        keep_prefix=True,
        flags=re.IGNORECASE,
    ),
    _p(
        "bearer_token",
        r"(\bBearer\s+)" + _NOT_MARKER + r"[A-Za-z0-9._~+/\-]{20,}=*",
        "a long token after the word Bearer, header or not",
        keep_prefix=True,
    ),
    _p(
        "basic_auth",
        r"(\bAuthorization\s*[:=]\s*[\"']?\s*Basic\s+)" + _NOT_MARKER + r"[A-Za-z0-9+/=]+",
        "the credential in an `Authorization: Basic …` header",
        keep_prefix=True,
        flags=re.IGNORECASE,
    ),
    _p(
        "url_password",
        r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]+:)" + _NOT_MARKER + r"[^\s/@]+(?=@)",
        "the password in a URL's user info: scheme://user:password@host",
        keep_prefix=True,
    ),
    _p(
        "credential",
        r"(\b(?:api[_\-]?key|secret[_\-]?key|client[_\-]?secret|access[_\-]?token|auth[_\-]?token"
        r"|refresh[_\-]?token|private[_\-]?key|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
        + _NOT_MARKER
        + r"[^\s\"',;]{3,}",
        'generic assignments: api_key=…, password: …, client_secret = "…", access_token: …',
        keep_prefix=True,
        flags=re.IGNORECASE,
    ),
    _p(
        "email",
        r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
        "email addresses",
    ),
]


def scrub(text: str) -> str:
    """`text` with every secret the patterns know replaced by `[REDACTED:<kind>]`."""
    for pattern in SECRET_PATTERNS:
        marker = f"[REDACTED:{pattern.kind}]"
        if pattern.keep_prefix:
            text = pattern.regex.sub(lambda m, marker=marker: m.group(1) + marker, text)
        else:
            text = pattern.regex.sub(marker, text)
    return text


def scrub_obj(obj: Any) -> Any:
    """A copy of a JSON-like structure with every string value scrubbed (keys are left alone)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v) for v in obj]
    return obj
