"""VaultConfig: where the Vault settings come from, and that a bad one is named, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon.settings import DaemonSettings
from reconciler.errors import ConfigError
from reconciler.secrets.vault import DEFAULT_KUBERNETES_TOKEN_PATH, VaultConfig, parse_vault_ref


def test_no_address_means_vault_is_not_configured() -> None:
    assert VaultConfig.from_env({}) is None
    assert VaultConfig.from_env({"RECONCILER_VAULT_TOKEN": "t"}) is None


def test_reconciler_variables_win_over_vaults_own() -> None:
    config = VaultConfig.from_env(
        {
            "RECONCILER_VAULT_ADDR": "https://vault.internal:8200",
            "VAULT_ADDR": "https://elsewhere:8200",
            "VAULT_TOKEN": "hvs.fallback",
            "RECONCILER_VAULT_KV_VERSION": "2",
            "RECONCILER_VAULT_RETRIES": "0",
        }
    )
    assert config is not None
    assert config.addr == "https://vault.internal:8200"
    assert config.token is not None and config.token.get_secret_value() == "hvs.fallback"
    assert config.kv_version == 2 and config.retries == 0
    assert "hvs.fallback" not in repr(config)


def test_each_auth_method_names_what_it_is_missing_without_showing_values() -> None:
    with pytest.raises(ConfigError, match="token auth needs a token"):
        VaultConfig.from_env({"VAULT_ADDR": "http://v"})
    with pytest.raises(ConfigError, match="approle auth needs a role ID"):
        VaultConfig.from_env(
            {
                "VAULT_ADDR": "http://v",
                "RECONCILER_VAULT_AUTH_METHOD": "approle",
                "RECONCILER_VAULT_SECRET_ID": "very-secret-id",
            }
        )
    with pytest.raises(ConfigError, match="kubernetes auth needs the Vault role") as caught:
        VaultConfig.from_env(
            {"VAULT_ADDR": "http://v", "RECONCILER_VAULT_AUTH_METHOD": "kubernetes"}
        )
    assert "very-secret-id" not in str(caught.value)


def test_credentials_are_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "role").write_text("role-1\n")
    (tmp_path / "secret").write_text("sid-1\n")
    config = VaultConfig(
        addr="http://v",
        auth_method="approle",
        role_id_file=tmp_path / "role",
        secret_id_file=tmp_path / "secret",
    )
    assert config.role_id == "role-1"
    assert config.secret_id is not None and config.secret_id.get_secret_value() == "sid-1"
    with pytest.raises(ConfigError, match="cannot read token_file"):
        VaultConfig.build({"addr": "http://v", "token_file": tmp_path / "nope"}, environ={})


def test_daemon_settings_become_the_vault_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_VAULT_ROLE", "reconciler")
    settings = DaemonSettings.load(vault_addr="https://vault:8200", vault_auth_method="kubernetes")
    config = VaultConfig.from_settings(settings, environ={})
    assert config is not None
    assert (config.addr, config.auth_method, config.role) == (
        "https://vault:8200",
        "kubernetes",
        "reconciler",
    )
    assert config.kubernetes_token_path == DEFAULT_KUBERNETES_TOKEN_PATH
    assert VaultConfig.from_settings(DaemonSettings.load(), environ={}) is None


def test_the_vault_token_is_never_a_flag_nor_in_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vault_token cannot be a flag"):
        DaemonSettings.load(vault_token="hvs.x")
    config_file = tmp_path / "reconciler.yaml"
    config_file.write_text("vaultSecretId: abc\n")
    with pytest.raises(ConfigError, match="cannot be written in the config file"):
        DaemonSettings.load(config_file)


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("vault:secret/app/db#password", ("secret/app/db", None, "password")),
        ("vault:secret/app/db?version=3#password", ("secret/app/db", 3, "password")),
        ("vault:/kv/legacy/#key", ("kv/legacy", None, "key")),
    ],
)
def test_vault_references_parse(ref: str, parsed: tuple[str, int | None, str]) -> None:
    assert parse_vault_ref(ref) == parsed


@pytest.mark.parametrize(
    "ref", ["vault:secret#k", "vault:secret/a#", "vault:secret/a?version=0#k", "vault:secret/a"]
)
def test_malformed_vault_references_are_refused(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_vault_ref(ref)
