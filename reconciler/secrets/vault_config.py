"""How to reach Vault: :class:`VaultConfig`, built from settings or the environment.

Apart from :mod:`reconciler.secrets.vault` (the client, which needs ``hvac`` and ``requests``)
so that deciding *whether* Vault is configured costs no client library: the one-shot commands
(:func:`reconciler.secrets.resolver.resolver_from_env`) read this on every ``plan``/``apply``
and import the client only when an address is set. :mod:`reconciler.secrets.vault` re-exports
everything here; the daemon's settings (``reconciler/daemon/settings.py``) describe the same
fields as ``vault_*``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from reconciler.credential_files import fill_from_files
from reconciler.errors import ConfigError

__all__ = [
    "DEFAULT_KUBERNETES_TOKEN_PATH",
    "ENV_PREFIX",
    "VAULT_ENV_FALLBACKS",
    "VaultConfig",
]

DEFAULT_KUBERNETES_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
ENV_PREFIX = "RECONCILER_VAULT_"
VAULT_ENV_FALLBACKS = {
    "addr": "VAULT_ADDR",
    "token": "VAULT_TOKEN",
    "namespace": "VAULT_NAMESPACE",
    "ca_cert": "VAULT_CACERT",
}
"""Vault's own variables, used when the ``RECONCILER_VAULT_*`` (or daemon) setting is unset."""


class VaultConfig(BaseModel):
    """How to reach and authenticate to Vault. Field names are the daemon's settings without
    their ``vault_`` prefix, and the environment variables after ``RECONCILER_VAULT_``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    addr: str = Field(description="Vault's address, e.g. https://vault.example:8200.")
    auth_method: Literal["token", "approle", "kubernetes"] = Field(
        "token", description="token, approle or kubernetes."
    )
    token: SecretStr | None = Field(None, description="Token for auth_method=token.")
    token_file: Path | None = Field(None, description="File holding the token.")
    role: str | None = Field(None, description="Vault role for Kubernetes auth.")
    role_id: str | None = Field(None, description="AppRole role ID.")
    role_id_file: Path | None = Field(None, description="File holding the AppRole role ID.")
    secret_id: SecretStr | None = Field(None, description="AppRole secret ID.")
    secret_id_file: Path | None = Field(None, description="File holding the AppRole secret ID.")
    auth_mount: str | None = Field(
        None, description="Mount of the auth method (default: approle or kubernetes)."
    )
    kubernetes_token_path: Path = Field(
        DEFAULT_KUBERNETES_TOKEN_PATH,
        description="Service-account token (JWT) presented to Kubernetes auth; re-read at "
        "each login, so projected tokens may rotate.",
    )
    kv_version: Literal[1, 2] | None = Field(
        None,
        description="KV version of every mount (the mount is then the first path segment); "
        "default: detected per mount.",
    )
    transit_mount: str = Field("transit", description="Mount of the transit engine.")
    namespace: str | None = Field(None, description="Vault Enterprise namespace.")
    ca_cert: Path | None = Field(None, description="CA bundle to verify Vault's TLS certificate.")
    timeout: float = Field(10.0, gt=0, description="Seconds per HTTP request.")
    retries: int = Field(3, ge=0, le=10, description="Retries of a transient failure.")
    backoff: float = Field(0.5, ge=0, description="First retry delay in seconds (doubles).")
    cache_ttl: float = Field(
        300.0, ge=0, description="Longest a secret is cached (never past its lease)."
    )

    @field_validator("kv_version", mode="before")
    @classmethod
    def _version_number(cls, value: Any) -> Any:
        """``"2"`` (from an environment variable) is 2."""
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _credentials(self) -> VaultConfig:
        fill_from_files(self, ("token", "role_id", "secret_id"), plain=frozenset({"role_id"}))
        if self.auth_method == "token" and self.token is None:
            raise ValueError("token auth needs a token (RECONCILER_VAULT_TOKEN or VAULT_TOKEN)")
        if self.auth_method == "approle" and self.role_id is None:
            raise ValueError("approle auth needs a role ID (role_id or role_id_file)")
        if self.auth_method == "kubernetes" and self.role is None:
            raise ValueError("kubernetes auth needs the Vault role (role)")
        return self

    @classmethod
    def build(
        cls, values: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> VaultConfig | None:
        """A config from ``values`` (unset ones left out), with Vault's own variables as
        fallbacks; ``None`` when no address is known (Vault not configured).

        Raises :class:`ConfigError` naming the setting (never its value) when invalid.
        """
        env = os.environ if environ is None else environ
        given = {k: v for k, v in values.items() if v is not None}
        for name, var in VAULT_ENV_FALLBACKS.items():
            if name not in given and env.get(var):
                given[name] = env[var]
        if not given.get("addr"):
            return None
        try:
            return cls(**given)
        except ValidationError as exc:
            parts = [
                f"{'.'.join(map(str, e['loc'])) or 'vault'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            ]
            raise ConfigError("invalid Vault settings: " + "; ".join(parts)) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VaultConfig | None:
        """The config of the one-shot commands: ``RECONCILER_VAULT_<FIELD>`` variables."""
        env = os.environ if environ is None else environ
        values = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if env.get(ENV_PREFIX + name.upper())
        }
        return cls.build(values, environ=env)

    @classmethod
    def from_settings(
        cls, settings: Any, *, environ: Mapping[str, str] | None = None
    ) -> VaultConfig | None:
        """The config from the daemon's ``vault_*`` settings (``DaemonSettings``)."""
        values = {
            name: getattr(settings, f"vault_{name}", None)
            for name in cls.model_fields
            if hasattr(settings, f"vault_{name}")
        }
        return cls.build(values, environ=environ)
