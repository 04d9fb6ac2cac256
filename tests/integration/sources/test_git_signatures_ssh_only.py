"""With only ``--allowed-signers`` (SSH keys), a GPG-signed commit is refused whatever keyring
the daemon's user happens to have.

Without ``--gpg-home``, ``git verify-commit`` used to run ``gpg`` with the daemon's own
``GNUPGHOME`` (or ``~/.gnupg``): any key there, imported for another purpose, could sign
commits the daemon applies. Real ``gpg``, real ``git commit -S``, real ``git verify-commit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SignatureRefused
from reconciler.sources import SignaturePolicy, open_source
from tests.integration.sources.test_git_signatures import gpg_commit, gpg_home, keys, write
from tests.support.repos import allowed_signers, init_repo

__all__ = ["gpg_home", "keys"]  # fixtures


async def test_a_gpg_signed_commit_is_refused_when_only_ssh_keys_are_allowed(
    tmp_path: Path,
    gpg_home: Path,
    keys: tuple[object, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GNUPGHOME", str(gpg_home))  # the daemon user's own keyring
    repo = init_repo(tmp_path / "repo")
    write(repo, "name: a\n")
    gpg_commit(repo, gpg_home, "signed with a key of the daemon user's keyring")
    ssh_only = SignaturePolicy(allowed_signers=allowed_signers(tmp_path / "allowed", keys[0]))
    source = open_source(str(repo), data_dir=tmp_path / "data", verify=ssh_only)
    with pytest.raises(SignatureRefused):
        await source.fetch()
