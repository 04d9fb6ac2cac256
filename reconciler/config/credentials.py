"""What looks like a clear-text credential in a workflow: the patterns and the search.

Anyone who can commit can write a password into a workflow file, where it stays in git history
for good. :func:`find_credentials` flags literal values under credential-like keys
(``password``, ``token``, ``dsn``...), well-known key formats anywhere (AWS, GitHub, Slack,
Vault, Stripe, GitLab tokens, private keys, JWTs), URLs with ``user:password@`` and long
random-looking literals (reported as :data:`RANDOM_LITERAL`, a warning: it may be a false
positive). It yields where and what, never the value.

Called by: :mod:`reconciler.config.validate` (``spec.inputs`` and every action's ``with:``).
Calls: nothing.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.config.snapshot import Loc

_CREDENTIAL_KEYS = (
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "apikey",
    "privatekey",
    "secretkey",
    "accesskey",
    "dsn",
)
_CREDENTIAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{20,})")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Vault token", re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Stripe secret key", re.compile(r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("a GitLab token", re.compile(r"\bglpat-[0-9A-Za-z_-]{20,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("a Slack webhook URL", re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/")),
)
_ANY_CREDENTIAL = re.compile("|".join(f"(?:{p.pattern})" for _, p in _CREDENTIAL_PATTERNS))
"""Whether any of :data:`_CREDENTIAL_PATTERNS` matches: one search for the common no."""
_HIGH_ENTROPY_CANDIDATE = re.compile(r"[A-Za-z0-9+/=_\-]{24,}")
_REFERENCE_SCHEMES = ("vault:", "transit:", "env:", "file:")
RANDOM_LITERAL = "a random-looking"
_URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@")


def find_credentials(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Where ``value`` holds what looks like a clear-text credential, and what it looks like.

    Flags literal (non-``${{ }}``) values under credential-like keys and well-known key
    formats anywhere. Yields descriptions only, never the value itself.
    """
    if type(value) is str:  # most values: spared the checks against the abstract Mapping
        what = _string_credential(value)
        if what is not None:
            yield loc, what
    elif isinstance(value, dict | Mapping):
        for k, v in value.items():
            sub: Loc = (*loc, str(k))
            if _is_credential_key(str(k)) and _is_literal(v):
                yield sub, f"clear-text credential in {str(k)!r}"
                continue
            yield from find_credentials(v, sub)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from find_credentials(v, (*loc, i))
    elif isinstance(value, str):
        what = _string_credential(value)
        if what is not None:
            yield loc, what


@functools.lru_cache(maxsize=65536)
def _string_credential(value: str) -> str | None:
    """What the string ``value`` looks like if it looks like a credential (the same strings
    recur across workflows, hence the cache)."""
    if _ANY_CREDENTIAL.search(value):
        for what, pattern in _CREDENTIAL_PATTERNS:
            if pattern.search(value):
                return f"value looks like {what}"
    for m in _URL_USERINFO.finditer(value):
        if "${{" not in m.group(1):
            return "URL with a clear-text password (user:password@)"
    if "${{" not in value and not value.startswith(_REFERENCE_SCHEMES):
        for m in _HIGH_ENTROPY_CANDIDATE.finditer(value):
            if _looks_random(m.group()):
                return f"{RANDOM_LITERAL} {len(m.group())}-character literal (a key?)"
    return None


def _looks_random(word: str) -> bool:
    """Mixed-case letters and digits with high Shannon entropy: a generated key, not a word,
    path, hex digest or UUID (those are too regular or lack a character class)."""
    if not (re.search(r"[a-z]", word) and re.search(r"[A-Z]", word) and re.search(r"\d", word)):
        return False
    counts = [word.count(c) for c in set(word)]
    entropy = -sum(n / len(word) * math.log2(n / len(word)) for n in counts)
    return entropy >= 4.2


@functools.lru_cache(maxsize=4096)
def _is_credential_key(key: str) -> bool:
    norm = re.sub(r"[^a-z0-9]", "", key.lower())
    return any(norm.endswith(k) for k in _CREDENTIAL_KEYS)


def _is_literal(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip()) and "${{" not in value
    return isinstance(value, int | float) and not isinstance(value, bool)
