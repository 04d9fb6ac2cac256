"""``reconciler secrets encrypt`` and ``reconciler apply`` with Vault, in-process through typer's
runner, against the in-process Vault over real HTTP: encrypt a value, commit-style paste the
printed reference into a workflow, and ``apply`` decrypts it at run time."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reconciler.cli import app
from tests.integration.secrets.conftest import APP_POLICY
from tests.support.daemon import CLI, without_settings
from tests.support.vault_server import FakeVault

pytestmark = pytest.mark.timeout(30)

runner = CliRunner()


def workflow(target: Path, ref: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "motd"},
            "spec": {
                "secrets": {"greeting": ref},
                "start": "write",
                "states": {
                    "write": {
                        "action": {
                            "plugin": "file.write",
                            "with": {"path": str(target), "content": "${{ secrets.greeting }}"},
                        },
                        "next": "done",
                    },
                    "done": {"end": "success"},
                },
            },
        },
        sort_keys=False,
    )


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVault]:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"):
        monkeypatch.delenv(name, raising=False)
    with FakeVault() as server:
        yield server


def test_encrypt_then_apply_decrypts_the_reference(
    vault: FakeVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # apply's workdir, its only file root
    env = {
        "RECONCILER_VAULT_ADDR": vault.addr,
        "RECONCILER_VAULT_TOKEN": vault.create_token(APP_POLICY),
    }
    encrypted = runner.invoke(
        app, ["secrets", "encrypt", "--key", "app"], input="hello from git\n", env=env
    )
    assert encrypted.exit_code == 0, encrypted.output
    reference = encrypted.stdout.strip()
    assert reference.startswith("transit:app:vault:v1:")
    assert "hello" not in reference
    assert ("POST", "transit/encrypt/app") in vault.requests

    target = tmp_path / "motd"
    (tmp_path / "motd.yaml").write_text(workflow(target, reference))
    # apply reaches Vault through Vault's own variables as well
    applied = runner.invoke(
        app,
        ["apply", str(tmp_path / "motd.yaml")],
        env={"VAULT_ADDR": vault.addr, "VAULT_TOKEN": vault.create_token(APP_POLICY)},
    )
    assert applied.exit_code == 0, applied.output
    assert target.read_text() == "hello from git"
    assert "hello from git" not in applied.output
    assert ("POST", "transit/decrypt/app") in vault.requests


def test_apply_reports_a_sealed_vault_on_the_workflow(vault: FakeVault, tmp_path: Path) -> None:
    vault.put_kv2("secret/app/motd", {"greeting": "hi"})
    (tmp_path / "motd.yaml").write_text(
        workflow(tmp_path / "motd", "vault:secret/app/motd#greeting")
    )
    vault.sealed = True
    env = {
        "RECONCILER_VAULT_ADDR": vault.addr,
        "RECONCILER_VAULT_TOKEN": vault.create_token(APP_POLICY),
        "RECONCILER_VAULT_RETRIES": "0",
    }
    applied = runner.invoke(app, ["apply", "-o", "json", str(tmp_path / "motd.yaml")], env=env)
    assert applied.exit_code == 1
    assert "Vault is sealed" in applied.stdout
    assert not (tmp_path / "motd").exists()


def test_apply_without_vault_configured_says_so(tmp_path: Path, vault: FakeVault) -> None:
    (tmp_path / "motd.yaml").write_text(
        workflow(tmp_path / "motd", "vault:secret/app/motd#greeting")
    )
    applied = runner.invoke(app, ["apply", "-o", "json", str(tmp_path / "motd.yaml")])
    assert applied.exit_code == 1
    assert "vault is not configured" in applied.stdout


def test_encrypt_output_json_carries_the_key_and_the_reference(vault: FakeVault) -> None:
    env = {
        **without_settings(),
        "RECONCILER_VAULT_ADDR": vault.addr,
        "RECONCILER_VAULT_TOKEN": vault.create_token(APP_POLICY),
    }
    done = subprocess.run(
        [*CLI, "secrets", "encrypt", "--key", "app", "-o", "json"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["key"] == "app"
    assert document["reference"].startswith("transit:app:vault:v1:")
    assert "s3cret" not in done.stdout


def test_encrypt_refuses_without_vault_or_without_input(vault: FakeVault) -> None:
    unconfigured = runner.invoke(app, ["secrets", "encrypt", "--key", "app"], input="x\n")
    assert unconfigured.exit_code == 2
    assert "Vault is not configured" in unconfigured.output
    env = {"RECONCILER_VAULT_ADDR": vault.addr, "RECONCILER_VAULT_TOKEN": vault.root_token}
    empty = runner.invoke(app, ["secrets", "encrypt", "--key", "app"], input="", env=env)
    assert empty.exit_code == 2
    assert "standard input is empty" in empty.output


def test_encrypt_with_a_token_that_may_not_use_the_key_is_forbidden(vault: FakeVault) -> None:
    env = {
        "RECONCILER_VAULT_ADDR": vault.addr,
        "RECONCILER_VAULT_TOKEN": vault.create_token(["secret/data/*"]),
    }
    result = runner.invoke(
        app, ["secrets", "encrypt", "--key", "app"], input="top secret\n", env=env
    )
    assert result.exit_code == 2
    assert "cannot encrypt with transit key 'app': forbidden" in result.output
    assert "top secret" not in result.output
