"""Fixtures for the source tests; defined in ``sources_helpers`` so tests can import helpers."""

from sources_helpers import git_daemon, remote, work

__all__ = ["git_daemon", "remote", "work"]
