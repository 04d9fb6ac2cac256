"""``reconciler_secret_errors_total{provider,reason}``: each failed reference counted once,
by the reference's scheme and a reason from a fixed vocabulary, never by its message.

Drives :class:`~reconciler.telemetry.instrument.MetricsResolver` around the real
:class:`~reconciler.secrets.resolver.DefaultResolver`: real environment, real files, and for
``vault:`` the real ``hvac`` client against the in-process Vault API of
``tests/support/vault_server.py`` (sealed, forbidden, missing).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from reconciler.errors import ActionError, EnvNotAllowed, PathNotAllowed, SecretUnavailable
from reconciler.grants import Grants
from reconciler.secrets.resolver import DefaultResolver
from reconciler.secrets.vault import VaultClient, VaultConfig
from reconciler.telemetry.instrument import MetricsResolver
from reconciler.telemetry.metrics import SECRET_REASONS
from tests.integration.telemetry.harness import exposition, value
from tests.support.vault_server import FakeVault


def errors(provider: str, reason: str) -> float:
    return value("reconciler_secret_errors_total", provider=provider, reason=reason) or 0.0


def all_errors() -> dict[tuple[str, str], float]:
    return {
        (s.labels["provider"], s.labels["reason"]): s.value
        for s in exposition()
        if s.name == "reconciler_secret_errors_total"
    }


async def failure_counted(
    resolver: MetricsResolver,
    ref: str,
    *,
    provider: str,
    reason: str,
    error: type[ActionError] = SecretUnavailable,
) -> ActionError:
    before = errors(provider, reason)
    with pytest.raises(error) as caught:
        await resolver.resolve({"token": ref})
    assert errors(provider, reason) == before + 1, f"{ref} not counted as {provider}/{reason}"
    return caught.value


async def test_env_and_file_failures_are_counted_by_provider_and_reason(tmp_path: Path) -> None:
    grants = Grants.local(tmp_path, allow_env=["SET", "UNSET"])
    resolver = MetricsResolver(DefaultResolver(environ={"SET": "value"}, grants=grants))
    await failure_counted(resolver, "env:UNSET", provider="env", reason="missing")
    await failure_counted(
        resolver, f"file:{tmp_path / 'absent'}", provider="file", reason="missing"
    )
    (tmp_path / "not-utf8").write_bytes(b"\xff\xfe")
    await failure_counted(
        resolver, f"file:{tmp_path / 'not-utf8'}", provider="file", reason="unreadable"
    )
    refused = await failure_counted(
        resolver, f"file:{tmp_path}", provider="file", reason="not_allowed", error=PathNotAllowed
    )
    assert "secret 'token'" in refused.message and "a directory" in refused.message
    await failure_counted(
        resolver, "env:HOME", provider="env", reason="not_allowed", error=EnvNotAllowed
    )
    await failure_counted(
        resolver, "vault:secret/app#key", provider="vault", reason="not_configured"
    )
    await failure_counted(resolver, "ldap:cn=x", provider="unknown", reason="unsupported")

    before = {
        s.labels["reason"]: s.value
        for s in exposition()
        if s.name == "reconciler_secret_errors_total" and s.labels["provider"] == "env"
    }
    assert await resolver.resolve({"a": "env:SET"}) == {"a": "value"}
    after = {
        s.labels["reason"]: s.value
        for s in exposition()
        if s.name == "reconciler_secret_errors_total" and s.labels["provider"] == "env"
    }
    assert after == before, "a resolved secret counts nothing"


async def test_vault_failures_are_counted_with_the_vault_resolvers_reason(
    vault: FakeVault,
) -> None:
    path = f"secret/app/{uuid.uuid4().hex[:8]}"
    vault.put_kv2(path, {"password": "canary-Zq81"})
    token = vault.create_token(["secret/data/app/*", "secret/metadata/app/*"], ttl=3600)
    client = VaultClient(VaultConfig(addr=vault.addr, token=token, retries=0, cache_ttl=0))
    resolver = MetricsResolver(DefaultResolver(vault=client))
    try:
        assert await resolver.resolve({"p": f"vault:{path}#password"}) == {"p": "canary-Zq81"}
        await failure_counted(resolver, f"vault:{path}#nokey", provider="vault", reason="missing")
        await failure_counted(
            resolver, "vault:secret/ops/db#password", provider="vault", reason="forbidden"
        )
        vault.sealed = True
        await failure_counted(resolver, f"vault:{path}#password", provider="vault", reason="sealed")
    finally:
        client.close()
    text = "\n".join(f"{s.name}{s.labels}" for s in exposition())
    assert "canary-Zq81" not in text
    assert {
        s.labels["reason"] for s in exposition() if s.name == "reconciler_secret_errors_total"
    } <= set(SECRET_REASONS)
