"""Daemon settings: one pydantic-settings model, three sources, one precedence.

A value comes from, in order of precedence: a command-line flag (passed to :meth:`DaemonSettings.load`
as keyword values by ``reconciler run``), a ``RECONCILER_*`` environment variable, then the config
file given by ``--config`` (YAML or TOML; keys may be written ``max-concurrent-runs``,
``max_concurrent_runs`` or ``maxConcurrentRuns``). Unset values take the defaults below.

The API token and the webhook secret never come from a flag (flags show up in ``ps``): they come
from ``RECONCILER_API_TOKEN`` / ``RECONCILER_WEBHOOK_SECRET`` or from a file named by
``--api-token-file`` / ``--webhook-secret-file``, and are held as :class:`~pydantic.SecretStr` so
printing the settings never shows them. The same holds for the Vault token and AppRole secret ID
(``vault_*`` settings, turned into a :class:`~reconciler.secrets.vault.VaultConfig` by
``reconciler run``).

Neighbours: :mod:`reconciler.cli.run` builds the settings; :mod:`reconciler.daemon.controller`
consumes them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from reconciler.credential_files import fill_from_files
from reconciler.errors import ConfigError
from reconciler.grants import DEFAULT_DATA_DIR, Grants
from reconciler.sources.signatures import SignaturePolicy
from reconciler.telemetry.logging import parse_levels
from reconciler.types import Duration

ENV_PREFIX = "RECONCILER_"

_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "reconciler_settings_file", default=None
)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_SECRET_KEYS = {
    "api_token",
    "webhook_secret",
    "vault_token",
    "vault_secret_id",
    "preview_github_token",
    "preview_gitlab_token",
}


def _split_list(value: Any) -> Any:
    """``"a,b , c"`` → ``["a", "b", "c"]``; lists pass through; empty text is an empty list
    (an allow-list set to nothing allows nothing, it does not fall back to the default)."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
        return [item for item in items if item]
    return value


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The values read from ``--config`` (set by :meth:`DaemonSettings.load`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _FILE_VALUES.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get() or {})


