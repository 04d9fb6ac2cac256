"""Fixtures of the Vault integration tests: the in-process Vault and hvac-backed clients on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.secrets.vault import VaultClient, VaultConfig
from tests.support.vault_server import FakeVault


class Clock:
    """A monotonic clock the test moves forward, shared by the client and the fake Vault."""

    def __init__(self, vault: FakeVault) -> None:
        self.now = 1000.0
        self.vault = vault

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.vault.advance(seconds)


@pytest.fixture
def vault(vault: FakeVault) -> FakeVault:
    """The shared in-process Vault, seeded with a two-version KV v2 secret and a KV v1 one."""
    vault.put_kv2("secret/app/db", {"username": "app", "password": "first-pass"})
    vault.put_kv2("secret/app/db", {"username": "app", "password": "second-pass"})
    vault.put_kv1("kv/legacy/api", {"key": "legacy-key"})
    return vault


@pytest.fixture
def clock(vault: FakeVault) -> Clock:
    return Clock(vault)


APP_POLICY = ["secret/data/app/*", "secret/metadata/app/*", "kv/legacy/*", "transit/*"]


@pytest.fixture
def make_client(vault: FakeVault, clock: Clock) -> Iterator[Callable[..., VaultClient]]:
    """``make_client(**config)``: a client on the fake Vault; token auth with APP_POLICY unless
    the config says otherwise. Closed at teardown."""
    clients: list[VaultClient] = []

    def make(**config: Any) -> VaultClient:
        if config.get("auth_method", "token") == "token" and "token" not in config:
            config["token"] = vault.create_token(APP_POLICY, ttl=3600)
        config.setdefault("backoff", 0.01)
        client = VaultClient(VaultConfig(addr=vault.addr, **config), clock=clock)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
