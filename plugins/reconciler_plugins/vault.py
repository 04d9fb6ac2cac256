"""Built-in ``vault.kv.read`` (check) and ``vault.kv.write``: manage secrets in Vault's KV engine.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and awaits :meth:`run`. Reading secrets *into* a run is not this module's job:
``secrets:`` references (``vault:...``) are resolved by ``reconciler/secrets/vault.py`` before a
run starts. These plugins make Vault a *target*: observe how old a credential is, and write or
rotate it, so rotating a credential is a workflow (the next runs of the workflows that use it
resolve the new value).

What callers may rely on:

* values never leave this module: ``vault.kv.read`` returns the secret's keys, version and age,
  and the values of only the keys listed in ``reveal`` (meant for non-secret fields such as a
  user name); ``vault.kv.write`` returns the keys it wrote and never their values;
* ``vault.kv.write`` is honest about ``changed``: it reads first and writes only when the merged
  data differs (a generated value is made only for a missing key, or for every ``generate`` key
  when ``rotate: true``); on KV v2 it writes with check-and-set on the version it read, so a
  concurrent writer makes it fail with ``Conflict`` (retryable) instead of being overwritten;
* one KV write is one HTTP request: a cancelled call either wrote the whole new version or
  nothing;
* Vault's address and token come from the request (``addr``, ``token`` — pass
  ``${{ secrets.vault_token }}``) or else from the process's Vault settings
  (``RECONCILER_VAULT_ADDR``/``RECONCILER_VAULT_TOKEN``, falling back to ``VAULT_ADDR``/
  ``VAULT_TOKEN``, read by :class:`reconciler.secrets.vault.VaultConfig`; token auth only);
  the process's token is only ever sent to the process's own address, never to another ``addr``;
  ``init()`` checks at start-up that the configured Vault answers and is unsealed;
* errors: ``ConnectionFailed`` (unreachable or sealed, retryable), ``AuthenticationFailed``
  (permission denied: bad token or policy), ``NotFound`` (no such mount), ``Conflict``
  (check-and-set lost, retryable), ``VaultError``, ``Timeout``, ``InvalidRequest``.
"""

from __future__ import annotations

import asyncio
import functools
import secrets as pysecrets
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import hvac
import requests
from hvac import exceptions as hv
from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from reconciler.config.models import Duration
from reconciler.errors import (
    ActionError,
    ConfigError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    NotFound,
    PluginError,
    Timeout,
)
from reconciler.plugin import ActionContext, Plugin, Request, Response
from reconciler.secrets.vault import VaultConfig
from reconciler.urls import mask_url

from ._common import SERVER_RETRY, AuthenticationFailed, redact_all, seconds_for

__all__ = [
    "ALPHABET",
    "VaultError",
    "VaultKvRead",
    "VaultKvWrite",
]

ALPHABET = string.ascii_letters + string.digits
"""Characters of generated values: safe unescaped in URLs, DSNs and shell words."""

T = TypeVar("T")


class VaultError(PluginError):
    """Vault refused a request for a reason not named more precisely (not retryable)."""

    retryable = False


class _VaultRequest(Request):
    model_config = ConfigDict(alias_generator=to_camel)

    addr: str | None = Field(
        None,
        description=(
            "Vault's address, e.g. https://vault:8200; defaults to the process's Vault "
            "settings (RECONCILER_VAULT_ADDR, else VAULT_ADDR)."
        ),
    )
    token: str | None = Field(
        None,
        description=(
            "Vault token; pass a secret: ${{ secrets.vault_token }}. Defaults to the process's "
            "Vault settings (RECONCILER_VAULT_TOKEN, else VAULT_TOKEN)."
        ),
    )
    namespace: str | None = Field(None, description="Vault Enterprise namespace.")
    mount: str = Field("secret", min_length=1, description="Mount point of the KV engine.")
    path: str = Field(min_length=1, description="Secret path inside the mount, e.g. payments/db.")
    kv_version: Literal[1, 2] = Field(2, description="KV engine version of the mount.")
    timeout: Duration = Field(
        timedelta(seconds=10), description="Deadline of the call; bounded by the action's."
    )

    def where(self) -> str:
        return f"{self.mount.strip('/')}/{self.path.strip('/')}"


