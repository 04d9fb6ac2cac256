"""VaultClient through the real hvac client over real HTTP against the in-process Vault.

Covers every reference kind (KV v2 latest and pinned versions, KV v1, transit), KV version
detection, each auth method, token renewal and re-login, the cache's lease bound, and the message
of every failure: each names the secret and the reason, never the value.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import SecretUnavailable
from reconciler.secrets.vault import VaultClient, VaultConfig
from tests.integration.secrets.conftest import APP_POLICY, Clock
from tests.support.vault_server import FakeVault

pytestmark = pytest.mark.timeout(30)

MakeClient = Callable[..., VaultClient]


async def failure(client: VaultClient, ref: str, *, name: str = "db") -> SecretUnavailable:
    with pytest.raises(SecretUnavailable) as caught:
        if ref.startswith("transit:"):
            await client.decrypt(name, ref)
        else:
            await client.read(name, ref)
    return caught.value


# -- reference kinds ---------------------------------------------------------------------------


async def test_kv2_reads_the_latest_version_or_the_pinned_one(make_client: MakeClient) -> None:
    client = make_client()
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
    assert await client.read("db", "vault:secret/app/db?version=1#password") == "first-pass"
    assert await client.read("db", "vault:secret/app/db#username") == "app"


async def test_kv1_mount_is_read_without_the_data_segment(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client()
    assert await client.read("api", "vault:kv/legacy/api#key") == "legacy-key"
    assert ("GET", "kv/legacy/api") in vault.requests


async def test_mount_version_is_detected_once_per_mount(
    make_client: MakeClient, vault: FakeVault
) -> None:
    vault.put_kv2("secret/app/cache", {"password": "c"})
    client = make_client()
    await client.read("db", "vault:secret/app/db#password")
    await client.read("cache", "vault:secret/app/cache#password")
    preflights = [p for m, p in vault.requests if p.startswith("sys/internal/ui/mounts/")]
    assert preflights == ["sys/internal/ui/mounts/secret/app/db"]


async def test_detection_falls_back_to_sys_mounts_on_a_vault_without_the_preflight(
    make_client: MakeClient, vault: FakeVault
) -> None:
    vault.ui_mounts = False
    client = make_client(token=vault.create_token([*APP_POLICY, "sys/mounts"]))
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
    assert await client.read("api", "vault:kv/legacy/api#key") == "legacy-key"
    assert vault.count("GET", "sys/mounts") >= 1


async def test_a_configured_kv_version_skips_detection(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client(kv_version=1)
    assert await client.read("api", "vault:kv/legacy/api#key") == "legacy-key"
    assert not any(p.startswith("sys/") for _, p in vault.requests)


async def test_transit_round_trip_and_a_ciphertext_for_another_key(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client()
    ref = await client.encrypt("app", "s3cr3t value ✓")
    assert ref.startswith("transit:app:vault:v1:")
    assert "s3cr3t" not in ref
    assert await client.decrypt("token", ref) == "s3cr3t value ✓"
    await client.encrypt("other", "x")
    err = await failure(client, ref.replace("transit:app:", "transit:other:"), name="token")
    assert err.details["reason"] == "decrypt-failed"
    assert "transit key 'other' cannot decrypt it" in err.message
    assert "vault:v1:" not in err.message, "the ciphertext is not repeated in messages"


async def test_namespace_is_sent_with_every_request(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client(namespace="team-ops")
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
    assert vault.namespaces == {"team-ops"}


async def test_a_transit_mount_that_does_not_exist_is_named(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client(token=vault.root_token, transit_mount="crypto")
    err = await failure(client, "transit:app:vault:v1:AAAA", name="token")
    assert err.details["reason"] == "vault-error"
    assert err.message.startswith("secret 'token' (transit:app:...): transit at crypto/ answered")


# -- failures -----------------------------------------------------------------------------------


async def test_sealed_vault_is_retried_then_reported_as_sealed(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client(retries=2)
    await client.read("db", "vault:secret/app/db#password")
    vault.sealed = True
    err = await failure(client, "vault:secret/app/other#password")
    assert err.message == "secret 'db' (vault:secret/app/other#password): Vault is sealed"
    assert err.retryable and err.details["reason"] == "sealed"
    assert vault.count("GET", "secret/data/app/other") == 3, "one try and two retries"
    assert await client.health() == "sealed"


async def test_forbidden_path_names_the_path_and_the_policy(make_client: MakeClient) -> None:
    err = await failure(make_client(), "vault:secret/payments/card#number")
    assert err.details["reason"] == "forbidden"
    assert "permission denied on secret/payments/card" in err.message
    assert not err.retryable


async def test_missing_path_missing_version_and_missing_key(make_client: MakeClient) -> None:
    client = make_client()
    err = await failure(client, "vault:secret/app/nothing#password")
    assert err.details["reason"] == "not-found"
    assert err.message.endswith("not found: no secret at secret/app/nothing")
    err = await failure(client, "vault:secret/app/db?version=9#password")
    assert err.message.endswith("not found: no secret at secret/app/db (version 9)")
    err = await failure(client, "vault:secret/app/db#passwd")
    assert err.details["reason"] == "key-missing"
    assert "key 'passwd' is missing at secret/app/db (keys there: password, username)" in (
        err.message
    )
    assert "second-pass" not in str(err) and "first-pass" not in str(err)


async def test_deleted_and_destroyed_versions_say_so(
    make_client: MakeClient, vault: FakeVault
) -> None:
    vault.delete_kv2_version("secret/app/db", 1)
    vault.put_kv2("secret/app/db", {"password": "third"})
    vault.destroy_kv2_version("secret/app/db", 2)
    client = make_client()
    deleted = await failure(client, "vault:secret/app/db?version=1#password")
    assert deleted.details["reason"] == "deleted"
    assert "version 1 of secret/app/db was deleted at " in deleted.message
    destroyed = await failure(client, "vault:secret/app/db?version=2#password")
    assert "version 2 of secret/app/db was destroyed" in destroyed.message
    assert await client.read("db", "vault:secret/app/db#password") == "third"


async def test_unreachable_vault_is_retried_with_backoff_and_named(
    vault: FakeVault, clock: Clock
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    addr = f"http://127.0.0.1:{port}"
    client = VaultClient(VaultConfig(addr=addr, token="t", backoff=0.01, retries=1), clock=clock)
    err = await failure(client, "vault:secret/app/db#password")
    assert err.message == (
        f"secret 'db' (vault:secret/app/db#password): Vault is unreachable at {addr} "
        "(ConnectionError)"
    )
    assert err.retryable and err.details["reason"] == "unreachable"
    assert (await client.health()).startswith("unreachable at ")


async def test_malformed_references_are_refused_before_any_request(
    make_client: MakeClient, vault: FakeVault
) -> None:
    client = make_client()
    before = len(vault.requests)
    for ref in ("vault:secret#key", "vault:secret/app/db?rev=1#password", "vault:secret/app/db"):
        err = await failure(client, ref)
        assert err.details["reason"] == "bad-reference", ref
    assert len(vault.requests) == before


# -- authentication -----------------------------------------------------------------------------


async def test_approle_login_with_ids_from_files(
    make_client: MakeClient, vault: FakeVault, tmp_path: Path
) -> None:
    vault.add_approle("role-123", "secret-456", APP_POLICY)
    (tmp_path / "role-id").write_text("role-123\n")
    (tmp_path / "secret-id").write_text("secret-456\n")
    client = make_client(
        auth_method="approle",
        role_id_file=tmp_path / "role-id",
        secret_id_file=tmp_path / "secret-id",
    )
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
    assert vault.count("POST", "auth/approle/login") == 1


async def test_approle_with_a_wrong_secret_id_says_the_login_failed(
    make_client: MakeClient, vault: FakeVault
) -> None:
    vault.add_approle("role-123", "secret-456", APP_POLICY)
    client = make_client(auth_method="approle", role_id="role-123", secret_id="wrong-secret-id")
    err = await failure(client, "vault:secret/app/db#password")
    assert err.details["reason"] == "login-failed"
    assert "approle login to Vault failed: invalid role or secret ID" in err.message
    assert "wrong-secret-id" not in str(err)


async def test_kubernetes_login_reads_the_service_account_token_path(
    make_client: MakeClient, vault: FakeVault, tmp_path: Path
) -> None:
    jwt = tmp_path / "token"
    jwt.write_text("eyJhbGciOi.service-account.jwt")
    vault.add_kubernetes_role("reconciler", "eyJhbGciOi.service-account.jwt", APP_POLICY)
    client = make_client(auth_method="kubernetes", role="reconciler", kubernetes_token_path=jwt)
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
    wrong = make_client(
        auth_method="kubernetes", role="reconciler", kubernetes_token_path=tmp_path / "missing"
    )
    err = await failure(wrong, "vault:secret/app/db#password")
    assert "cannot read the Kubernetes service-account token at " in err.message
    assert err.details["reason"] == "login-failed"


async def test_token_is_renewed_before_it_expires(
    make_client: MakeClient, vault: FakeVault, clock: Clock
) -> None:
    client = make_client(token=vault.create_token(APP_POLICY, ttl=30), cache_ttl=0)
    await client.read("db", "vault:secret/app/db#password")
    clock.advance(15)
    await client.read("db", "vault:secret/app/db#password")
    assert vault.count("POST", "auth/token/renew-self") == 0, "two thirds of the lease left"
    clock.advance(10)
    await client.read("db", "vault:secret/app/db#password")
    assert vault.count("POST", "auth/token/renew-self") == 1
    clock.advance(25)  # past the original expiry: only the renewal keeps the token alive
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"


async def test_approle_logs_in_again_once_renewal_reaches_the_max_ttl(
    make_client: MakeClient, vault: FakeVault, clock: Clock
) -> None:
    vault.add_approle("role-1", "sid", APP_POLICY, token_ttl=30, token_max_ttl=40)
    client = make_client(auth_method="approle", role_id="role-1", secret_id="sid", cache_ttl=0)
    for _ in range(6):
        assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
        clock.advance(12)
    assert vault.count("POST", "auth/approle/login") >= 2


async def test_expired_token_says_so(
    make_client: MakeClient, vault: FakeVault, clock: Clock
) -> None:
    client = make_client(token=vault.create_token(APP_POLICY, ttl=10, renewable=False))
    await client.read("db", "vault:secret/app/db#password")
    clock.advance(11)
    err = await failure(client, "vault:secret/app/other#password")
    assert err.details["reason"] == "token-expired"
    assert err.message.endswith("the Vault token expired")


async def test_revoked_token_is_told_apart_from_a_forbidden_path(
    make_client: MakeClient, vault: FakeVault
) -> None:
    token = vault.create_token(APP_POLICY)
    client = make_client(token=token, cache_ttl=0)
    await client.read("db", "vault:secret/app/db#password")
    vault.tokens[token].revoked = True
    err = await failure(client, "vault:secret/app/db#password")
    assert err.message.endswith("the Vault token expired or was revoked")


async def test_approle_logs_in_again_when_its_token_is_revoked(
    make_client: MakeClient, vault: FakeVault
) -> None:
    vault.add_approle("role-1", "sid", APP_POLICY)
    client = make_client(auth_method="approle", role_id="role-1", secret_id="sid", cache_ttl=0)
    await client.read("db", "vault:secret/app/db#password")
    for tok in vault.tokens.values():
        if tok.path == "auth/approle/login":
            tok.revoked = True
    assert await client.read("db", "vault:secret/app/db#password") == "second-pass"
    assert vault.count("POST", "auth/approle/login") == 2


# -- cache --------------------------------------------------------------------------------------


async def test_cache_serves_repeated_reads_until_cache_ttl(
    make_client: MakeClient, vault: FakeVault, clock: Clock
) -> None:
    client = make_client(cache_ttl=60)
    await client.read("db", "vault:secret/app/db#password")
    await client.read("user", "vault:secret/app/db#username")
    assert vault.count("GET", "secret/data/app/db") == 1, "one read serves every key"
    vault.put_kv2("secret/app/db", {"password": "rotated"})
    clock.advance(61)
    assert await client.read("db", "vault:secret/app/db#password") == "rotated"
    assert vault.count("GET", "secret/data/app/db") == 2


async def test_cache_never_outlives_the_lease(
    make_client: MakeClient, vault: FakeVault, clock: Clock
) -> None:
    vault.put_kv1("kv/legacy/short", {"key": "v1", "ttl": "5s"})
    client = make_client(cache_ttl=3600)
    assert await client.read("k", "vault:kv/legacy/short#key") == "v1"
    clock.advance(4)
    vault.put_kv1("kv/legacy/short", {"key": "v2", "ttl": "5s"})
    assert await client.read("k", "vault:kv/legacy/short#key") == "v1", "lease still valid"
    clock.advance(2)
    assert await client.read("k", "vault:kv/legacy/short#key") == "v2", "lease of 5 s is over"


async def test_token_upkeep_renews_while_no_run_reads_anything(vault: FakeVault) -> None:
    token = vault.create_token(APP_POLICY, ttl=3)
    client = VaultClient(VaultConfig(addr=vault.addr, token=token, backoff=0.01))
    stop = asyncio.Event()
    upkeep = asyncio.create_task(client.keep_token_alive(stop))
    try:
        await asyncio.sleep(4.5)  # an expiring TTL: past the token's first 3 s (real clock)
    finally:
        stop.set()
        await asyncio.wait_for(upkeep, 5)
        client.close()
    assert vault.count("POST", "auth/token/renew-self") >= 2
    assert vault.token_alive(token), "renewals kept it alive past its first 3 s"
