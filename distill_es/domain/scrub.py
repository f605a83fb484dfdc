"""Remove secrets from text before it leaves the machine (reference defect §11.14: traces went to the
teacher unscrubbed; issue 13: AWS secret keys, Google `AIza…`, Stripe, HuggingFace, GitLab and Azure
keys still went out verbatim).

Each match becomes `[REDACTED:<kind>]`. For `key = value` and `Authorization: Bearer …` shapes, the
key part stays so the teacher still sees that a credential was there. Patterns run in list order, the
most specific first (an Anthropic key is also shaped like an OpenAI key), and never re-match a
redaction marker.

Three layers: provider formats with a fixed prefix or shape (exact, no false positives); values of
keys that name a credential (`password`, `api_key`, `client_secret`…), whatever they look like; and
`generic_secret`, the value of any key whose name says secret, key, token, password, pwd, credential
or auth, when the value *looks generated* (`looks_random`: 16+ characters, Shannon entropy ≥ 3 bits
per character, and a run mixing letters and digits), so `max_tokens: 1024`, `primary_key = user_id`
or `model_key: claude-sonnet-4-20250514` stay readable. What is not redacted, on purpose: trace and
task ids, git shas and UUIDs in prose (the teacher needs them to refer to evidence), and a bare random
string with no key name and no known prefix (no detector can tell it from a hash without flooding the
teacher with redactions).

Why regexes and not detect-secrets (Apache-2.0, evaluated at 1.5.0): importing its plugins costs
110–200 ms warm, 370 ms on a first import (it pulls in `requests` and `yaml`), about as much as the
whole CLI's start (this module: ~3 ms); it has no
Google `AIza` or HuggingFace detector; its AWS secret-key and high-entropy detectors only fire on
quoted strings, so `aws_secret_access_key = wJalr…` unquoted (the issue's sample) was missed; and its
ad-hoc high-entropy scan flags ordinary prose. The formats below follow its plugins and the
providers' documented token shapes; tests/adapters/test_scrub_corpus.py holds one sample per kind.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SecretPattern:
    kind: str
    regex: re.Pattern[str]
    keep_prefix: bool = False  # True: group 1 is kept, the rest of the match is redacted
    description: str = ""
    accept: Callable[[str], bool] | None = None  # redact only values it accepts (None: all)


def _p(
    kind: str,
    pattern: str,
    description: str,
    *,
    keep_prefix: bool = False,
    flags: int = 0,
    accept: Callable[[str], bool] | None = None,
) -> SecretPattern:
    # A word boundary also right after an escaped \n, \r or \t: JSON-encoded logs inside traces.
    pattern = pattern.replace(r"\b", _BOUNDARY)
    return SecretPattern(kind, re.compile(pattern, flags), keep_prefix, description, accept)


_BOUNDARY = r"(?:\b|(?<=\\[nrt]))"


MIN_SECRET_CHARS = 16
MIN_ENTROPY_BITS = 3.0
_SEGMENTS = re.compile(r"[-_.:/+=@]")


def shannon_entropy(text: str) -> float:
    """Bits per character of `text`'s own character distribution."""
    counts, total = Counter(text), len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


def looks_random(value: str) -> bool:
    """A generated secret rather than a word, a number or an identifier: long, high-entropy, and
    with a run (between separators) of 6+ characters mixing letters and digits. Model names such as
    `gpt-4o-mini-2024-07-18` are word and number runs; `wJalrXUtnFEMI/K7MDENG` is not."""
    if len(value) < MIN_SECRET_CHARS or shannon_entropy(value) < MIN_ENTROPY_BITS:
        return False
    return any(
        len(run) >= 6 and any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        for run in _SEGMENTS.split(value)
    )


_NOT_MARKER = r"(?!\[REDACTED:)"
# key = value, key: "value", "key": "value", key := value, and JSON quoted inside a string: \"key\": \"value\"
_ASSIGN = r"(?:\\*[\"'])?\s*(?::=|=>|[:=])\s*(?:\\*[\"'])?"
_VALUE = r"(?:[^\s\"'`,;&<>(){}\[\]\\]|\\(?![\\\"']))"  # a backslash ends it only before a quote
# Key names that say "credential": the generic rule redacts their random-looking values.
# Bounded on both sides: unbounded runs made `keykeykey…` (a hostile trace) take quadratic time.
SECRET_NAME = (
    r"[A-Za-z0-9_.\-]{0,40}(?:secret|key|token|passw(?:or)?d|pwd|credential|auth)[A-Za-z0-9_.\-]{0,40}"
)
# Key names whose value is a credential whatever it looks like.
CREDENTIAL_NAME = (
    r"(?:api[_\-]?key|secret[_\-]?key|client[_\-]?secret|access[_\-]?token|auth[_\-]?token"
    r"|refresh[_\-]?token|private[_\-]?key|password|passwd)"
)

