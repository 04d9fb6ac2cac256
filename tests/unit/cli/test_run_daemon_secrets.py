"""``reconciler run`` registers the daemon's own secrets, so no log line of any logger shows them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from reconciler.cli.serving import register_daemon_secrets
from reconciler.daemon.settings import DaemonSettings
from reconciler.secrets.redaction import REGISTRY, RedactingFilter

OWN = {
    "api_token": "api-tok-3e9b51",
    "webhook_secret": "hook-s3cret-77aa",
    "vault_token": "hvs.vault-tok-0c2d",
}
STORE_PASSWORD = "st0re-p@ss"
REPO_TOKEN = "ghp_repoTokenValue42"


@pytest.fixture
def settings() -> Iterator[DaemonSettings]:
    yield DaemonSettings(
        **{name: SecretStr(value) for name, value in OWN.items()},
        store=f"postgresql://app:{STORE_PASSWORD.replace('@', '%40')}@db:5432/reconciler",
        repo=f"https://x-access-token:{REPO_TOKEN}@github.com/o/r.git",
    )
    for value in (*OWN.values(), STORE_PASSWORD, REPO_TOKEN):
        REGISTRY.discard(value)


def test_the_daemons_own_secrets_are_masked_in_any_loggers_records(
    settings: DaemonSettings,
) -> None:
    register_daemon_secrets(settings)
    secrets = [*OWN.values(), STORE_PASSWORD, REPO_TOKEN]
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "seen: %s", (" ".join(secrets),), None
    )

    RedactingFilter().filter(record)

    assert record.getMessage() == "seen: " + " ".join(["***"] * len(secrets))
