"""Vault: ``vault:`` (KV v1/v2) and ``transit:`` references, read through ``hvac`` at run time.

:class:`~reconciler.secrets.resolver.DefaultResolver` routes ``vault:`` and ``transit:``
references here (``env:``/``file:`` it handles itself); the runner (``engine/runner.py``) calls
the resolver when a run (or an observe probe) starts and registers every value with the run's
:class:`~reconciler.secrets.redaction.Redactor`. Nothing here is ever written anywhere: values
live in the in-memory cache and in the run that asked for them.

- :class:`VaultConfig` (in :mod:`reconciler.secrets.vault_config`, re-exported here) is the one
  description of how to reach Vault: the daemon builds it from its ``vault_*`` settings
  (``reconciler/daemon/settings.py``), the one-shot commands (``plan``/``apply``/``secrets
  encrypt``) from ``RECONCILER_VAULT_*`` variables; both fall back to Vault's own
  ``VAULT_ADDR``/``VAULT_TOKEN``/``VAULT_NAMESPACE``/``VAULT_CACERT``.
- :class:`VaultClient` authenticates (token, AppRole, Kubernetes), renews its token once less
  than a third of its lease is left (logging in again when it cannot), detects each KV mount's
  version (``sys/internal/ui/mounts/<path>``, falling back to ``sys/mounts``) unless configured,
  caches whole secrets for at most their lease (and ``cache_ttl``), and retries transient
  failures (unreachable, sealed, 5xx, 429) with exponential back-off.

Every failure is a :class:`~reconciler.errors.SecretUnavailable` naming the secret, the
reference and the reason — sealed, forbidden, token expired, not found, deleted version, key
missing, unreachable — with ``details["reason"]`` a short code; never a value.

Reference syntax: ``vault:<mount>/<path>[?version=N]#<key>`` and
``transit:<key>:vault:v1:<ciphertext>`` (what ``reconciler secrets encrypt`` prints).

Why one module of ~600 lines: it is one client of one server: login, token renewal, mount
detection, the cache and the error mapping all act on the same client state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import requests
import structlog
from hvac import exceptions as hv

from reconciler.errors import ReconcilerError, SecretUnavailable
from reconciler.secrets.redaction import register_secret
from reconciler.secrets.vault_config import (
    DEFAULT_KUBERNETES_TOKEN_PATH,
    ENV_PREFIX,
    VAULT_ENV_FALLBACKS,
    VaultConfig,
)

__all__ = [  # the configuration is re-exported: the client's users import one module
    "DEFAULT_KUBERNETES_TOKEN_PATH",
    "ENV_PREFIX",
    "VAULT_ENV_FALLBACKS",
    "VaultClient",
    "VaultConfig",
    "parse_vault_ref",
]

log = structlog.get_logger("reconciler.secrets")

T = TypeVar("T")


class _Failure(ReconcilerError):
    """Why Vault could not answer, before the secret's name is known (never holds a value)."""

    def __init__(self, reason: str, *, code: str, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retryable = retryable


_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    hv.VaultDown,
    hv.InternalServerError,
    hv.BadGateway,
    hv.RateLimitExceeded,
)


def _errors(exc: hv.VaultError) -> str:
    errors = exc.errors
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)
    return f"HTTP {type(exc).__name__}"


def parse_vault_ref(ref: str) -> tuple[str, int | None, str]:
    """``vault:secret/app?version=3#password`` → ``("secret/app", 3, "password")``.

    Raises :class:`ValueError` when the reference is malformed.
    """
    body = ref.removeprefix("vault:")
    location, sep, key = body.rpartition("#")
    if not sep or not location or not key:
        raise ValueError("a Vault reference is vault:<mount>/<path>#<key>")
    path, _, query = location.partition("?")
    version: int | None = None
    if query:
        name, _, number = query.partition("=")
        if name != "version" or not number.isdigit() or int(number) < 1:
            raise ValueError("the only option of a Vault reference is ?version=<n>, n >= 1")
        version = int(number)
    path = path.strip("/")
    if "/" not in path:
        raise ValueError("a Vault reference names the mount and a path: vault:<mount>/<path>#<key>")
    return path, version, key


