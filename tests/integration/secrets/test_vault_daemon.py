"""Vault-backed secrets in the daemon: the Controller on a real git repository and SQLite store,
resolving through hvac against the in-process Vault.

Each Vault failure (sealed, expired token, missing path, forbidden path, missing key, server
down) ends up as its own clear message on the failing workflow's stored status; the run is
retried with the daemon's back-off and converges once Vault is back; workflows that do not need
the broken secret converge as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.secrets.resolver import DefaultResolver
from reconciler.secrets.vault import VaultClient, VaultConfig
from reconciler.store import Health, WorkflowStatusRecord
from tests.integration.secrets.conftest import APP_POLICY
from tests.support.controller import eventually, running
from tests.support.repos import commit
from tests.support.vault_server import FakeVault

pytestmark = pytest.mark.timeout(60)


def secret_file_workflow(name: str, target: Path, ref: str) -> dict[str, Any]:
    """A workflow writing the value of the secret ``ref`` into ``target``."""
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "interval": "1h",
            "secrets": {"value": ref},
            "start": "write",
            "states": {
                "write": {
                    "action": {
                        "plugin": "file.write",
                        "with": {"path": str(target), "content": "${{ secrets.value }}"},
                    },
                    "next": "done",
                    "onError": "failed",
                },
                "done": {"end": "success"},
                "failed": {"end": "failure"},
            },
        },
    }


def put(repo: Path, name: str, target: Path, ref: str) -> None:
    document = secret_file_workflow(name, target, ref)
    (repo / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def degraded(s: WorkflowStatusRecord) -> bool:
    return s.status is Health.DEGRADED


def converged(s: WorkflowStatusRecord) -> bool:
    return s.status is Health.CONVERGED


def resolver(vault: FakeVault, token: str) -> DefaultResolver:
    """A resolver on ``vault`` that caches nothing (each run asks Vault again)."""
    config = VaultConfig(addr=vault.addr, token=token, retries=1, backoff=0.01, cache_ttl=0)
    return DefaultResolver(vault=VaultClient(config))


async def test_daemon_settings_reach_vault_and_each_bad_reference_fails_only_its_workflow(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeVault() as vault:
        vault.put_kv2("secret/app/db", {"password": "db-pass-1"})
        vault.put_kv1("kv/legacy/api", {"key": "api-key-1"})
        monkeypatch.setenv("RECONCILER_VAULT_TOKEN", vault.create_token(APP_POLICY))
        out = tmp_path / "out"
        out.mkdir()
        put(repo, "kv2", out / "kv2", "vault:secret/app/db#password")
        put(repo, "kv1", out / "kv1", "vault:kv/legacy/api#key")
        put(repo, "missing", out / "missing", "vault:secret/app/nothing#password")
        put(repo, "forbidden", out / "forbidden", "vault:secret/payments/card#number")
        put(repo, "nokey", out / "nokey", "vault:secret/app/db#passwd")
        commit(repo)
        async with running(tmp_path, repo, vault_addr=vault.addr) as (_c, store):
            await eventually(store, "kv2", converged)
            await eventually(store, "kv1", converged)
            missing = await eventually(store, "missing", degraded)
            forbidden = await eventually(store, "forbidden", degraded)
            nokey = await eventually(store, "nokey", degraded)
    assert (out / "kv2").read_text() == "db-pass-1"
    assert (out / "kv1").read_text() == "api-key-1"
    assert "not found: no secret at secret/app/nothing" in missing.message
    assert "forbidden: permission denied on secret/payments/card" in forbidden.message
    assert "key 'passwd' is missing at secret/app/db" in nokey.message
    for status in (missing, forbidden, nokey):
        assert status.reason == "RunFailed"
        assert "SecretUnavailable" in status.message
        assert "db-pass-1" not in status.message
    assert not (out / "missing").exists() and not (out / "nokey").exists()


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("sealed", "Vault is sealed"),
        ("token-expired", "the Vault token expired or was revoked"),
        ("down", "Vault is unreachable at http://127.0.0.1:"),
    ],
)
async def test_broken_vault_degrades_only_the_workflows_using_it_and_the_retry_recovers(
    tmp_path: Path,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    breakage: str,
    expected: str,
) -> None:
    monkeypatch.setenv("RECONCILER_SECRET_LOCAL_FOR_TEST", "local-value")
    out = tmp_path / "out"
    out.mkdir()
    put(repo, "app", out / "app", "vault:secret/app/db#password")
    put(repo, "local", out / "local", "env:RECONCILER_SECRET_LOCAL_FOR_TEST")
    commit(repo)
    vault = FakeVault().start()
    vault.put_kv2("secret/app/db", {"password": "db-pass-1"})
    secrets = resolver(vault, vault.create_token(APP_POLICY, ttl=3600, renewable=False))
    assert secrets.vault is not None
    assert await secrets.vault.read("warm-up", "vault:secret/app/db#password") == "db-pass-1"
    if breakage == "sealed":
        vault.sealed = True
    elif breakage == "token-expired":
        vault.advance(7200)  # the token's hour is over on Vault's side
    else:
        vault.stop()
    try:
        async with running(tmp_path, repo, resolver=secrets) as (controller, store):
            app = await eventually(store, "app", degraded)
            local = await eventually(store, "local", converged)
            assert controller.queue.failures("app") == 1
            assert expected in app.message
            assert app.reason == "RunFailed"
            if breakage == "sealed":
                vault.sealed = False
                await controller.request_sync("app")  # stands in for the 10 s back-off expiring
                await eventually(store, "app", converged)
                assert (out / "app").read_text() == "db-pass-1"
    finally:
        vault.stop()
    assert local.status is Health.CONVERGED
    assert (out / "local").read_text() == "local-value"
