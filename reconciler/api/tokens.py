"""Named API tokens with roles: who may read, who may steer, and whose request it was.

The daemon knows tokens only by their SHA-256. They come from two places:

- the tokens file (``--api-tokens-file``, env ``RECONCILER_API_TOKENS_FILE``): a YAML or JSON
  list of ``{name, sha256, role}``, ``sha256`` the hex SHA-256 of the token (``reconciler tokens
  hash`` prints the line), ``role`` one of :data:`ROLES`;
- the single ``RECONCILER_API_TOKEN`` (or ``--api-token-file``), which keeps working as an
  ``admin`` token named :data:`DEFAULT_NAME`.

:func:`identify` hashes the presented token and compares it with every entry's hash with
``hmac.compare_digest``, always all of them, so the time taken says nothing about which entry
(or how much of one) matched. Roles are ordered: ``read`` < ``operate`` < ``admin``; a route
needs a minimum role (:func:`allows`). The name of the matching entry is what the command log's
``requested_by`` and the run records keep; the token itself is never stored or logged.

Called by :mod:`reconciler.api.auth` (the policy of each route) and ``reconciler tokens hash``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from reconciler.errors import ConfigError

Role = Literal["read", "operate", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
"""The roles, weakest first: ``read`` reads; ``operate`` also syncs, suspends, resumes and
cancels; ``admin`` may do everything (today the same as ``operate``: no route needs more)."""

DEFAULT_NAME = "default"
"""The name of ``RECONCILER_API_TOKEN`` (an ``admin`` token) in ``requested_by`` and the log."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class NamedToken:
    """One accepted token: its name, the SHA-256 of the token, and its role."""

    name: str
    digest: bytes
    role: Role

    def __repr__(self) -> str:  # the digest is not a secret, but nobody needs it in a log
        return f"NamedToken(name={self.name!r}, role={self.role!r})"


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token`` (what the tokens file holds)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def rank(role: Role) -> int:
    return ROLES.index(role)


def allows(role: Role, needed: Role) -> bool:
    """Whether a token of ``role`` may do what needs ``needed``."""
    return rank(role) >= rank(needed)


def identify(tokens: Sequence[NamedToken], presented: str) -> NamedToken | None:
    """The entry whose hash is the presented token's, or None; every entry is compared, in
    constant time each, whichever matches."""
    digest = hashlib.sha256(presented.encode("utf-8")).digest()
    found: NamedToken | None = None
    for entry in tokens:
        if hmac.compare_digest(digest, entry.digest) and found is None:
            found = entry
    return found


def default_token(token: str) -> NamedToken:
    """``RECONCILER_API_TOKEN`` as an entry: ``admin``, named :data:`DEFAULT_NAME`."""
    return NamedToken(DEFAULT_NAME, hashlib.sha256(token.encode("utf-8")).digest(), "admin")


def load_tokens(path: Path) -> list[NamedToken]:
    """The entries of a tokens file; :class:`ConfigError` (naming the file and the entry) for
    an unreadable file, a bad entry, or a name or hash given twice."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the API tokens file: {exc.strerror}", path=str(path)
        ) from None
    try:
        raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"the API tokens file does not parse: {exc}", path=str(path)) from None
    if isinstance(raw, dict) and "tokens" in raw:
        raw = raw["tokens"]
    if not isinstance(raw, list):
        raise ConfigError(
            "the API tokens file is a list of {name, sha256, role} entries", path=str(path)
        )
    return check_unique([_entry(item, i, path) for i, item in enumerate(raw, start=1)], path)


def _entry(item: Any, index: int, path: Path) -> NamedToken:
    where = f"entry {index}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: a mapping with name, sha256 and role", path=str(path))
    unknown = set(item) - {"name", "sha256", "role"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", path=str(path))
    name, digest, role = item.get("name"), item.get("sha256"), item.get("role")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{where}: name is letters, digits, '.', '_', '@' or '-' (at most 100)",
            path=str(path),
        )
    if not isinstance(digest, str) or not _HEX.match(digest.strip().lower()):
        raise ConfigError(
            f"{where} ({name}): sha256 is the 64 hex digits of the token's SHA-256 "
            "(reconciler tokens hash), never the token itself",
            path=str(path),
        )
    if role not in ROLES:
        raise ConfigError(
            f"{where} ({name}): role is one of {', '.join(ROLES)}, not {role!r}", path=str(path)
        )
    return NamedToken(name, bytes.fromhex(digest.strip().lower()), role)


def check_unique(tokens: Iterable[NamedToken], path: Path | None = None) -> list[NamedToken]:
    """``tokens`` as a list; :class:`ConfigError` when a name or a hash appears twice."""
    out: list[NamedToken] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    where = str(path) if path is not None else None
    for entry in tokens:
        if entry.name in names:
            raise ConfigError(f"token name {entry.name!r} is given twice", path=where)
        if entry.digest in digests:
            raise ConfigError(f"token {entry.name!r} has the hash of another entry", path=where)
        names.add(entry.name)
        digests.add(entry.digest)
        out.append(entry)
    return out
