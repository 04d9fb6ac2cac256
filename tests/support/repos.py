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