def _same_address(a: str, b: str | None) -> bool:
    """Whether two Vault addresses name the same server (case and a trailing / aside)."""
    return b is not None and a.rstrip("/").lower() == b.rstrip("/").lower()


class _Target:
    """Where and how to reach Vault for one call."""

    def __init__(self, request: _VaultRequest) -> None:
        config = _daemon_config() if request.addr is None or request.token is None else None
        addr = request.addr or (config.addr if config else None)
        if not addr:
            raise InvalidRequest(
                "no Vault address: set `addr` or the daemon's Vault settings (RECONCILER_VAULT_ADDR)"
            )
        self.addr = addr
        self.token = _token_for(request, config)
        self.namespace = request.namespace or (config.namespace if config else None)
        self.verify: bool | str = str(config.ca_cert) if config and config.ca_cert else True


def _daemon_config() -> VaultConfig | None:
    """The daemon's own Vault settings (from its environment; ``None`` without Vault)."""
    try:
        return VaultConfig.from_env()
    except ConfigError as exc:  # names the setting, never its value
        raise InvalidRequest(f"the process's Vault settings are invalid: {exc}") from None


def _token_for(request: _VaultRequest, config: VaultConfig | None) -> str:
    """The request's token, else the daemon's — which goes to the daemon's Vault only, never to
    an address a commit names."""
    own_vault = config is not None and (
        request.addr is None or _same_address(request.addr, config.addr)
    )
    token = request.token
    if token is None and own_vault and config is not None and config.token is not None:
        token = config.token.get_secret_value()
    if not token and not own_vault and request.addr is not None:
        raise InvalidRequest(
            "no Vault token for the Vault at `addr`: set `token` (a secret); the daemon's "
            "own token is only sent to its own Vault (RECONCILER_VAULT_ADDR)"
        )
    if not token:
        raise InvalidRequest(
            "no Vault token: set `token` (a secret) or RECONCILER_VAULT_TOKEN for token auth"
        )
    return token


def _mapped(exc: BaseException, *, what: str, addr: str, context: ActionContext) -> ActionError:
    shown = context.redact(mask_url(addr))
    details = {"vault": shown, "path": what}
    if isinstance(exc, requests.Timeout):
        return Timeout(f"Vault at {shown}: no answer for {what}", details=details)
    if isinstance(exc, requests.RequestException):
        return ConnectionFailed(
            f"Vault at {shown} is unreachable ({type(exc).__name__})", details=details
        )
    errors = exc.errors if isinstance(exc, hv.VaultError) else None
    text = "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else ""
    text = redact_all(text or type(exc).__name__, context)
    if isinstance(exc, hv.VaultDown):
        return ConnectionFailed(f"Vault at {shown} is down or sealed: {text}", details=details)
    if isinstance(exc, hv.Forbidden | hv.Unauthorized):
        return AuthenticationFailed(
            f"Vault denied {what}: {text} (the token is invalid, expired, or its policies "
            "do not grant this path)",
            details=details,
        )
    if isinstance(exc, hv.InvalidPath):
        return NotFound(f"Vault has nothing at {what}: {text}", details=details)
    if isinstance(exc, hv.InvalidRequest) and "check-and-set" in text:
        return Conflict(
            f"{what} changed while it was being written: {text}",
            details=details,
            retryable=True,
        )
    if isinstance(exc, hv.InternalServerError | hv.BadGateway | hv.RateLimitExceeded):
        return VaultError(f"Vault failed on {what}: {text}", details=details, retryable=True)
    return VaultError(f"Vault refused {what}: {text}", details=details)


async def _call(
    request: _VaultRequest,
    context: ActionContext,
    work: Callable[[hvac.Client], T],
) -> T:
    """``work`` with a client in a worker thread; errors named; bounded by the timeout."""
    target = _Target(request)
    seconds = seconds_for(request.timeout, context)
    client = hvac.Client(
        url=target.addr,
        token=target.token,
        namespace=target.namespace,
        verify=target.verify,
        timeout=max(0.1, seconds),
    )
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.to_thread(functools.partial(work, client))
    except TimeoutError:
        raise Timeout(
            f"Vault at {context.redact(mask_url(target.addr))}: no answer within {seconds:g}s"
        ) from None
    except (hv.VaultError, requests.RequestException) as exc:
        raise _mapped(exc, what=request.where(), addr=target.addr, context=context) from None
    finally:
        client.adapter.close()


