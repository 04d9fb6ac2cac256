"""``reconciler tokens hash`` as users run it: the token on stdin, a tokens-file entry out that
the daemon's tokens file loader accepts and that identifies the token."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from reconciler.api.tokens import identify, load_tokens
from tests.support.daemon import CLI


def hash_line(token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "tokens", "hash", *args],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_printed_entry_pasted_into_a_tokens_file_identifies_the_token(
    tmp_path: Path,
) -> None:
    done = hash_line("s3cret-value\n", "--name", "ci-bot", "--role", "operate")
    assert done.returncode == 0, done.stderr
    assert "s3cret-value" not in done.stdout
    path = tmp_path / "tokens.yaml"
    path.write_text(done.stdout)
    found = identify(load_tokens(path), "s3cret-value")
    assert found is not None and (found.name, found.role) == ("ci-bot", "operate")


def test_an_unknown_role_or_an_empty_stdin_is_refused_with_one_line() -> None:
    bad_role = hash_line("x", "--role", "root")
    assert bad_role.returncode == 2
    assert "role is one of read, operate, admin" in bad_role.stderr
    empty = hash_line("")
    assert empty.returncode == 2
    assert "standard input is empty" in empty.stderr


def test_json_output_is_the_same_entry_as_one_object(tmp_path: Path) -> None:
    done = hash_line("s3cret-value", "-n", "ci-bot", "-r", "read", "-o", "json")
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([entry]))
    found = identify(load_tokens(path), "s3cret-value")
    assert found is not None and (found.name, found.role) == ("ci-bot", "read")
