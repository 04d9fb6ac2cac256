"""``reconciler tokens hash``: the line of a tokens file (``--api-tokens-file``) for a token.

Reads the token from standard input (never from an argument: arguments show up in ``ps`` and
shell history) and prints a ``{name, sha256, role}`` entry holding only its SHA-256
(:func:`reconciler.api.tokens.hash_token`), ready to paste into the YAML tokens file.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from reconciler.cli.app import OutputFormat, OutputOption, app, fail

tokens_app = typer.Typer(
    name="tokens", help="Named API tokens (--api-tokens-file).", no_args_is_help=True
)
app.add_typer(tokens_app)


@tokens_app.command("hash")
def hash_command(
    name: Annotated[str, typer.Option("--name", "-n", help="The token's name.")] = "NAME",
    role: Annotated[str, typer.Option("--role", "-r", help="read, operate or admin.")] = "operate",
    output: OutputFormat = OutputOption,
) -> None:
    """Hash the token on standard input and print its tokens-file entry (YAML; -o json: the
    entry as a JSON object).

    One trailing newline is dropped: printf %s "$TOKEN" | reconciler tokens hash -n ci
    """
    from reconciler.api.tokens import ROLES, hash_token  # stdlib and yaml only

    if role not in ROLES:
        raise fail(f"role is one of {', '.join(ROLES)}, not {role!r}")
    token = sys.stdin.read()
    token = token[:-2] if token.endswith("\r\n") else token.removesuffix("\n")
    if not token:
        raise fail("nothing to hash: standard input is empty")
    entry = {"name": name, "sha256": hash_token(token), "role": role}
    if output is OutputFormat.json:
        print(json.dumps(entry))
        return
    print(f"- name: {name}\n  sha256: {entry['sha256']}\n  role: {role}")