class _Current:
    """A secret as read: data, version, creation time (``None`` when missing)."""

    def __init__(self, data: dict[str, Any] | None, version: int | None, created: str | None):
        self.data = data
        self.version = version
        self.created = created


def _read(client: hvac.Client, request: _VaultRequest) -> _Current:
    mount, path = request.mount.strip("/"), request.path.strip("/")
    try:
        if request.kv_version == 2:
            answer = client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=False
            )
            body = answer.get("data") or {}
            metadata = body.get("metadata") or {}
            data = body.get("data")
            if data is None:  # deleted or destroyed: as good as missing
                return _Current(None, metadata.get("version"), None)
            return _Current(dict(data), metadata.get("version"), metadata.get("created_time"))
        answer = client.secrets.kv.v1.read_secret(path=path, mount_point=mount)
        return _Current(dict(answer.get("data") or {}), None, None)
    except hv.InvalidPath as exc:
        # a missing secret answers 404 with no error text; a missing mount names the route
        if exc.errors:
            raise
        return _Current(None, None, None)


def _age(created: str | None) -> float | None:
    if not created:
        return None
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


class _VaultPlugin:
    async def init(self) -> None:
        try:
            config = VaultConfig.from_env()
        except ConfigError as exc:  # names the setting, never its value
            raise ConnectionFailed(f"Vault settings are invalid: {exc}") from None
        if config is None:
            return
        client = hvac.Client(url=config.addr, namespace=config.namespace, timeout=5)
        try:
            health = await asyncio.to_thread(client.sys.read_health_status, method="GET")
        except requests.RequestException as exc:
            raise ConnectionFailed(
                f"Vault at {mask_url(config.addr)} is not reachable ({type(exc).__name__})"
            ) from None
        finally:
            client.adapter.close()
        body = health.json() if hasattr(health, "json") else health
        if isinstance(body, dict) and body.get("sealed"):
            raise ConnectionFailed(f"Vault at {mask_url(config.addr)} is sealed")


# ------------------------------------------------------------------------------------- read


class VaultKvReadRequest(_VaultRequest):
    """Which secret ``vault.kv.read`` looks at."""

    reveal: list[str] = Field(
        default_factory=list,
        description=(
            "Keys whose values are returned in `data` (non-secret fields only: outputs are "
            "journaled). Other values are never returned."
        ),
    )


