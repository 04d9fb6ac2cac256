"""Bearer-token authentication of the HTTP API: every mutation needs a token of role
``operate`` or ``admin``, and records its name.

Sits in front of every route of :mod:`reconciler.api.app`: mutations (sync, suspend, resume,
cancel) always depend on :meth:`Auth.require_write`; reads depend on :meth:`Auth.require_read`,
which only asks for a token when ``read_auth`` is ``token`` (default: ``none`` when the daemon
listens on loopback, ``token`` otherwise). The tokens come from the daemon's settings
(:class:`~reconciler.daemon.settings.DaemonSettings`): ``RECONCILER_API_TOKEN`` or
``--api-token-file`` (an ``admin`` token named ``default``) and the named tokens of
``--api-tokens-file`` (:mod:`reconciler.api.tokens`: hashes only, roles ``read``, ``operate``,
``admin``), compared in constant time. With no token configured, a route that needs one is
refused with 403 and a message saying how to configure it — never left open; a token whose
role is too low gets 403 ``forbidden`` naming the token and the role needed. Failures raise
:class:`ApiError`, which the app renders as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from reconciler.api.tokens import (
    ROLES,
    NamedToken,
    Role,
    allows,
    check_unique,
    default_token,
    identify,
    load_tokens,
)
from reconciler.errors import ReconcilerError

HOW_TO_CONFIGURE = (
    "start the daemon with RECONCILER_API_TOKEN set, with --api-token-file pointing to a file "
    "holding the token, or with --api-tokens-file listing named tokens"
)


class ApiError(ReconcilerError):
    """An API request that cannot be served: rendered as ``{"error": {"code", "message"}}``
    with HTTP ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def is_loopback(listen: str) -> bool:
    """Whether ``host:port`` only accepts connections from this machine."""
    host = listen.rsplit(":", 1)[0].strip("[]") if ":" in listen else listen
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_bearer = HTTPBearer(
    auto_error=False,
    description="The daemon's API token (RECONCILER_API_TOKEN or --api-token-file).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Auth:
    """The token policy of one daemon: the accepted tokens (named, with roles) and whether
    reading needs one."""

    tokens: tuple[NamedToken, ...]
    read_auth: Literal["none", "token"]

    @classmethod
    def of(
        cls,
        token: SecretStr | None,
        *,
        read_auth: Literal["none", "token"] | None,
        listen: str,
        tokens_file: Path | None = None,
    ) -> Auth:
        """The policy for these settings: ``read_auth`` None means none on loopback, token
        elsewhere. An empty token counts as no token; ``token`` is an ``admin`` token named
        ``default`` beside the entries of ``tokens_file`` (:class:`ConfigError` when the file
        is bad or also names an entry ``default``)."""
        entries = load_tokens(tokens_file) if tokens_file is not None else []
        if token is not None and token.get_secret_value():
            entries = check_unique([default_token(token.get_secret_value()), *entries])
        mode = read_auth or ("none" if is_loopback(listen) else "token")
        return cls(tokens=tuple(entries), read_auth=mode)

    def check(
        self, credentials: HTTPAuthorizationCredentials | None, *, what: str, needs: Role
    ) -> NamedToken:
        """The token entry ``credentials`` carry; raises :class:`ApiError`: 403 without any
        configured token, 401 without or with an unknown bearer token, 403 ``forbidden`` when
        its role is below ``needs``."""
        if not self.tokens:
            raise ApiError(
                403,
                "no_token_configured",
                f"{what} is disabled because the daemon has no API token: {HOW_TO_CONFIGURE}",
            )
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                f"{what} needs an API token: send 'Authorization: Bearer <token>'",
                headers=challenge,
            )
        found = identify(self.tokens, credentials.credentials)
        if found is None:
            raise ApiError(401, "unauthorized", "the API token is not valid", headers=challenge)
        if not allows(found.role, needs):
            wanted = " or ".join(r for r in ROLES if allows(r, needs))
            raise ApiError(
                403,
                "forbidden",
                f"token {found.name!r} has role {found.role}; {what} needs role {wanted}",
            )
        return found

    async def require_write(self, request: Request, credentials: Credentials) -> None:
        """Dependency of every mutating route (sync, suspend, resume, cancel): needs role
        ``operate`` (or ``admin``); the token's name is left in ``request.state.token_name``
        for the route to record (:func:`requested_by`)."""
        found = self.check(credentials, what="this change", needs="operate")
        request.state.token_name = found.name

    async def require_admin(self, request: Request, credentials: Credentials) -> None:
        """Dependency of a route only ``admin`` tokens may use (none yet)."""
        found = self.check(credentials, what="this request", needs="admin")
        request.state.token_name = found.name

    async def require_read(self, request: Request, credentials: Credentials) -> None:
        """Dependency of every reading route (a no-op when ``read_auth`` is none): any valid
        token reads."""
        if self.read_auth == "token":
            found = self.check(credentials, what="reading the API", needs="read")
            request.state.token_name = found.name


def requested_by(request: Request) -> str:
    """The name of the token that authorised ``request`` (set by :meth:`Auth.require_write`)."""
    name = getattr(request.state, "token_name", None)
    if not isinstance(name, str):  # a mutating route without require_write: a bug
        raise ApiError(500, "internal", "this route checked no token")
    return name
