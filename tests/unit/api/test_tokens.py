"""The tokens file and token matching: hashes only, roles ordered, mistakes named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from reconciler.api.auth import Auth
from reconciler.api.tokens import (
    DEFAULT_NAME,
    allows,
    hash_token,
    identify,
    load_tokens,
)
from reconciler.errors import ConfigError

READ_HASH = hash_token("reader-secret")


def write(tmp_path: Path, text: str, name: str = "tokens.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_yaml_file_of_named_hashes_loads_and_identifies_its_tokens(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"- name: dashboard\n  sha256: {READ_HASH}\n  role: read\n"
        f"- name: alice\n  sha256: {hash_token('alice-secret').upper()}\n  role: operate\n",
    )
    tokens = load_tokens(path)
    found = identify(tokens, "alice-secret")
    assert found is not None and (found.name, found.role) == ("alice", "operate")
    assert identify(tokens, "reader-secret") == tokens[0]
    assert identify(tokens, "alice-secre") is None
    assert "alice-secret" not in repr(tokens)


def test_json_works_too_and_the_hash_is_sha256_hex() -> None:
    assert hash_token("x") == hashlib.sha256(b"x").hexdigest()


def test_roles_are_ordered_read_operate_admin() -> None:
    assert allows("admin", "operate") and allows("operate", "operate")
    assert not allows("read", "operate") and not allows("operate", "admin")
    assert allows("read", "read")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "a list of {name, sha256, role}"),
        (f"- name: x\n  sha256: {READ_HASH}\n  role: root\n", "role is one of read, operate"),
        ("- name: x\n  sha256: hunter2\n  role: read\n", "never the token itself"),
        (f"- name: 'a b'\n  sha256: {READ_HASH}\n  role: read\n", "name is letters"),
        (f"- name: x\n  sha256: {READ_HASH}\n  role: read\n  token: t\n", "unknown key(s) token"),
        (
            f"- {{name: x, sha256: {READ_HASH}, role: read}}\n"
            f"- {{name: x, sha256: {hash_token('y')}, role: read}}\n",
            "token name 'x' is given twice",
        ),
        (
            f"- {{name: x, sha256: {READ_HASH}, role: read}}\n"
            f"- {{name: y, sha256: {READ_HASH}, role: admin}}\n",
            "has the hash of another entry",
        ),
    ],
)
def test_a_bad_tokens_file_is_a_config_error_naming_file_and_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as bad:
        load_tokens(path)
    assert str(path) in str(bad.value)


def test_the_single_api_token_is_an_admin_named_default_beside_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f'[{{"name": "dashboard", "sha256": "{READ_HASH}", "role": "read"}}]')
    auth = Auth.of(SecretStr("the-token"), read_auth=None, listen="127.0.0.1:1", tokens_file=path)
    found = identify(auth.tokens, "the-token")
    assert found is not None and (found.name, found.role) == (DEFAULT_NAME, "admin")
    assert [t.name for t in auth.tokens] == [DEFAULT_NAME, "dashboard"]


def test_a_file_entry_named_default_clashes_with_the_single_token(tmp_path: Path) -> None:
    path = write(tmp_path, f"- {{name: default, sha256: {READ_HASH}, role: read}}\n")
    with pytest.raises(ConfigError, match="'default' is given twice"):
        Auth.of(SecretStr("t"), read_auth=None, listen="127.0.0.1:1", tokens_file=path)
