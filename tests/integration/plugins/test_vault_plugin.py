"""``vault.kv.read`` and ``vault.kv.write`` through hvac against the in-process Vault API.

The server is :class:`tests.support.vault_server.FakeVault`: real HTTP on loopback, Vault's
status codes and bodies, KV v1 and v2 mounts (``kv/`` and ``secret/``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from reconciler_plugins._common import AuthenticationFailed
from reconciler_plugins.vault import (
    VaultKvRead,
    VaultKvReadRequest,
    VaultKvWrite,
    VaultKvWriteRequest,
)

from reconciler.errors import Conflict, ConnectionFailed, InvalidRequest, NotFound
from tests.integration.plugins.conftest import CANARY, ContextFactory
from tests.support.vault_server import FakeVault


def read(vault: FakeVault, **fields: Any) -> VaultKvReadRequest:
    return VaultKvReadRequest.model_validate(
        {"addr": vault.addr, "token": vault.root_token, "path": "app/db", **fields}
    )


def write(vault: FakeVault, **fields: Any) -> VaultKvWriteRequest:
    return VaultKvWriteRequest.model_validate(
        {"addr": vault.addr, "token": vault.root_token, "path": "app/db", **fields}
    )


async def test_write_generates_once_then_reports_nothing_changed(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    plugin = VaultKvWrite()
    request = write(vault, data={"user": "app"}, generate=["password"], length=32)
    first = await plugin.run(request, make_context())
    second = await plugin.run(request, make_context())

    assert (first.changed, first.version, first.generated) == (True, 1, ["password"])
    assert (second.changed, second.version, second.generated) == (False, 1, [])
    stored = vault.kv2["secret/app/db"][-1].data
    assert (
        stored["user"] == "app" and len(stored["password"]) == 32 and stored["password"].isalnum()
    )
    # the generated value is in no response
    assert stored["password"] not in first.model_dump_json() + second.model_dump_json()


async def test_rotate_writes_a_new_version_and_keeps_other_keys(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    vault.put_kv2("secret/app/db", {"user": "app", "password": "old-password", "host": "db1"})
    rotated = await VaultKvWrite().run(
        write(vault, generate=["password"], length=24, rotate=True), make_context()
    )
    assert (rotated.changed, rotated.version) == (True, 2)
    assert (rotated.keys, rotated.generated) == (["host", "password", "user"], ["password"])
    latest = vault.kv2["secret/app/db"][-1].data
    assert latest["host"] == "db1" and latest["password"] != "old-password"


async def test_read_reports_keys_version_and_age_but_only_revealed_values(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    vault.put_kv2("secret/app/db", {"user": "app", "password": CANARY})
    vault.advance(3600)
    answer = await VaultKvRead().run(read(vault, reveal=["user"]), make_context())
    assert (answer.exists, answer.keys, answer.version) == (True, ["password", "user"], 1)
    assert answer.data == {"user": "app"}
    assert answer.age_seconds is not None and answer.age_seconds >= 0
    assert CANARY not in answer.model_dump_json()

    missing = await VaultKvRead().run(read(vault, path="app/none"), make_context())
    assert (missing.exists, missing.keys) == (False, [])


async def test_kv_version_1_mount(vault: FakeVault, make_context: ContextFactory) -> None:
    request = write(vault, mount="kv", kvVersion=1, data={"a": "b"})
    first = await VaultKvWrite().run(request, make_context())
    second = await VaultKvWrite().run(request, make_context())
    assert (first.changed, second.changed) == (True, False)
    assert vault.kv1["kv/app/db"] == {"a": "b"}


async def test_a_token_without_the_path_in_its_policy_is_refused(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    token = vault.create_token(["secret/data/other/*"])
    with pytest.raises(AuthenticationFailed) as caught:
        await VaultKvWrite().run(write(vault, token=token, data={"a": "b"}), make_context())
    assert not caught.value.retryable
    assert token not in str(caught.value)


async def test_unknown_mount_is_not_found(vault: FakeVault, make_context: ContextFactory) -> None:
    with pytest.raises(NotFound):
        await VaultKvRead().run(read(vault, mount="nomount"), make_context())


async def test_sealed_or_stopped_vault_is_a_retryable_connection_failure(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    vault.sealed = True
    with pytest.raises(ConnectionFailed, match="sealed") as sealed:
        await VaultKvRead().run(read(vault), make_context())
    assert sealed.value.retryable
    request = read(vault)
    vault.stop()
    with pytest.raises(ConnectionFailed, match="unreachable") as down:
        await VaultKvRead().run(request, make_context())
    assert down.value.retryable


async def test_address_and_token_default_to_the_process_vault_settings(
    vault: FakeVault, make_context: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    bare = VaultKvWriteRequest.model_validate({"path": "app/env", "data": {"k": "v"}})
    with pytest.raises(InvalidRequest, match="no Vault address"):
        await VaultKvWrite().run(bare, make_context())
    monkeypatch.setenv("RECONCILER_VAULT_ADDR", vault.addr)
    monkeypatch.setenv("RECONCILER_VAULT_TOKEN", vault.root_token)
    plugin = VaultKvWrite()
    await plugin.init()
    assert (await plugin.run(bare, make_context())).changed


async def test_the_daemons_vault_token_is_never_sent_to_an_address_a_workflow_names(
    vault: FakeVault, make_context: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_VAULT_ADDR", vault.addr)
    monkeypatch.setenv("RECONCILER_VAULT_TOKEN", vault.root_token)
    with FakeVault() as elsewhere:
        request = VaultKvReadRequest.model_validate({"addr": elsewhere.addr, "path": "app/db"})
        with pytest.raises(InvalidRequest, match="only sent to its own Vault"):
            await VaultKvRead().run(request, make_context())
        assert elsewhere.requests == []
    # the daemon's own address, spelled with a trailing slash, still gets the daemon's token
    vault.put_kv2("secret/app/db", {"user": "app"})
    own = VaultKvReadRequest.model_validate({"addr": vault.addr + "/", "path": "app/db"})
    assert (await VaultKvRead().run(own, make_context())).keys == ["user"]


async def test_init_reports_a_sealed_vault_at_start_up(
    vault: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_VAULT_ADDR", vault.addr)
    monkeypatch.setenv("RECONCILER_VAULT_TOKEN", vault.root_token)
    vault.sealed = True
    with pytest.raises(ConnectionFailed, match="sealed"):
        await VaultKvRead().init()


async def test_a_lost_check_and_set_race_is_a_retryable_conflict(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    vault.put_kv2("secret/app/db", {"user": "app"})
    original = vault.handle

    def racing(method: str, path: str, *args: Any) -> tuple[int, Any]:
        if method == "POST" and path == "secret/data/app/db":  # someone writes first
            vault.put_kv2("secret/app/db", {"user": "someone-else"})
        return original(method, path, *args)

    vault.handle = racing  # type: ignore[method-assign]

    with pytest.raises(Conflict) as caught:
        await VaultKvWrite().run(write(vault, data={"user": "mine"}), make_context())
    assert caught.value.retryable
    assert vault.kv2["secret/app/db"][-1].data == {"user": "someone-else"}


async def test_a_cancelled_write_leaves_the_old_version_or_the_new_one_whole(
    vault: FakeVault, make_context: ContextFactory
) -> None:
    vault.put_kv2("secret/app/db", {"user": "app", "password": "p1"})
    # One worker thread: what is handed to it after the write runs only once the write is over.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    task = asyncio.create_task(
        VaultKvWrite().run(
            write(vault, generate=["password"], length=16, rotate=True), make_context()
        )
    )
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(lambda: None)  # a request already on the wire has finished
    versions = [v.data for v in vault.kv2["secret/app/db"]]
    assert versions[0] == {"user": "app", "password": "p1"}
    assert all(set(v) == {"user", "password"} for v in versions)
