"""Git repositories for tests: the ops repository a source, controller or daemon under test reads.

Tests build a real repository in ``tmp_path`` with :func:`init_repo`, write workflow files into it and
:func:`commit` them; the code under test then reads it through :mod:`reconciler.sources`. :func:`git` runs any other git
command with a fixed test identity, so commits work on machines without a global git config.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ("-c", "user.name=Test", "-c", "user.email=test@example.test")
"""The author and committer of every test commit."""


def git(repo: Path, *args: str) -> str:
    """Run ``git *args`` in ``repo`` and return its stripped stdout; fail the test on a non-zero exit."""
    return subprocess.run(
        ["git", *IDENTITY, *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def init_repo(path: Path) -> Path:
    """Create ``path`` and an empty repository in it on branch ``main``."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def commit(repo: Path, message: str = "change") -> str:
    """Stage everything in ``repo``, commit it (even when nothing changed) and return the new sha."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


class SigningKey:
    """An ed25519 SSH key made with ``ssh-keygen`` (no passphrase) that signs commits."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.private = directory / name
        self.principal = f"{name}@example.test"
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                self.principal,
                "-f",
                str(self.private),
            ],
            check=True,
            capture_output=True,
        )
        self.public = self.private.with_suffix(".pub")

    def allowed_signers_line(self) -> str:
        """This key's line of an allowed-signers file (``ssh-keygen -Y verify`` format)."""
        return f"{self.principal} {self.public.read_text().strip()}\n"


def allowed_signers(path: Path, *keys: SigningKey) -> Path:
    """Write an allowed-signers file trusting ``keys`` and return its path."""
    path.write_text("".join(key.allowed_signers_line() for key in keys))
    return path


def signed_commit(repo: Path, key: SigningKey, message: str = "signed change") -> str:
    """Stage everything in ``repo``, commit it signed with ``key`` and return the new sha."""
    git(repo, "add", "-A")
    git(
        repo,
        "-c",
        "gpg.format=ssh",
        "-c",
        f"user.signingkey={key.private}",
        "commit",
        "-q",
        "-S",
        "--allow-empty",
        "-m",
        message,
    )
    return git(repo, "rev-parse", "HEAD")