class VaultClient:
    """One authenticated connection to Vault, shared by every run of a process.

    ``clock`` (monotonic seconds) drives token renewal and the cache; tests inject their own.
    Blocking ``hvac`` calls run in worker threads, so the event loop never waits on Vault.
    """

    def __init__(self, config: VaultConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._client = hvac.Client(
            url=config.addr,
            namespace=config.namespace,
            verify=str(config.ca_cert) if config.ca_cert else True,
            timeout=config.timeout,
        )
        self._auth_lock = asyncio.Lock()
        self._authenticated = False
        self._expires: float | None = None
        self._lease = 0.0
        self._renewable = False
        self._mounts: dict[str, int] = {}
        self._cache: dict[tuple[str, int | None], tuple[float, dict[str, Any]]] = {}

    # -- public ----------------------------------------------------------------------------------

    async def read(self, name: str, ref: str) -> str:
        """The value of ``vault:<path>[?version=N]#<key>`` for the secret called ``name``."""
        try:
            path, version, key = parse_vault_ref(ref)
        except ValueError as exc:
            raise self._unavailable(name, ref, str(exc), code="bad-reference") from None
        try:
            data = await self._secret(path, version)
        except _Failure as failure:
            raise self._unavailable(
                name, ref, failure.reason, code=failure.code, retryable=failure.retryable
            ) from None
        except hv.VaultError as exc:  # anything else Vault refuses (400, 405, ...)
            raise self._unavailable(
                name, ref, f"Vault answered {_errors(exc)}", code="vault-error"
            ) from None
        if key not in data:
            keys = ", ".join(sorted(map(str, data))) or "none"
            raise self._unavailable(
                name,
                ref,
                f"key {key!r} is missing at {path} (keys there: {keys})",
                code="key-missing",
            )
        value = data[key]
        return value if isinstance(value, str) else json.dumps(value)

    async def decrypt(self, name: str, ref: str) -> str:
        """The plaintext of ``transit:<key>:<ciphertext>`` for the secret called ``name``."""
        _, _, rest = ref.partition(":")
        key, _, ciphertext = rest.partition(":")
        shown = f"transit:{key}:..."
        if not key or not ciphertext:
            raise self._unavailable(
                name,
                shown,
                "a transit reference is transit:<key>:<ciphertext>",
                code="bad-reference",
            )
        try:
            response = await self._authorized(
                f"transit key {key!r}",
                self._client.secrets.transit.decrypt_data,
                name=key,
                ciphertext=ciphertext,
                mount_point=self.config.transit_mount,
            )
        except _Failure as failure:
            raise self._unavailable(
                name, shown, failure.reason, code=failure.code, retryable=failure.retryable
            ) from None
        except hv.InvalidRequest as exc:
            raise self._unavailable(
                name,
                shown,
                f"transit key {key!r} cannot decrypt it: {_errors(exc)}",
                code="decrypt-failed",
            ) from None
        except hv.VaultError as exc:  # e.g. 404: no transit engine at that mount
            raise self._unavailable(
                name,
                shown,
                f"transit at {self.config.transit_mount}/ answered {_errors(exc)}",
                code="vault-error",
            ) from None
        try:
            return base64.b64decode(response["data"]["plaintext"]).decode("utf-8")
        except (KeyError, TypeError, ValueError):
            raise self._unavailable(
                name, shown, "transit returned no UTF-8 plaintext", code="decrypt-failed"
            ) from None

    async def encrypt(self, key: str, plaintext: str) -> str:
        """``transit:<key>:vault:v1:...`` for ``plaintext`` (what ``secrets encrypt`` prints)."""
        what = f"transit key {key!r}"
        try:
            response = await self._authorized(
                what,
                self._client.secrets.transit.encrypt_data,
                name=key,
                plaintext=base64.b64encode(plaintext.encode("utf-8")).decode("ascii"),
                mount_point=self.config.transit_mount,
            )
        except _Failure as failure:
            raise SecretUnavailable(
                f"cannot encrypt with {what}: {failure.reason}",
                details={"reason": failure.code},
                retryable=failure.retryable,
            ) from None
        except hv.VaultError as exc:
            raise SecretUnavailable(f"cannot encrypt with {what}: {_errors(exc)}") from None
        return f"transit:{key}:{response['data']['ciphertext']}"

    async def health(self) -> str:
        """A one-line description of Vault's state from ``sys/health`` (never raises)."""
        try:
            response = await asyncio.to_thread(
                functools.partial(self._client.adapter.get, "/v1/sys/health", raise_exception=False)
            )
        except requests.RequestException as exc:
            return f"unreachable at {self.config.addr} ({type(exc).__name__})"
        body = response.json() if isinstance(response, requests.Response) else response
        if not isinstance(body, dict):
            return "unknown"
        if body.get("sealed"):
            return "sealed"
        if not body.get("initialized", True):
            return "not initialized"
        return "standby" if body.get("standby") else f"active (Vault {body.get('version', '?')})"

    async def keep_token_alive(self, stop: asyncio.Event) -> None:
        """Renew (or log in again) before the token expires, even while no run needs Vault,
        until ``stop`` is set. The daemon runs this beside the controller; failures are logged
        and retried, since runs report their own errors."""
        while not stop.is_set():
            delay = 60.0
            try:
                await self._ensure_token()
                if self._expires is not None:
                    delay = self._expires - self._clock() - self._lease / 3
            except ReconcilerError as exc:
                log.warning(f"Vault token upkeep failed: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(max(delay, 0.5), 300.0))

    def close(self) -> None:
        """Forget cached secrets and close the HTTP session."""
        self._cache.clear()
        self._client.adapter.close()

    # -- secrets ---------------------------------------------------------------------------------

    async def _secret(self, path: str, version: int | None) -> dict[str, Any]:
        cached = self._cache.get((path, version))
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        mount, kv = await self._mount_for(path)
        sub = path[len(mount) :].strip("/")
        if not sub:
            raise _Failure(f"{path} names the mount {mount}, not a secret", code="bad-reference")
        mount_point = mount.rstrip("/")
        try:
            if kv == 2:
                response = await self._authorized(
                    path,
                    self._client.secrets.kv.v2.read_secret_version,
                    path=sub,
                    version=version,
                    mount_point=mount_point,
                    raise_on_deleted_version=True,
                )
                data = (response.get("data") or {}).get("data") or {}
            else:
                if version is not None:
                    raise _Failure(
                        f"?version= needs KV v2, and {mount} is a KV v1 mount", code="bad-reference"
                    )
                response = await self._authorized(
                    path, self._client.secrets.kv.v1.read_secret, path=sub, mount_point=mount_point
                )
                data = response.get("data") or {}
        except hv.InvalidPath as exc:
            raise self._missing(path, version, exc) from None
        lease = float(response.get("lease_duration") or 0)
        ttl = min(self.config.cache_ttl, lease) if lease > 0 else self.config.cache_ttl
        if ttl > 0:
            self._cache[(path, version)] = (self._clock() + ttl, data)
        return data

    @staticmethod
    def _missing(path: str, version: int | None, exc: hv.InvalidPath) -> _Failure:
        body = exc.json if isinstance(exc.json, dict) else {}
        metadata = ((body.get("data") or {}).get("metadata")) or {}
        which = f"version {metadata.get('version', version)}" if metadata else "version"
        if metadata.get("destroyed"):
            return _Failure(f"{which} of {path} was destroyed", code="deleted")
        if metadata.get("deletion_time"):
            return _Failure(
                f"{which} of {path} was deleted at {metadata['deletion_time']}", code="deleted"
            )
        at = f" (version {version})" if version else ""
        return _Failure(f"not found: no secret at {path}{at}", code="not-found")

    async def _mount_for(self, path: str) -> tuple[str, int]:
        known = [m for m in self._mounts if (path + "/").startswith(m)]
        if known:
            mount = max(known, key=len)
            return mount, self._mounts[mount]
        if self.config.kv_version is not None:
            mount = path.split("/", 1)[0] + "/"
            self._mounts[mount] = self.config.kv_version
            return mount, self.config.kv_version
        try:
            response = await self._authorized(
                path, self._client.adapter.get, f"/v1/sys/internal/ui/mounts/{path}"
            )
            info = response["data"]
            mount = str(info["path"])
        except (hv.InvalidPath, hv.InvalidRequest, hv.UnsupportedOperation, KeyError, TypeError):
            mount, info = await self._mount_from_list(path)
        if info.get("type") not in ("kv", "generic"):
            raise _Failure(f"{mount} is a {info.get('type')} mount, not a KV one", code="not-found")
        options = info.get("options") or {}
        version = 2 if str(options.get("version", "1")) == "2" else 1
        self._mounts[mount] = version
        return mount, version

    async def _mount_from_list(self, path: str) -> tuple[str, dict[str, Any]]:
        response = await self._authorized(path, self._client.sys.list_mounted_secrets_engines)
        mounts = response.get("data") or response
        candidates = [m for m in mounts if isinstance(m, str) and (path + "/").startswith(m)]
        if not candidates:
            raise _Failure(f"not found: no secrets engine is mounted at {path}", code="not-found")
        mount = max(candidates, key=len)
        return mount, dict(mounts[mount])

    # -- calls, retries and authentication -------------------------------------------------------

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
        """``fn`` in a worker thread, retrying transient failures with exponential back-off."""
        last: BaseException | None = None
        for attempt in range(self.config.retries + 1):
            try:
                return await asyncio.to_thread(functools.partial(fn, *args, **kw))
            except _TRANSIENT as exc:
                last = exc
                if attempt < self.config.retries:
                    await asyncio.sleep(self.config.backoff * 2**attempt)
        assert last is not None
        raise self._transient(last)

    def _transient(self, exc: BaseException) -> _Failure:
        if isinstance(exc, requests.RequestException):
            return _Failure(
                f"Vault is unreachable at {self.config.addr} ({type(exc).__name__})",
                code="unreachable",
                retryable=True,
            )
        assert isinstance(exc, hv.VaultError)
        text = _errors(exc)
        if isinstance(exc, hv.VaultDown) and "sealed" in text.lower():
            return _Failure("Vault is sealed", code="sealed", retryable=True)
        return _Failure(f"Vault answered {text}", code="vault-error", retryable=True)

    async def _authorized(self, what: str, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
        """``fn`` with a live token; a 403 from an expired token logs in again (once)."""
        await self._ensure_token()
        try:
            return await self._call(fn, *args, **kw)
        except hv.Forbidden:
            if await self._token_alive():
                raise _Failure(
                    f"forbidden: permission denied on {what} (the token's policies do not "
                    "grant it)",
                    code="forbidden",
                ) from None
        if self.config.auth_method == "token":
            raise _Failure("the Vault token expired or was revoked", code="token-expired")
        async with self._auth_lock:
            await self._login()
        try:
            return await self._call(fn, *args, **kw)
        except hv.Forbidden:
            raise _Failure(
                f"forbidden: permission denied on {what} (the token's policies do not grant it)",
                code="forbidden",
            ) from None

    async def _token_alive(self) -> bool:
        try:
            await self._call(self._client.auth.token.lookup_self)
        except hv.Forbidden:
            return False
        return True

    async def _ensure_token(self) -> None:
        async with self._auth_lock:
            if not self._authenticated:
                await self._login()
                return
            if self._expires is None:
                return
            remaining = self._expires - self._clock()
            if remaining > self._lease / 3:
                return
            if self._renewable and remaining > 0:
                try:
                    await self._renew()
                    return
                except hv.VaultError as exc:
                    log.warning(f"Vault token renewal failed ({_errors(exc)})")
            if self.config.auth_method != "token":
                await self._login()
            elif remaining <= 0:
                self._authenticated = False
                raise _Failure("the Vault token expired", code="token-expired")

    async def _renew(self) -> None:
        response = await self._call(
            self._client.auth.token.renew_self, increment=int(self._lease) or None
        )
        auth = response["auth"]
        self._set_lease(float(auth.get("lease_duration") or 0), bool(auth.get("renewable")))
        log.info("Vault token renewed", ttl=int(auth.get("lease_duration") or 0))

    def _set_lease(self, ttl: float, renewable: bool, *, lease: float = 0) -> None:
        """The current token lives ``ttl`` more seconds (0: forever) of a ``lease``-long period."""
        self._expires = None if ttl <= 0 else self._clock() + ttl
        self._lease = lease or ttl
        self._renewable = renewable
        self._authenticated = True

    async def _login(self) -> None:
        method = self.config.auth_method
        self._authenticated = False
        if method == "token":
            assert self.config.token is not None
            self._client.token = self.config.token.get_secret_value()
            try:
                response = await self._call(self._client.auth.token.lookup_self)
            except hv.Forbidden:
                raise _Failure(
                    "the Vault token is invalid or expired (permission denied on lookup-self)",
                    code="token-expired",
                ) from None
            data = response["data"]
            self._set_lease(
                float(data.get("ttl") or 0),
                bool(data.get("renewable")),
                lease=float(data.get("creation_ttl") or 0),
            )
            return
        try:
            if method == "approle":
                assert self.config.role_id is not None
                response = await self._call(
                    self._client.auth.approle.login,
                    role_id=self.config.role_id,
                    secret_id=(
                        self.config.secret_id.get_secret_value() if self.config.secret_id else None
                    ),
                    mount_point=self.config.auth_mount or "approle",
                )
            else:
                jwt = await asyncio.to_thread(self._service_account_token)
                register_secret(jwt)
                response = await self._call(
                    self._client.auth.kubernetes.login,
                    self.config.role,
                    jwt,
                    mount_point=self.config.auth_mount or "kubernetes",
                )
        except (hv.InvalidRequest, hv.Forbidden, hv.Unauthorized, hv.InvalidPath) as exc:
            raise _Failure(
                f"{method} login to Vault failed: {_errors(exc)}", code="login-failed"
            ) from None
        auth = response["auth"]
        register_secret(str(auth.get("client_token") or ""))  # no log line may show it
        self._set_lease(float(auth.get("lease_duration") or 0), bool(auth.get("renewable")))
        log.info(f"logged in to Vault with {method} auth", ttl=int(auth.get("lease_duration") or 0))

    def _service_account_token(self) -> str:
        path = self.config.kubernetes_token_path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _Failure(
                f"cannot read the Kubernetes service-account token at {path}: {exc.strerror}",
                code="login-failed",
            ) from None

    @staticmethod
    def _unavailable(
        name: str, ref: str, reason: str, *, code: str, retryable: bool = False
    ) -> SecretUnavailable:
        return SecretUnavailable(
            f"secret {name!r} ({ref}): {reason}",
            details={"secret": name, "ref": ref, "reason": code},
            retryable=retryable,
        )
