"""Fixtures shared by the integration tests.

``vault`` is the in-process Vault (:mod:`tests.support.vault_server`), empty and stopped after the
test. A directory or module that needs more (seeded secrets, the daemon's Vault settings in the
environment) overrides it with a fixture of the same name that takes this one and adds to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.vault_server import FakeVault


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    """An empty in-process Vault listening on loopback for the length of the test."""
    with FakeVault() as server:
        yield server