SECRET_PATTERNS: list[SecretPattern] = [
    _p(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY-----(?:(?!-----BEGIN )[\s\S])*?"
        r"-----END (?:[A-Z0-9]+ ){0,4}PRIVATE KEY-----",  # not past the next BEGIN: linear time
        "PEM private key blocks (RSA, EC, OPENSSH, ENCRYPTED, plain PKCS#8)",
    ),
    _p("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}", "Anthropic API keys: sk-ant-…"),
    _p(
        "stripe_key",
        r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}|\bwhsec_[0-9A-Za-z]{24,}",
        "Stripe secret and restricted keys: sk_live_…, rk_live_…, sk_test_…; webhook secrets whsec_…",
    ),
    _p(
        "openai_key",
        r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        "OpenAI API keys: sk-…, sk-proj-…, sk-svcacct-…",
    ),
    _p("aws_access_key_id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "AWS access key ids: AKIA…/ASIA… + 16"),
    _p(
        "aws_secret_key",
        r"(\b(?:aws_?)?secret_?access_?key"
        + _ASSIGN
        + r")"
        + _NOT_MARKER
        + r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        "AWS secret access keys after their name: aws_secret_access_key = …, SecretAccessKey: …",
        keep_prefix=True,
        flags=re.IGNORECASE,
    ),
    _p(
        "aws_secret_key",
        r"(\[REDACTED:aws_access_key_id\](?:[\s,;:|\"'=]|\\[nrt\"]){1,5})[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        "an AWS secret access key right after its key id (credentials CSV, `id secret` pairs)",
        keep_prefix=True,
    ),
    _p(
        "google_api_key",
        r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])",
        "Google API keys: AIza + 35",
    ),
    _p("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}", "HuggingFace access tokens: hf_…"),
    _p(
        "gitlab_token",
        r"\b(?:glpat|gldt|glft|glsoat|glrt|glptt|glcbt|glimt|glagent|gloas)-[A-Za-z0-9_\-]{20,}",
        "GitLab tokens: personal glpat-…, deploy gldt-…, runner glrt-…, and the other gl…- prefixes",
    ),
    _p(
        "azure_storage_key",
        r"(\b(?:AccountKey|SharedAccessKey)\s*=\s*)" + _NOT_MARKER + r"[A-Za-z0-9+/]{40,}={0,2}",
        "Azure storage account and shared access keys in connection strings: AccountKey=…",
        keep_prefix=True,
        flags=re.IGNORECASE,
    ),
    _p("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", "npm access tokens: npm_ + 36"),
    _p("pypi_token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}", "PyPI API tokens: pypi-AgE…"),
    _p(
        "sendgrid_key",
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b",
        "SendGrid API keys: SG.<22>.<43>",
    ),
    _p(
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})",
        "GitHub tokens: ghp_/gho_/ghu_/ghs_/ghr_…, fine-grained github_pat_…",
    ),
    _p(
        "slack_token",
        r"\bxox[baprse]-[A-Za-z0-9\-]{10,}|\bxapp-[A-Za-z0-9\-]{10,}"
        r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]+",
        "Slack tokens: xoxb-/xoxa-/xoxp-/xoxr-/xoxs-/xoxe-…, app tokens xapp-…, incoming webhook URLs",
    ),
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
        r"(\b[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s/:@]+:)" + _NOT_MARKER + r"[^\s/@]+(?=@)",
        "the password in a URL's user info: scheme://user:password@host",
        keep_prefix=True,
    ),
    _p(
        "credential",
        r"(\b" + CREDENTIAL_NAME + _ASSIGN + r")" + _NOT_MARKER + r"(?:[^\s\"',;\\]|\\(?![\\\"'])){3,}",
        'generic assignments: api_key=…, password: …, client_secret = "…", access_token: …',
        keep_prefix=True,
        flags=re.IGNORECASE,
    ),
    _p(
        "generic_secret",
        r"(\b" + SECRET_NAME + _ASSIGN + r")" + _NOT_MARKER + _VALUE + r"{16,}",
        "a random-looking value (see looks_random) of any key named *secret*, *key*, *token*, "
        "*password*, *pwd*, *credential*, *auth*: SESSION_SECRET=…, stripe_key: …, x-api-token: …",
        keep_prefix=True,
        flags=re.IGNORECASE,
        accept=looks_random,
    ),
    _p(
        "email",
        # Bounded (RFC 5321 lengths): unbounded runs made `a@b.b.b.…` take quadratic time.
        r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
        "email addresses",
    ),
]


def _redactor(pattern: SecretPattern) -> Callable[[re.Match[str]], str]:
    marker = f"[REDACTED:{pattern.kind}]"

    def redact(match: re.Match[str]) -> str:
        prefix = match.group(1) if pattern.keep_prefix else ""
        secret = match.group(0)[len(prefix) :]
        if pattern.accept is not None and not pattern.accept(secret):
            return match.group(0)
        return prefix + marker

    return redact


def scrub(text: str) -> str:
    """`text` with every secret the patterns know replaced by `[REDACTED:<kind>]`."""
    for pattern in SECRET_PATTERNS:
        text = pattern.regex.sub(_redactor(pattern), text)
    return text


_CREDENTIAL_KEY = re.compile(CREDENTIAL_NAME + r"|^(?:token|secret|pwd|auth|credentials?)$", re.IGNORECASE)
_SECRET_KEY = re.compile(SECRET_NAME, re.IGNORECASE)


def _scrub_item(key: Any, value: Any) -> Any:
    """A value under `key`: the key's name counts, as it does in `key = value` text."""
    if isinstance(key, str) and isinstance(value, str) and value and not value.startswith("[REDACTED:"):
        if _CREDENTIAL_KEY.search(key):
            return "[REDACTED:credential]"
        if _SECRET_KEY.fullmatch(key) and looks_random(value):
            return "[REDACTED:generic_secret]"
    return scrub_obj(value)


def scrub_obj(obj: Any) -> Any:
    """A copy of a JSON-like structure with every string value scrubbed; a value whose key names a
    credential is redacted as `key = value` text would be (keys themselves are left alone)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: _scrub_item(k, v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v) for v in obj]
    return obj
