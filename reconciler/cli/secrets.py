"""``reconciler secrets encrypt``: turn a value into a ``transit:`` reference safe to commit.

Reads the value from standard input (never from an argument: arguments show up in ``ps`` and
shell history), encrypts it with Vault's transit engine under ``--key`` through
:class:`~reconciler.secrets.vault.VaultClient`, and prints ``transit:<key>:vault:v1:...`` to paste
under a workflow's ``spec.secrets``; the runner decrypts it at run time through the same client
(:mod:`reconciler.secrets.resolver`). Vault is reached exactly as by ``plan``/``apply``:
``RECONCILER_VAULT_*`` variables, falling back to ``VAULT_ADDR``/``VAULT_TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from reconciler.cli.app import OutputFormat, OutputOption, app, fail
from reconciler.cli.helptext import typer_app
from reconciler.errors import ConfigError, SecretUnavailable

secrets_app = typer_app(
    name="secrets", help="Work with secret references (Vault transit).", no_args_is_help=True
)
app.add_typer(secrets_app)


@secrets_app.command()
def encrypt(
    key: Annotated[
        str, typer.Option("--key", "-k", metavar="KEY", help="Transit key to encrypt with.")
    ],
    output: OutputFormat = OutputOption,
) -> None:
    """Encrypt standard input with Vault transit and print the reference to use in a workflow.

    One trailing newline is dropped (echo value | reconciler secrets encrypt --key K). With
    -o json: {"key": ..., "reference": ...}.
    """
    from reconciler.secrets.vault import VaultClient, VaultConfig  # hvac: only for this command

    try:
        config = VaultConfig.from_env()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if config is None:
        raise fail("Vault is not configured: set RECONCILER_VAULT_ADDR (or VAULT_ADDR)")
    value = sys.stdin.read()
    value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value:
        raise fail("nothing to encrypt: standard input is empty")
    client = VaultClient(config)
    try:
        reference = asyncio.run(client.encrypt(key, value))
    except SecretUnavailable as exc:
        raise fail(exc.message) from None
    finally:
        client.close()
    if output is OutputFormat.json:
        print(json.dumps({"key": key, "reference": reference}))
    else:
        print(reference)
