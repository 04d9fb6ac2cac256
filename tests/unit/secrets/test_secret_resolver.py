"""DefaultResolver: env: and file: references; vault:/transit: say Vault is not configured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import EnvNotAllowed, PathNotAllowed, SecretUnavailable
from reconciler.grants import Grants
from reconciler.secrets import VAULT_NOT_CONFIGURED, DefaultResolver, SecretResolver, StaticResolver


async def test_env_reference_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_SECRET_TEST_TOKEN", "tok-123")
    got = await DefaultResolver().resolve({"t": "env:RECONCILER_SECRET_TEST_TOKEN"})
    assert got == {"t": "tok-123"}


async def test_missing_env_variable_names_the_reference() -> None:
    with pytest.raises(SecretUnavailable, match="RECONCILER_SECRET_SURELY_UNSET") as info:
        await DefaultResolver(environ={}).resolve({"t": "env:RECONCILER_SECRET_SURELY_UNSET"})
    assert info.value.retryable


async def test_file_reference_strips_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("line1\nsecret\n\n")
    (tmp_path / "plain").write_text("no-newline")
    got = await DefaultResolver(grants=Grants.local(tmp_path)).resolve(
        {"a": f"file:{tmp_path / 'pw'}", "b": f"file:{tmp_path / 'plain'}"}
    )
    assert got == {"a": "line1\nsecret\n", "b": "no-newline"}


async def test_missing_file_names_the_path_never_a_value(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="file not found") as info:
        await DefaultResolver(grants=Grants.local(tmp_path)).resolve(
            {"a": f"file:{tmp_path / 'absent'}"}
        )
    assert str(tmp_path / "absent") in str(info.value)


async def test_a_directory_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(PathNotAllowed, match="is a directory; workflows read and write regular"):
        await DefaultResolver(grants=Grants.local(tmp_path)).resolve({"a": f"file:{tmp_path}"})


@pytest.mark.parametrize("ref", ["vault:secret/data/x#pw", "transit:k:vault:v1:abc"])
async def test_vault_references_say_vault_is_not_configured(ref: str) -> None:
    with pytest.raises(SecretUnavailable, match=VAULT_NOT_CONFIGURED) as info:
        await DefaultResolver().resolve({"x": ref})
    assert "abc" not in str(info.value)


async def test_static_resolver_gives_test_values_and_satisfies_the_protocol() -> None:
    resolver = StaticResolver({"a": "1"}, default="mock-{name}")
    assert isinstance(resolver, SecretResolver)
    assert await resolver.resolve({"a": "env:A", "b": "vault:p#k"}) == {"a": "1", "b": "mock-b"}
    with pytest.raises(SecretUnavailable):
        await StaticResolver().resolve({"a": "env:A"})


# ------------------------------------------------------------------ what the grants refuse


DAEMON_VARIABLES = [
    "RECONCILER_API_TOKEN",
    "RECONCILER_WEBHOOK_SECRET",
    "RECONCILER_VAULT_TOKEN",
    "RECONCILER_VAULT_SECRET_ID",
    "RECONCILER_STORE",
    "VAULT_TOKEN",
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
]


async def test_env_reference_outside_allow_env_is_refused(tmp_path: Path) -> None:
    resolver = DefaultResolver(environ={"HOME": "/root"}, grants=Grants.local(tmp_path))
    with pytest.raises(EnvNotAllowed, match="matches no --allow-env glob") as info:
        await resolver.resolve({"h": "env:HOME"})
    assert "/root" not in str(info.value)
    assert not info.value.retryable


@pytest.mark.parametrize("variable", DAEMON_VARIABLES)
async def test_the_daemons_own_variables_are_refused_even_with_allow_env_star(
    tmp_path: Path, variable: str
) -> None:
    grants = Grants.local(tmp_path, allow_env=["*"])
    resolver = DefaultResolver(environ={variable: "daemon-credential"}, grants=grants)
    with pytest.raises(EnvNotAllowed, match="daemon's own") as info:
        await resolver.resolve({"t": f"env:{variable}"})
    assert "daemon-credential" not in str(info.value)


async def test_an_allowed_variable_is_read(tmp_path: Path) -> None:
    grants = Grants.local(tmp_path, allow_env=["APP_*"])
    resolver = DefaultResolver(environ={"APP_PASSWORD": "pw"}, grants=grants)
    assert await resolver.resolve({"p": "env:APP_PASSWORD"}) == {"p": "pw"}


async def test_file_reference_outside_the_roots_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("outside")
    resolver = DefaultResolver(grants=Grants.local(tmp_path / "work"))
    with pytest.raises(PathNotAllowed, match="outside the file roots") as info:
        await resolver.resolve({"k": f"file:{tmp_path / 'key'}"})
    assert "outside\n" not in str(info.value)


@pytest.mark.timeout(10)
async def test_file_reference_to_dev_zero_is_refused_without_reading(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    grants = Grants.for_daemon(workdir=tmp_path, file_roots=[Path("/")], allow_env=[])
    resolver = DefaultResolver(grants=grants)
    for ref in ("file:/dev/zero", f"file:{tmp_path / 'zero'}"):
        with pytest.raises(PathNotAllowed, match="/dev"):
            await resolver.resolve({"z": ref})


@pytest.mark.timeout(10)
async def test_file_reference_to_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    resolver = DefaultResolver(grants=Grants.local(tmp_path))
    with pytest.raises(PathNotAllowed, match="FIFO"):
        await resolver.resolve({"p": f"file:{tmp_path / 'pipe'}"})


async def test_file_reference_over_the_read_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"k" * 100)
    grants = Grants.for_daemon(workdir=tmp_path, file_roots=None, allow_env=[], max_read_bytes=10)
    with pytest.raises(PathNotAllowed, match="more than the 10"):
        await DefaultResolver(grants=grants).resolve({"b": f"file:{tmp_path / 'big'}"})
