"""Bearer-token authentication of the HTTP API: every mutation needs a bearer token.

Sits in front of every route of :mod:`reconciler.api.app`: mutations (sync, suspend, resume,
cancel) always depend on :meth:`Auth.require_write`; reads depend on :meth:`Auth.require_read`,
which only asks for the token when ``read_auth`` is ``token`` (default: ``none`` when the daemon
listens on loopback, ``token`` otherwise). The token comes from the daemon's settings
(:class:`~reconciler.daemon.settings.DaemonSettings`: ``RECONCILER_API_TOKEN`` or
``--api-token-file``), held as a :class:`~pydantic.SecretStr` and compared in constant time. With
no token configured, a route that needs one is refused with 403 and a message saying how to
configure it — never left open. Failures raise :class:`ApiError`, which the app renders as
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from reconciler.errors import ReconcilerError

HOW_TO_CONFIGURE = (
    "start the daemon with RECONCILER_API_TOKEN set or with --api-token-file pointing to a file "
    "holding the token"
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
    """The token policy of one daemon."""

    token: SecretStr | None
    read_auth: Literal["none", "token"]

    @classmethod
    def of(
        cls, token: SecretStr | None, *, read_auth: Literal["none", "token"] | None, listen: str
    ) -> Auth:
        """The policy for these settings: ``read_auth`` None means none on loopback, token
        elsewhere. An empty token counts as no token."""
        if token is not None and not token.get_secret_value():
            token = None
        mode = read_auth or ("none" if is_loopback(listen) else "token")
        return cls(token=token, read_auth=mode)

    def check(self, credentials: HTTPAuthorizationCredentials | None, *, what: str) -> None:
        """Raise :class:`ApiError` (403 without a configured token, 401 without or with a wrong
        bearer token) unless ``credentials`` carry the token."""
        if self.token is None:
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
                f"{what} needs the API token: send 'Authorization: Bearer <token>'",
                headers=challenge,
            )
        given = credentials.credentials.encode("utf-8")
        expected = self.token.get_secret_value().encode("utf-8")
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "the API token is not valid", headers=challenge)

    async def require_write(self, credentials: Credentials) -> None:
        """Dependency of every mutating route."""
        self.check(credentials, what="this change")

    async def require_read(self, credentials: Credentials) -> None:
        """Dependency of every reading route (a no-op when ``read_auth`` is none)."""
        if self.read_auth == "token":
            self.check(credentials, what="reading the API")
