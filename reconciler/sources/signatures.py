"""Signed commits: the head commit of every fetched revision must be signed by an allowed key.

With ``--verify-signatures`` the git sources (``git.py``) call :meth:`SignaturePolicy.verify`
in their worker thread, before reading the commit's tree. It runs ``git verify-commit`` on the
commit, as Flux's ``verify`` does: SSH signatures against an allowed-signers file (the format of
``ssh-keygen -Y verify``, given by ``--allowed-signers``), GPG signatures through git's own
``gpg`` against the keyring of ``--gpg-home`` (``GNUPGHOME``). Only the head commit of each
fetched revision is checked, not the commits between two fetched revisions.

A commit that is not signed, or signed by a key not allowed, raises
:class:`~reconciler.errors.SignatureRefused`; the source keeps its last good revision, exactly
as after a failed fetch. The programs git runs to verify are fixed on the command line
(``gpg``, ``ssh-keygen``), so a repository's own config cannot name another program, nor
another allowed-signers file.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import SignatureRefused

VERIFY_TIMEOUT_SECONDS = 60.0
"""A ``git verify-commit`` that takes longer than this is killed and the commit refused."""


@dataclass(frozen=True)
class SignaturePolicy:
    """Which signatures a head commit may carry: SSH keys listed in ``allowed_signers``, GPG
    keys in the keyring of ``gpg_home``. At least one is set."""

    allowed_signers: Path | None = None
    gpg_home: Path | None = None

    def __post_init__(self) -> None:
        if self.allowed_signers is None and self.gpg_home is None:
            raise ValueError("verifying signatures needs --allowed-signers or --gpg-home")

    def describe(self) -> str:
        """What is trusted, for the log at start."""
        parts = []
        if self.allowed_signers is not None:
            parts.append(f"SSH keys of {self.allowed_signers}")
        if self.gpg_home is not None:
            parts.append(f"GPG keys of {self.gpg_home}")
        return " and ".join(parts)

    def config(self) -> list[str]:
        """The ``-c`` options of ``git verify-commit`` (command line: outranks any config)."""
        signers = str(self.allowed_signers) if self.allowed_signers is not None else os.devnull
        # without --gpg-home no GPG key is allowed: gpg would read the daemon user's own keyring
        gpg = "gpg" if self.gpg_home is not None else "/bin/false"
        return [
            "-c",
            f"gpg.program={gpg}",
            "-c",
            "gpg.ssh.program=ssh-keygen",
            "-c",
            "gpg.x509.program=/bin/false",
            "-c",
            f"gpg.ssh.allowedSignersFile={signers}",
        ]

    def verify(self, git_dir: Path, sha: str, *, env: dict[str, str], where: str) -> str:
        """The signer git names for commit ``sha`` of the repository at ``git_dir``; raises
        :class:`SignatureRefused` (naming ``where`` and the commit) unless the commit carries a
        good signature of an allowed key. Blocking: call it in a worker thread."""
        environment = {**os.environ, **env, "LC_ALL": "C"}
        if self.gpg_home is not None:
            environment["GNUPGHOME"] = str(self.gpg_home)
        command = ["git", "--git-dir", str(git_dir), *self.config(), "verify-commit", sha]
        try:
            done = subprocess.run(
                command,
                env=environment,
                capture_output=True,
                text=True,
                timeout=VERIFY_TIMEOUT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise SignatureRefused(
                f"{where}: commit {sha[:12]} refused: verifying its signature took over "
                f"{VERIFY_TIMEOUT_SECONDS:.0f} s"
            ) from None
        output = (done.stderr or "") + (done.stdout or "")
        if done.returncode != 0:
            raise SignatureRefused(f"{where}: commit {sha[:12]} refused: {_reason(output)}")
        return _signer(output)


def _reason(output: str) -> str:
    """Why git refused, in one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "it is not signed"
    text = "; ".join(lines[-3:])
    if "no principal matched" in text.lower():
        return f"it is signed by a key that is not in the allowed signers ({text})"
    if "No public key" in text:
        return f"it is signed by a GPG key that is not in the keyring ({text})"
    return f"its signature is not accepted ({text})"


def _signer(output: str) -> str:
    """Git's line naming the good signature (SSH: ``Good "git" signature for … with … key …``,
    GPG: ``gpg: Good signature from …``)."""
    for line in output.splitlines():
        if "Good" in line:
            return line.strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else "signed"