class DaemonSettings(BaseSettings):
    """Every setting of ``reconciler run``. Field names are the flag names with ``_`` for ``-``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    repo: str | None = Field(
        None,
        description="Git URL or local path of the repository to watch. Default: the current "
        "directory's examples/quickstart when run in the project checkout.",
    )
    branch: str | None = Field(
        None,
        description="Branch to follow; default: the remote's default branch, or the branch "
        "checked out in a local repository.",
    )
    path: str = Field(".", description="Sub-path of the repository holding workflow files.")
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Where state, clones and SQLite live.")
    workdir: Path = Field(
        Path("."),
        description="Directory relative paths in workflows resolve against (as with apply).",
    )
    store: str | None = Field(
        None, description="SQLAlchemy URL of the store; default: SQLite in the data directory."
    )
    listen: str = Field("127.0.0.1:8080", description="host:port of the HTTP endpoint.")
    read_auth: Literal["none", "token"] | None = Field(
        None,
        description="Whether reading the API needs the token: none or token; default none when "
        "listening on loopback, token otherwise.",
    )
    poll_interval: Duration = Field(
        timedelta(seconds=60), description="How often the repository is fetched."
    )
    max_concurrent_runs: int = Field(
        16,
        ge=1,
        le=1000,
        description="Runs in flight at once. A run holds its slot while it waits (a timer, a "
        "poll, a remote system), so a few long runs must not hold up every other workflow.",
    )
    allow_plugins: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Globs of plugins the repository may use (comma-separated). Unset: every "
        "installed plugin (a warning says so at start); set but empty: none.",
    )
    file_roots: Annotated[list[Path] | None, NoDecode] = Field(
        None,
        description="Directories workflows may read and write under (file.*, file: secrets, "
        "shell.run's cwd); repeatable flag or comma-separated. Default: the workdir. The data "
        "directory, /proc, /sys and /dev are never reachable.",
    )
    allow_env: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Globs of environment variables env: secret references may read. Default: "
        "RECONCILER_SECRET_*; set but empty: none. The daemon's own credentials never.",
    )
    max_file_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1,
        description="Largest file a workflow may read (file.read, file: secrets), in bytes.",
    )
    expression_cost_limit: int = Field(
        1_000_000,
        ge=1,
        description="Budget of one CEL expression evaluation, in cost units (roughly one per "
        "element visited); going over it is the error ExpressionBudgetExceeded.",
    )
    api_docs: bool = Field(
        False,
        description="Serve the interactive API documentation at /docs (its assets are local).",
    )
    keep_runs: int | None = Field(
        100, ge=1, description="Runs kept per workflow; older ones are pruned."
    )
    keep_days: int | None = Field(30, ge=1, description="Days of run history kept.")
    default_interval: Duration = Field(
        timedelta(minutes=5),
        description="Drift re-check cadence of workflows that set neither interval nor cron.",
    )
    grace_period: Duration = Field(
        timedelta(seconds=30),
        description="On SIGTERM, how long running states get to finish before they are "
        "cancelled (they resume on the next start).",
    )
    log_level: str = Field(
        "info", description="debug, info, warning or error: reconciler's and the plugins' logs."
    )
    log_levels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Levels of single loggers, e.g. 'aiosqlite=warning,httpx=debug' (a name "
        "covers its children). Libraries such as aiosqlite, SQLAlchemy, httpx, watchfiles and "
        "asyncio log at warning unless named here.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="json (one JSON object per line), console (readable) or auto: JSON when "
        "stderr is not a terminal, console on one.",
    )
    replica_id: str | None = Field(
        None,
        description="Name of this replica in the leases table (PostgreSQL stores); default "
        "<hostname>-<pid>-<random>.",
    )
    lease_ttl: Duration = Field(
        timedelta(seconds=30),
        description="How long a replica's claim on a workflow outlives its last renewal (renewed "
        "every third); a dead replica's runs are taken over after this.",
    )
    command_interval: Duration = Field(
        timedelta(milliseconds=500),
        description="How often the daemon reads the store's command log for a sync, suspend, "
        "resume or cancel accepted through another replica (or before a restart).",
    )
    verify_signatures: bool = Field(
        False,
        description="Apply a fetched revision only when its head commit is signed by an allowed "
        "key (SSH: --allowed-signers; GPG: --gpg-home); otherwise the last verified revision "
        "stays applied and the source reports SignatureRefused.",
    )
    allowed_signers: Path | None = Field(
        None,
        description="Allowed-signers file of SSH commit signatures (the format of ssh-keygen -Y "
        "verify); read at every check.",
    )
    gpg_home: Path | None = Field(
        None,
        description="GnuPG home directory (GNUPGHOME) whose keyring holds the keys allowed to "
        "sign commits.",
    )
    api_token_file: Path | None = Field(None, description="File holding the API bearer token.")
    api_tokens_file: Path | None = Field(
        None,
        description="YAML or JSON file of named API tokens: a list of {name, sha256, role} with "
        "role read, operate or admin (the sha256 of each token, never the token).",
    )
    webhook_secret_file: Path | None = Field(None, description="File holding the webhook secret.")
    windows_file: Path | None = Field(
        None,
        description="YAML or JSON file of the operator's change windows: a list of windows "
        "(kind, schedule, duration, timeZone, manualSync, description) each with an optional "
        "selector (names: globs, matchLabels), applied with each workflow's own spec.windows. "
        "Read at start; a bad file stops the daemon from starting.",
    )
    api_token: SecretStr | None = Field(
        None, description="From RECONCILER_API_TOKEN or --api-token-file only."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="From RECONCILER_WEBHOOK_SECRET or --webhook-secret-file only."
    )
    # Vault (reconciler.secrets.vault.VaultConfig describes each; VAULT_ADDR, VAULT_TOKEN,
    # VAULT_NAMESPACE and VAULT_CACERT are the fallbacks of the settings with those names).
    vault_addr: str | None = Field(None, description="Vault's address; unset: no Vault.")
    vault_auth_method: Literal["token", "approle", "kubernetes"] = Field(
        "token", description="How the daemon logs in to Vault."
    )
    vault_token: SecretStr | None = Field(
        None, description="From RECONCILER_VAULT_TOKEN (or VAULT_TOKEN) or vault-token-file only."
    )
    vault_token_file: Path | None = Field(None, description="File holding the Vault token.")
    vault_role: str | None = Field(None, description="Vault role of Kubernetes auth.")
    vault_role_id: str | None = Field(None, description="AppRole role ID.")
    vault_role_id_file: Path | None = Field(None, description="File holding the role ID.")
    vault_secret_id: SecretStr | None = Field(
        None, description="From RECONCILER_VAULT_SECRET_ID or vault-secret-id-file only."
    )
    vault_secret_id_file: Path | None = Field(
        None, description="File holding the AppRole secret ID."
    )
    vault_auth_mount: str | None = Field(
        None, description="Mount of the auth method (default approle / kubernetes)."
    )
    vault_kubernetes_token_path: Path | None = Field(
        None,
        description="Service-account token for Kubernetes auth (default "
        "/var/run/secrets/kubernetes.io/serviceaccount/token).",
    )
    vault_kv_version: int | None = Field(
        None, ge=1, le=2, description="KV version (1 or 2) of every mount; default: detected."
    )
    vault_namespace: str | None = Field(None, description="Vault Enterprise namespace.")
    vault_ca_cert: Path | None = Field(None, description="CA bundle for Vault's TLS certificate.")
    external_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="URL people reach the daemon's page at; notifications link to workflows "
        "under it. Unset: messages carry no link.",
    )
    notify_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Globs of hosts (host or host:port) notification providers may send to "
        "(comma-separated). Default: none, so a repository's providers send nothing.",
    )
    notify_provider_types: Annotated[
        list[Literal["slack", "teams", "webhook", "github", "gitlab"]] | None, NoDecode
    ] = Field(
        None,
        description="Notification provider types a repository may use (comma-separated). "
        "Unset: all.",
    )

    preview_github_url: str = Field(
        "https://api.github.com",
        pattern=r"^https?://[^\s]+$",
        description="GitHub API base URL previews post commit statuses and comments to "
        "(GitHub Enterprise: https://HOST/api/v3). Its host must be in notify-hosts.",
    )
    preview_gitlab_url: str = Field(
        "https://gitlab.com",
        pattern=r"^https?://[^\s]+$",
        description="GitLab base URL previews post commit statuses and notes to (/api/v4 is "
        "added). Its host must be in notify-hosts.",
    )
    preview_github_token_file: Path | None = Field(
        None, description="File holding the GitHub token previews post with."
    )
    preview_gitlab_token_file: Path | None = Field(
        None, description="File holding the GitLab token previews post with."
    )
    preview_github_token: SecretStr | None = Field(
        None,
        description="From RECONCILER_PREVIEW_GITHUB_TOKEN or --preview-github-token-file only.",
    )
    preview_gitlab_token: SecretStr | None = Field(
        None,
        description="From RECONCILER_PREVIEW_GITLAB_TOKEN or --preview-gitlab-token-file only.",
    )
    preview_max_workflows: int = Field(
        50,
        ge=0,
        description="Most new or changed workflows whose observe probe one preview runs (the "
        "others are listed as not observed).",
    )
    preview_timeout: Duration = Field(
        timedelta(minutes=2),
        description="How long one preview's probes may take in all (the rest are listed as "
        "not observed).",
    )

    @field_validator(
        "allow_plugins",
        "file_roots",
        "allow_env",
        "notify_hosts",
        "notify_provider_types",
        mode="before",
    )
    @classmethod
    def _plugins_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("log_levels", mode="before")
    @classmethod
    def _logger_levels(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_levels(value)
        if isinstance(value, Mapping):  # a config file's mapping: the same checks
            return parse_levels(",".join(f"{k}={v}" for k, v in value.items()))
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("log level is one of debug, info, warning, error")
        return level

    @model_validator(mode="after")
    def _secrets_from_files(self) -> DaemonSettings:
        fill_from_files(
            self, ("api_token", "webhook_secret", "preview_github_token", "preview_gitlab_token")
        )
        return self

    @model_validator(mode="after")
    def _signature_keys(self) -> DaemonSettings:
        if self.verify_signatures and self.allowed_signers is None and self.gpg_home is None:
            raise ValueError(
                "verify-signatures needs the keys to trust: --allowed-signers FILE (SSH) "
                "and/or --gpg-home DIR (GPG)"
            )
        return self

    def store_connections(self) -> int:
        """Connections the daemon's store keeps open: one per run in flight, and four for the
        API, the command reader, the lease keeper and retention."""
        return self.max_concurrent_runs + 4

    def signature_policy(self) -> SignaturePolicy | None:
        """What a fetched head commit must be signed with; None without
        ``verify_signatures``."""
        if not self.verify_signatures:
            return None
        return SignaturePolicy(allowed_signers=self.allowed_signers, gpg_home=self.gpg_home)

    def grants(self, *, private: Iterable[Path] = ()) -> Grants:
        """What workflows may reach under these settings: the file roots, the variables and the
        read cap, with the data directory, ``private`` (a source's clone or ``.git``), the
        files holding the daemon's credentials (``*_file`` settings, the Kubernetes token) and
        the keys trusted to sign commits (``allowed_signers``, ``gpg_home``) denied whatever
        the roots say."""
        credentials = [
            self.api_token_file,
            self.api_tokens_file,
            # the keys allowed to sign commits: a workflow that could write them could approve
            # its own committer's next commit
            self.allowed_signers,
            self.gpg_home,
            self.webhook_secret_file,
            self.preview_github_token_file,
            self.preview_gitlab_token_file,
            # the operator's change windows: a workflow that could write them could open its
            # own window (at the next start)
            self.windows_file,
            self.vault_token_file,
            self.vault_role_id_file,
            self.vault_secret_id_file,
            self.vault_kubernetes_token_path,
        ]
        if self.vault_auth_method == "kubernetes" and self.vault_kubernetes_token_path is None:
            from reconciler.secrets.vault_config import DEFAULT_KUBERNETES_TOKEN_PATH

            credentials.append(DEFAULT_KUBERNETES_TOKEN_PATH)
        return Grants.for_daemon(
            workdir=self.workdir,
            file_roots=self.file_roots,
            allow_env=self.allow_env,
            deny=[self.data_dir, *private, *(p for p in credentials if p is not None)],
            max_read_bytes=self.max_file_bytes,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        /,
        **flags: Any,
    ) -> DaemonSettings:
        """Settings from ``flags`` (``None`` values mean "not given"), env, then ``config_file``.

        Raises :class:`~reconciler.errors.ConfigError` naming the offending setting (and the
        file, when it came from one) instead of a pydantic traceback.
        """
        given = {k: v for k, v in flags.items() if v is not None}
        for key in _SECRET_KEYS & given.keys():
            raise ConfigError(
                f"{key} cannot be a flag; use {ENV_PREFIX}{key.upper()} or --{key.replace('_', '-')}-file"
            )
        file_values = read_config_file(config_file) if config_file is not None else {}
        token = _FILE_VALUES.set(file_values)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(
                _explain(exc), path=str(config_file) if config_file else None
            ) from None
        finally:
            _FILE_VALUES.reset(token)


def _normalise_key(key: str) -> str:
    return _CAMEL.sub("_", key).lower().replace("-", "_")


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML (``.yaml``/``.yml``/other) or TOML (``.toml``) file, keys normalised.

    Unknown keys and secret values are :class:`ConfigError` with the file's path: a typo in a
    config file must not be silently ignored, and a token belongs in a file of its own.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", path=str(path)) from None
    try:
        raw: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}", path=str(path)
        ) from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("a config file is a mapping of setting names to values", path=str(path))
    known = set(DaemonSettings.model_fields)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = _normalise_key(str(key))
        if name in _SECRET_KEYS:
            raise ConfigError(
                f"{key!r} cannot be written in the config file; use {ENV_PREFIX}{name.upper()} "
                f"or {name}_file",
                path=str(path),
            )
        if name not in known:
            raise ConfigError(f"unknown setting {key!r}", path=str(path))
        out[name] = value
    return out


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"{where.replace('_', '-')}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)
