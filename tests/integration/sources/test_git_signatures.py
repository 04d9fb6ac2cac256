"""Signed commits: with a signature policy, a git source applies only head commits signed by an
allowed key (real ``ssh-keygen`` keys, real ``git commit -S``, real ``git verify-commit``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import FetchFailed, SignatureRefused
from reconciler.sources import SignaturePolicy, open_source
from tests.support.repos import (
    SigningKey,
    allowed_signers,
    commit,
    git,
    init_repo,
    signed_commit,
)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[SigningKey, SigningKey]:
    return SigningKey(tmp_path / "keys", "ops"), SigningKey(tmp_path / "keys", "stranger")


@pytest.fixture
def policy(tmp_path: Path, keys: tuple[SigningKey, SigningKey]) -> SignaturePolicy:
    return SignaturePolicy(allowed_signers=allowed_signers(tmp_path / "allowed", keys[0]))


def write(repo: Path, text: str) -> None:
    (repo / "a.yaml").write_text(text)


async def test_a_head_commit_signed_by_an_allowed_key_is_applied(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    sha = signed_commit(repo, keys[0])
    source = open_source(str(repo), data_dir=tmp_path / "data", verify=policy)

    revision = await source.fetch()

    assert revision is not None and revision.id == sha
    assert source.signature_refused is False


async def test_an_unsigned_head_commit_is_refused_and_the_previous_revision_stays(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    good = signed_commit(repo, keys[0])
    source = open_source(str(repo), data_dir=tmp_path / "data", verify=policy)
    await source.fetch()
    write(repo, "name: unsigned\n")
    bad = commit(repo, "unsigned change")

    with pytest.raises(SignatureRefused) as refused:
        await source.fetch()

    assert f"commit {bad[:12]} refused: it is not signed" in str(refused.value)
    assert isinstance(refused.value, FetchFailed)
    assert source.current is not None and source.current.id == good
    assert source.last_error == str(refused.value)
    assert source.signature_refused is True


async def test_a_commit_signed_by_a_key_not_allowed_is_refused_naming_the_reason(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    bad = signed_commit(repo, keys[1], "signed by a stranger")
    source = open_source(str(repo), data_dir=tmp_path / "data", verify=policy)

    with pytest.raises(SignatureRefused, match="not in the allowed signers") as refused:
        await source.fetch()

    assert bad[:12] in str(refused.value)
    assert source.current is None


async def test_a_signed_commit_on_top_of_a_refused_one_is_applied_with_both_changes(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    signed_commit(repo, keys[0])
    source = open_source(str(repo), data_dir=tmp_path / "data", verify=policy)
    await source.fetch()
    write(repo, "name: unsigned\n")
    commit(repo, "unsigned change")
    with pytest.raises(SignatureRefused):
        await source.fetch()
    (repo / "b.yaml").write_text("name: b\n")
    head = signed_commit(repo, keys[0], "signed on top")

    revision = await source.fetch()

    # only the head commit is checked: the unsigned commit's change comes with it
    assert revision is not None and revision.id == head
    assert dict(revision.files) == {"a.yaml": b"name: unsigned\n", "b.yaml": b"name: b\n"}
    assert source.signature_refused is False
    assert source.last_error is None


async def test_a_remote_clone_is_verified_too(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    work = init_repo(tmp_path / "work")
    write(work, "name: a\n")
    commit(work, "unsigned")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    source = open_source(f"file://{bare}", branch="main", data_dir=tmp_path / "data", verify=policy)

    with pytest.raises(SignatureRefused, match="it is not signed"):
        await source.fetch()

    signed_commit(work, keys[0], "signed")
    git(work, "push", "-q", str(bare), "main")
    revision = await source.fetch()
    assert revision is not None


async def test_the_repositorys_own_config_cannot_replace_the_verifying_program(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    commit(repo, "unsigned")
    marker = tmp_path / "ran"
    fake = tmp_path / "fake-ssh-keygen"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    fake.chmod(0o755)
    git(repo, "config", "gpg.ssh.program", str(fake))
    git(repo, "config", "gpg.program", str(fake))
    git(repo, "config", "gpg.ssh.allowedSignersFile", str(keys[1].public))
    source = open_source(str(repo), data_dir=tmp_path / "data", verify=policy)

    with pytest.raises(SignatureRefused):
        await source.fetch()

    assert not marker.exists()


def test_a_policy_needs_ssh_or_gpg_keys() -> None:
    with pytest.raises(ValueError, match="--allowed-signers or --gpg-home"):
        SignaturePolicy()


def test_a_plain_directory_cannot_be_verified(tmp_path: Path, policy: SignaturePolicy) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="no signed commits"):
        open_source(str(tmp_path / "plain"), data_dir=tmp_path / "data", verify=policy)


def test_git_verify_commit_is_what_decides(
    tmp_path: Path, keys: tuple[SigningKey, SigningKey], policy: SignaturePolicy
) -> None:
    """The policy's git options make git itself accept exactly the allowed key."""
    repo = init_repo(tmp_path / "repo")
    good = signed_commit(repo, keys[0])
    assert policy.allowed_signers is not None
    done = subprocess.run(
        ["git", *policy.config(), "verify-commit", good],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={"GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert keys[0].principal in done.stderr


def short_home() -> Path:
    """A new GnuPG home directly under /tmp (gpg-agent's socket path must stay short)."""
    return Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))


def drop_home(home: Path) -> None:
    """Stop the agent gpg started for ``home`` (if any) and remove the directory."""
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def gpg_home() -> Iterator[Path]:
    """A GnuPG home with one ed25519 signing key (no passphrase)."""
    if shutil.which("gpg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gpg is not installed (apt-get install gnupg)")
        pytest.skip("gpg is not installed")
    home = short_home()
    try:
        subprocess.run(
            [
                *("gpg", "--batch", "--passphrase", ""),
                *("--quick-gen-key", "Ops <ops@example.test>", "ed25519", "sign", "never"),
            ],
            env={**os.environ, "GNUPGHOME": str(home)},
            check=True,
            capture_output=True,
        )
        yield home
    finally:
        drop_home(home)


def gpg_commit(repo: Path, home: Path, message: str) -> str:
    env = {**os.environ, "GNUPGHOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull}
    identity = ["-c", "user.name=Ops", "-c", "user.email=ops@example.test"]
    for args in (["add", "-A"], [*identity, "commit", "-q", "-S", "--allow-empty", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return git(repo, "rev-parse", "HEAD")


async def test_a_gpg_signed_commit_is_verified_against_the_keyring_of_gpg_home(
    tmp_path: Path, gpg_home: Path
) -> None:
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    signed = gpg_commit(repo, gpg_home, "gpg signed")
    source = open_source(
        str(repo), data_dir=tmp_path / "data", verify=SignaturePolicy(gpg_home=gpg_home)
    )
    revision = await source.fetch()
    assert revision is not None and revision.id == signed

    empty = short_home()
    try:
        stranger = open_source(
            str(repo), data_dir=tmp_path / "data2", verify=SignaturePolicy(gpg_home=empty)
        )
        with pytest.raises(SignatureRefused, match="GPG key that is not in the keyring"):
            await stranger.fetch()
    finally:
        drop_home(empty)
