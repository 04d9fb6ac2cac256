"""Secret resolution: turn ``spec.secrets`` references into values at run time.

The runner (``engine/runner.py``) calls a :class:`SecretResolver` once per run (and
``Engine.observe`` once per probe); the values go straight into a
:class:`~reconciler.secrets.redaction.Redactor` and into the ``secrets`` CEL scope used only while
rendering ``with:``. :class:`DefaultResolver` knows ``env:NAME`` and ``file:/path`` itself and
routes ``vault:`` and ``transit:`` to a :class:`~reconciler.secrets.vault.VaultClient` when one is
configured (:func:`resolver_from_env` builds that for the one-shot commands; the daemon builds it
from its settings in ``reconciler/cli/run.py``). Error messages name the reference, never a value.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reconciler.errors import NotAllowed, SecretUnavailable
from reconciler.grants import Grants

if TYPE_CHECKING:
    from reconciler.secrets.vault import VaultClient

VAULT_NOT_CONFIGURED = "vault is not configured; see the secrets guide"


@runtime_checkable
class SecretResolver(Protocol):
    """Resolves ``{name: reference}`` into ``{name: value}``.

    Raises :class:`SecretUnavailable` naming the reference (never a value) when one cannot be
    resolved; a resolver never returns a partial mapping.
    """

    async def resolve(self, refs: dict[str, str]) -> dict[str, str]: ...


class DefaultResolver:
    """``env:NAME`` from the process environment, ``file:/path`` from a file.

    Both are checked against ``grants`` first (default :meth:`Grants.local` of the current
    directory): a variable outside ``--allow-env`` or one of the daemon's own is
    :class:`EnvNotAllowed`, a file outside the file roots, a special file or one over the read
    limit is :class:`PathNotAllowed`. A file's single trailing newline is stripped
    (``echo secret > file`` is the common way to write one). ``vault:`` and ``transit:``
    references go to ``vault``; without one they raise :class:`SecretUnavailable` saying Vault is
    not configured.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        vault: VaultClient | None = None,
        grants: Grants | None = None,
    ) -> None:
        self._environ = environ
        self.vault = vault
        self.grants = grants if grants is not None else Grants.local(Path.cwd())

    async def resolve(self, refs: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, ref in refs.items():
            out[name] = await self.resolve_one(name, ref)
        return out

    async def resolve_one(self, name: str, ref: str) -> str:
        try:
            return await self._resolve_one(name, ref)
        except NotAllowed as exc:  # the same error, saying which secret asked for it
            raise type(exc)(
                f"secret {name!r} ({ref}): {exc.message}",
                details={**exc.details, "secret": name, "ref": ref},
            ) from None

    async def _resolve_one(self, name: str, ref: str) -> str:
        scheme, _, rest = ref.partition(":")
        if scheme == "env":
            self.grants.check_env(rest)
            env = self._environ if self._environ is not None else os.environ
            if rest not in env:
                raise SecretUnavailable(
                    f"secret {name!r} ({ref}): environment variable {rest} is not set",
                    details={"secret": name, "ref": ref},
                )
            return env[rest]
        if scheme == "file":
            return await asyncio.to_thread(_read_file, name, ref, path=rest, grants=self.grants)
        if scheme == "vault" and self.vault is not None:
            return await self.vault.read(name, ref)
        if scheme == "transit" and self.vault is not None:
            return await self.vault.decrypt(name, ref)
        if scheme in ("vault", "transit"):
            raise SecretUnavailable(
                f"secret {name!r} ({scheme}:...): {VAULT_NOT_CONFIGURED}",
                details={"secret": name},
                retryable=False,
            )
        raise SecretUnavailable(
            f"secret {name!r}: unsupported reference scheme {scheme!r}",
            details={"secret": name},
            retryable=False,
        )


def resolver_from_env(
    environ: Mapping[str, str] | None = None, *, grants: Grants | None = None
) -> DefaultResolver:
    """The resolver of the one-shot commands (``plan``, ``apply``): Vault when
    ``RECONCILER_VAULT_ADDR`` (or ``VAULT_ADDR``) is set, ``env:``/``file:`` always.

    Raises :class:`~reconciler.errors.ConfigError` when the Vault variables are inconsistent.
    """
    from reconciler.secrets.vault_config import VaultConfig

    config = VaultConfig.from_env(environ)
    if config is None:  # no Vault: no client library to import
        return DefaultResolver(environ=environ, vault=None, grants=grants)
    from reconciler.secrets.vault import VaultClient

    return DefaultResolver(environ=environ, vault=VaultClient(config), grants=grants)


def resolver_from_settings(settings: object, *, grants: Grants | None = None) -> DefaultResolver:
    """The daemon's resolver: Vault from its ``vault_*`` settings (``DaemonSettings``), with
    ``VAULT_ADDR``/``VAULT_TOKEN``/... as fallbacks; ``env:``/``file:`` always.

    Raises :class:`~reconciler.errors.ConfigError` when the Vault settings are inconsistent.
    """
    from reconciler.secrets.vault_config import VaultConfig

    config = VaultConfig.from_settings(settings)
    if config is None:
        return DefaultResolver(vault=None, grants=grants)
    from reconciler.secrets.vault import VaultClient

    return DefaultResolver(vault=VaultClient(config), grants=grants)


def _read_file(name: str, ref: str, *, path: str, grants: Grants) -> str:
    try:
        text = grants.read_file(path, base=Path.cwd())[1].decode("utf-8")
    except FileNotFoundError:
        raise SecretUnavailable(
            f"secret {name!r} ({ref}): file not found", details={"secret": name, "ref": ref}
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        # the OS error text names the path, never the content
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretUnavailable(
            f"secret {name!r} ({ref}): cannot read file: {reason}",
            details={"secret": name, "ref": ref},
        ) from None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


class StaticResolver:
    """Returns fixed values: for tests and the workflow test harness (no real secret needed).

    References without a value get ``default`` (formatted with ``{name}``), or fail with
    :class:`SecretUnavailable` when ``default`` is ``None``.
    """

    def __init__(
        self, values: Mapping[str, str] | None = None, *, default: str | None = None
    ) -> None:
        self._values = dict(values or {})
        self._default = default

    async def resolve(self, refs: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, ref in refs.items():
            if name in self._values:
                out[name] = self._values[name]
            elif self._default is not None:
                out[name] = self._default.format(name=name)
            else:
                raise SecretUnavailable(f"secret {name!r} ({ref}) has no test value")
        return out
