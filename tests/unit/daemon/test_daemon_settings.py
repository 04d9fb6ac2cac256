"""Daemon settings: flag beats RECONCILER_* beats the config file; secrets never from flags."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.daemon.settings import DaemonSettings
from reconciler.errors import ConfigError, PathNotAllowed


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RECONCILER_"):
            monkeypatch.delenv(name)


def test_defaults_match_the_design() -> None:
    settings = DaemonSettings.load()
    assert settings.data_dir == Path(".reconciler")
    assert settings.store is None
    assert settings.listen == "127.0.0.1:8080"
    assert settings.poll_interval == timedelta(seconds=60)
    assert settings.allow_plugins is None


def test_flag_beats_environment_beats_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("branch: from-file\nmax-concurrent-runs: 7\npollInterval: 2m\nkeep_runs: 3\n")
    monkeypatch.setenv("RECONCILER_BRANCH", "from-env")
    monkeypatch.setenv("RECONCILER_MAX_CONCURRENT_RUNS", "5")
    settings = DaemonSettings.load(config, branch="from-flag", max_concurrent_runs=None)
    assert settings.branch == "from-flag"
    assert settings.max_concurrent_runs == 5
    assert settings.poll_interval == timedelta(minutes=2)
    assert settings.keep_runs == 3


def test_the_command_log_is_read_every_half_second_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert DaemonSettings.load().command_interval == timedelta(milliseconds=500)
    monkeypatch.setenv("RECONCILER_COMMAND_INTERVAL", "2s")
    assert DaemonSettings.load().command_interval == timedelta(seconds=2)
    assert DaemonSettings.load(command_interval="100ms").command_interval == timedelta(
        milliseconds=100
    )


def test_toml_config_file_is_read(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('repo = "https://example.test/ops.git"\nallow-plugins = ["file.read"]\n')
    settings = DaemonSettings.load(config)
    assert settings.repo == "https://example.test/ops.git"
    assert settings.allow_plugins == ["file.read"]


def test_allow_plugins_from_environment_is_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILER_ALLOW_PLUGINS", "file.read, http.check")
    assert DaemonSettings.load().allow_plugins == ["file.read", "http.check"]


def test_log_levels_come_from_a_flag_the_environment_or_a_config_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DaemonSettings.load().log_levels == {}
    assert DaemonSettings.load().log_format == "auto"
    config = tmp_path / "reconciler.yaml"
    config.write_text("log-levels: {aiosqlite: DEBUG, uvicorn.error: warning}\nlog-format: json\n")
    from_file = DaemonSettings.load(config)
    assert from_file.log_levels == {"aiosqlite": "debug", "uvicorn.error": "warning"}
    assert from_file.log_format == "json"
    monkeypatch.setenv("RECONCILER_LOG_LEVELS", "httpx=info")
    assert DaemonSettings.load(config).log_levels == {"httpx": "info"}
    assert DaemonSettings.load(config, log_levels="git=error").log_levels == {"git": "error"}


def test_a_bad_log_levels_item_is_an_error_naming_the_setting_and_the_item() -> None:
    with pytest.raises(ConfigError) as info:
        DaemonSettings.load(log_levels="aiosqlite=warning,httpx=chatty")
    assert "log-levels" in str(info.value)
    assert "'httpx=chatty': the level is one of debug, info, warning, error" in str(info.value)


def test_unknown_key_in_config_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("max-concurent-runs: 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'max-concurent-runs'") as info:
        DaemonSettings.load(config)
    assert info.value.path == str(config)


def test_invalid_value_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("poll-interval: soon\n")
    with pytest.raises(ConfigError, match="poll-interval"):
        DaemonSettings.load(config)


def test_api_token_comes_from_environment_and_is_never_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILER_API_TOKEN", "canary-token-4711")
    settings = DaemonSettings.load()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "canary-token-4711"
    assert "canary-token-4711" not in repr(settings)
    assert "canary-token-4711" not in str(settings.model_dump())


def test_api_token_and_webhook_secret_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok-from-file\n")
    (tmp_path / "hook").write_text("hook-from-file")
    settings = DaemonSettings.load(
        api_token_file=tmp_path / "token", webhook_secret_file=tmp_path / "hook"
    )
    assert settings.api_token is not None and settings.webhook_secret is not None
    assert settings.api_token.get_secret_value() == "tok-from-file"
    assert settings.webhook_secret.get_secret_value() == "hook-from-file"


def test_secrets_cannot_be_flags_or_config_file_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RECONCILER_API_TOKEN"):
        DaemonSettings.load(api_token="visible-in-ps")
    config = tmp_path / "reconciler.yaml"
    config.write_text("webhook-secret: in-git\n")
    with pytest.raises(ConfigError, match="RECONCILER_WEBHOOK_SECRET"):
        DaemonSettings.load(config)


def test_the_daemons_credential_files_are_denied_to_workflows_inside_a_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    names = ("api-token", "webhook-secret", "vault-token", "role-id", "secret-id")
    for name in names:
        (secrets / name).write_text(f"{name}-value\n")
    (secrets / "app.conf").write_text("workflows may read this")
    monkeypatch.setenv("RECONCILER_VAULT_TOKEN_FILE", str(secrets / "vault-token"))
    settings = DaemonSettings.load(
        workdir=tmp_path,
        api_token_file=secrets / "api-token",
        webhook_secret_file=secrets / "webhook-secret",
        vault_role_id_file=secrets / "role-id",
        vault_secret_id_file=secrets / "secret-id",
    )
    grants = settings.grants()
    for name in names:
        with pytest.raises(PathNotAllowed):
            grants.check_path(f"secrets/{name}", base=tmp_path)
    assert grants.check_path("secrets/app.conf", base=tmp_path) == secrets / "app.conf"
    kubernetes = DaemonSettings.load(workdir=tmp_path, file_roots=[Path("/")]).model_copy(
        update={"vault_auth_method": "kubernetes"}
    )
    with pytest.raises(PathNotAllowed):
        kubernetes.grants().check_path(
            "/var/run/secrets/kubernetes.io/serviceaccount/token", base=tmp_path
        )


def test_the_tokens_file_and_the_keys_trusted_to_sign_are_denied_to_workflows(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    (keys / "gnupg").mkdir(parents=True)
    for name in ("tokens.yaml", "allowed_signers", "gnupg/pubring.kbx"):
        (keys / name).write_text("x\n")
    settings = DaemonSettings.load(
        workdir=tmp_path,
        api_tokens_file=keys / "tokens.yaml",
        verify_signatures=True,
        allowed_signers=keys / "allowed_signers",
        gpg_home=keys / "gnupg",
    )
    grants = settings.grants()
    for name in ("tokens.yaml", "allowed_signers", "gnupg/pubring.kbx"):
        with pytest.raises(PathNotAllowed):
            grants.check_path(f"keys/{name}", base=tmp_path)


def test_verifying_signatures_needs_the_keys_to_trust() -> None:
    with pytest.raises(ConfigError, match="--allowed-signers FILE"):
        DaemonSettings.load(verify_signatures=True)
    assert DaemonSettings.load().signature_policy() is None
