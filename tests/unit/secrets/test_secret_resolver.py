"""DefaultResolver: env: and file: references; vault:/transit: say Vault is not configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SecretUnavailable
from reconciler.secrets import VAULT_NOT_CONFIGURED, DefaultResolver, SecretResolver, StaticResolver


async def test_env_reference_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_TEST_TOKEN", "tok-123")
    assert await DefaultResolver().resolve({"t": "env:RECONCILER_TEST_TOKEN"}) == {"t": "tok-123"}


async def test_missing_env_variable_names_the_reference() -> None:
    with pytest.raises(SecretUnavailable, match="RECONCILER_SURELY_UNSET") as info:
        await DefaultResolver(environ={}).resolve({"t": "env:RECONCILER_SURELY_UNSET"})
    assert info.value.retryable


async def test_file_reference_strips_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("line1\nsecret\n\n")
    (tmp_path / "plain").write_text("no-newline")
    got = await DefaultResolver().resolve(
        {"a": f"file:{tmp_path / 'pw'}", "b": f"file:{tmp_path / 'plain'}"}
    )
    assert got == {"a": "line1\nsecret\n", "b": "no-newline"}


async def test_missing_file_names_the_path_never_a_value(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="file not found") as info:
        await DefaultResolver().resolve({"a": f"file:{tmp_path / 'absent'}"})
    assert str(tmp_path / "absent") in str(info.value)


async def test_unreadable_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="cannot read"):
        await DefaultResolver().resolve({"a": f"file:{tmp_path}"})  # a directory


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