class VaultKvReadResponse(Response):
    """What is known about the secret, without its values."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: reading changes nothing.")
    exists: bool = Field(False, description="Whether the secret exists (and is not deleted).")
    keys: list[str] = Field(default_factory=list, description="Its keys, sorted.")
    version: int | None = Field(None, description="Current version (KV v2).")
    created_time: str | None = Field(None, description="When this version was written (KV v2).")
    age_seconds: float | None = Field(
        None, description="Seconds since this version was written (KV v2): drives rotation."
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="Values of the `reveal` keys only (secrets replaced)."
    )


class VaultKvRead(_VaultPlugin, Plugin[VaultKvReadRequest, VaultKvReadResponse]):
    """Read a KV secret's keys, version and age (values only for `reveal` keys; read-only).

    A missing secret is not an error: ``exists: false``. Errors: ``ConnectionFailed``
    (unreachable or sealed, retryable), ``AuthenticationFailed``, ``NotFound`` (no such mount),
    ``VaultError``, ``Timeout``, ``InvalidRequest`` (no address or token). Default retry: 3
    attempts on retryable errors.
    """

    check = True
    Request = VaultKvReadRequest
    Response = VaultKvReadResponse
    retry = SERVER_RETRY
    errors = (
        ConnectionFailed,
        AuthenticationFailed,
        NotFound,
        VaultError,
        Timeout,
        InvalidRequest,
    )

    async def run(self, request: VaultKvReadRequest, context: ActionContext) -> VaultKvReadResponse:
        current = await _call(request, context, lambda client: _read(client, request))
        if current.data is None:
            return VaultKvReadResponse(exists=False, version=current.version)
        revealed = {
            k: context.redact(v) if isinstance(v, str) else v
            for k, v in current.data.items()
            if k in request.reveal
        }
        return VaultKvReadResponse(
            exists=True,
            keys=sorted(current.data),
            version=current.version,
            created_time=current.created,
            age_seconds=_age(current.created),
            data=revealed,
        )


# ------------------------------------------------------------------------------------ write


class VaultKvWriteRequest(_VaultRequest):
    """What ``vault.kv.write`` makes the secret hold."""

    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Keys and values to set (values may be ${{ secrets.x }} or ${{ inputs.y }}).",
    )
    generate: list[str] = Field(
        default_factory=list,
        description=(
            "Keys to fill with a random value of `length` letters and digits, made only when "
            "the key is missing, or every time with rotate: true. Never returned."
        ),
    )
    length: int = Field(32, ge=8, le=256, description="Length of generated values.")
    rotate: bool = Field(
        False, description="Generate new values for every `generate` key, present or not."
    )
    replace: bool = Field(
        False,
        description=(
            "Make the secret hold exactly `data` + `generate`; by default other keys already "
            "in the secret are kept."
        ),
    )

    @model_validator(mode="after")
    def _something(self) -> VaultKvWriteRequest:
        if not self.data and not self.generate:
            raise ValueError("give `data`, `generate`, or both")
        overlap = sorted(set(self.data) & set(self.generate))
        if overlap:
            raise ValueError(f"a key is either in `data` or in `generate`, not both: {overlap}")
        return self


class VaultKvWriteResponse(Response):
    """What ``vault.kv.write`` did (never the values)."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="True if a new version was written.")
    version: int | None = Field(None, description="Current version after the call (KV v2).")
    keys: list[str] = Field(default_factory=list, description="Keys the secret now holds.")
    generated: list[str] = Field(
        default_factory=list, description="Keys that received a newly generated value."
    )


def _random(length: int) -> str:
    return "".join(pysecrets.choice(ALPHABET) for _ in range(length))


class VaultKvWrite(_VaultPlugin, Plugin[VaultKvWriteRequest, VaultKvWriteResponse]):
    """Make a KV secret hold these keys, generating or rotating random values (changed only if it differed).

    Reads first and writes only when the merged data differs; on KV v2 the write is
    check-and-set on the version read. Errors: ``Conflict`` (another writer got there first,
    retryable), ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``NotFound`` (no
    such mount), ``VaultError``, ``Timeout``, ``InvalidRequest``. No default retry beyond
    retryable errors' 3 attempts.
    """

    Request = VaultKvWriteRequest
    Response = VaultKvWriteResponse
    retry = SERVER_RETRY
    errors = (
        Conflict,
        ConnectionFailed,
        AuthenticationFailed,
        NotFound,
        VaultError,
        Timeout,
        InvalidRequest,
    )

    async def run(
        self, request: VaultKvWriteRequest, context: ActionContext
    ) -> VaultKvWriteResponse:
        def work(client: hvac.Client) -> VaultKvWriteResponse:
            current = _read(client, request)
            existing = current.data or {}
            merged: dict[str, Any] = {} if request.replace else dict(existing)
            merged.update(request.data)
            generated: list[str] = []
            for key in sorted(set(request.generate)):
                if request.rotate or key not in existing:
                    merged[key] = _random(request.length)
                    generated.append(key)
                else:
                    merged[key] = existing[key]
            if current.data is not None and merged == existing:
                return VaultKvWriteResponse(
                    changed=False, version=current.version, keys=sorted(existing)
                )
            mount, path = request.mount.strip("/"), request.path.strip("/")
            if request.kv_version == 2:
                answer = client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=merged, cas=current.version or 0, mount_point=mount
                )
                version = (answer.get("data") or {}).get("version")
            else:
                client.secrets.kv.v1.create_or_update_secret(
                    path=path, secret=merged, mount_point=mount
                )
                version = None
            return VaultKvWriteResponse(
                changed=True, version=version, keys=sorted(merged), generated=generated
            )

        return await _call(request, context, work)
