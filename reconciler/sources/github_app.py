"""GitHub App credentials for git: an installation token, minted when git asks for one.

Called by: git, as a credential helper. The Helm chart (``git.credentials.type: githubApp``)
configures ``credential.helper`` as ``!python -m reconciler.sources.github_app`` and sets the
``RECONCILER_GITHUB_APP_*`` variables below; every git command of the daemon and of the one-shot
commands then authenticates as the app's installation, with nothing long-lived in a URL, the
environment or the log. Anyone can run the same helper outside the chart.

A GitHub App authenticates in two steps: a JSON Web Token signed with the app's private key
(RS256, valid ten minutes) buys an *installation token* from GitHub's API, and that token (valid
one hour) is the password git sends. The helper keeps the installation token in a private cache
file (mode 0600) and mints a new one when less than five minutes of it remain, or when git
reports that the host refused it (``erase``). The token asked for is read-only on the
repository's contents.

What a caller may rely on:

- git's credential protocol: ``get`` prints ``username=x-access-token`` and ``password=…``
  for a request over the API's scheme (``https``) to the app's git host (``github.com`` for ``api.github.com``, the API's
  own host for GitHub Enterprise Server) and nothing for any other host; ``erase`` drops the
  cached token; ``store`` does nothing.
- A failure is a :class:`~reconciler.errors.CredentialsUnavailable` whose message names the app,
  the installation and the API or file at fault, never the key, the JWT or a token; the helper
  prints it on standard error, where git shows it, and exits 1.

Settings (environment):

``RECONCILER_GITHUB_APP_ID``               the app's id (or its client id)
``RECONCILER_GITHUB_APP_INSTALLATION_ID``  the installation on the organisation or account
``RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE`` the app's private key (PEM), e.g. a mounted Secret
``RECONCILER_GITHUB_API_URL``              default ``https://api.github.com``;
                                           GitHub Enterprise Server: ``https://HOST/api/v3``
``RECONCILER_GITHUB_APP_CACHE_DIR``        the daemon's git sets it to a directory inside
                                           its clone, in the data directory no workflow can
                                           read; elsewhere ``$XDG_CACHE_HOME/reconciler`` or
                                           ``~/.cache/reconciler``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import CredentialsUnavailable

CACHE_DIR_VARIABLE = "RECONCILER_GITHUB_APP_CACHE_DIR"

USERNAME = "x-access-token"
"""The user name GitHub expects beside an installation token."""

REFRESH_BEFORE = timedelta(minutes=5)
"""A cached token with less than this left is replaced: a fetch may take a while."""

JWT_LIFETIME = timedelta(minutes=9)
"""Below GitHub's ten-minute limit, leaving room for a clock a little ahead of GitHub's."""

CLOCK_SKEW = timedelta(seconds=60)
"""The JWT's ``iat`` is set this far in the past, as GitHub advises, for a clock behind its own."""

TIMEOUT_SECONDS = 20.0


class GitHubApp(BaseModel):
    """Which app and installation to authenticate as, and where GitHub's API is.

    Each field is read from the environment variable its alias names.
    """

    model_config = ConfigDict(frozen=True)

    app_id: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9._-]+$", validation_alias="RECONCILER_GITHUB_APP_ID"
    )
    installation_id: str = Field(
        min_length=1, pattern=r"^[0-9]+$", validation_alias="RECONCILER_GITHUB_APP_INSTALLATION_ID"
    )
    private_key_file: Path = Field(validation_alias="RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE")
    api_url: str = Field(
        "https://api.github.com",
        pattern=r"^https?://\S+$",
        validation_alias="RECONCILER_GITHUB_API_URL",
    )
    cache_dir: Path = Field(validation_alias=CACHE_DIR_VARIABLE)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GitHubApp:
        """The settings of the ``RECONCILER_GITHUB_*`` variables (raises CredentialsUnavailable)."""
        values = {name: value for name, value in environ.items() if value}
        home = Path(environ.get("HOME") or Path.home())
        values.setdefault(
            CACHE_DIR_VARIABLE,
            str(Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "reconciler"),
        )
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = ", ".join(sorted({str(error["loc"][0]) for error in exc.errors()}))
            raise CredentialsUnavailable(
                f"GitHub App credentials for git: missing or invalid: {names}"
            ) from None

    @property
    def name(self) -> str:
        """How messages name the app: ``GitHub App 123 (installation 456)``."""
        return f"GitHub App {self.app_id} (installation {self.installation_id})"

    @property
    def git_host(self) -> str:
        """The host git fetches from with this app's tokens, without a port."""
        host = urlsplit(self.api_url).hostname or ""
        return "github.com" if host == "api.github.com" else host

    @property
    def cache_file(self) -> Path:
        return self.cache_dir / f"github-app-{self.app_id}-{self.installation_id}.json"


class InstallationToken(BaseModel):
    """An installation token and when it stops working, as GitHub's API answers them."""

    token: str = Field(min_length=1)
    expires_at: datetime

    def fresh(self, now: datetime) -> bool:
        return self.expires_at - now > REFRESH_BEFORE


def app_jwt(app: GitHubApp, *, now: datetime) -> str:
    """The JSON Web Token that authenticates as the app itself (RS256 with its private key)."""
    import jwt  # PyJWT (and cryptography) only where a GitHub App is configured

    try:
        key = app.private_key_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise CredentialsUnavailable(
            f"{app.name}: cannot read the private key file {app.private_key_file}: {reason}"
        ) from None
    claims = {
        "iat": int((now - CLOCK_SKEW).timestamp()),
        "exp": int((now + JWT_LIFETIME).timestamp()),
        "iss": app.app_id,
    }
    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise CredentialsUnavailable(
            f"{app.name}: the private key file {app.private_key_file} is not a PEM RSA "
            "private key (download a new one from the app's settings)"
        ) from None


def mint(app: GitHubApp, *, now: datetime) -> InstallationToken:
    """A new installation token, read-only on contents, from GitHub's API."""
    import httpx

    url = f"{app.api_url.rstrip('/')}/app/installations/{app.installation_id}/access_tokens"
    headers = {
        "Authorization": f"Bearer {app_jwt(app, now=now)}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    try:
        response = httpx.post(
            url,
            headers=headers,
            json={"permissions": {"contents": "read"}},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise CredentialsUnavailable(
            f"{app.name}: GitHub's API at {app.api_url} could not be reached ({type(exc).__name__})"
        ) from None
    if response.status_code != 201:
        raise CredentialsUnavailable(
            f"{app.name}: GitHub's API at {app.api_url} answered {response.status_code} "
            f"to the token request: {_github_message(response.text)}"
        )
    try:
        return InstallationToken.model_validate_json(response.content)
    except ValidationError:
        raise CredentialsUnavailable(
            f"{app.name}: GitHub's API at {app.api_url} answered without a token and its expiry"
        ) from None


def _github_message(body: str) -> str:
    """GitHub's own explanation of a refusal (``message``), cut short; never the request."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message)[:200] if message else "no explanation given"


def cached(app: GitHubApp, *, now: datetime) -> InstallationToken | None:
    """The cached token if it is still fresh; a missing or unreadable cache is simply empty."""
    try:
        token = InstallationToken.model_validate_json(app.cache_file.read_bytes())
    except (OSError, ValidationError):
        return None
    return token if token.fresh(now) else None


def remember(app: GitHubApp, token: InstallationToken) -> None:
    """Keep ``token`` in the cache file, readable by this user only (best effort)."""
    try:
        app.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(dir=app.cache_dir, prefix=".github-app-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token.model_dump_json())
        os.replace(temporary, app.cache_file)
    except OSError:
        return  # a read-only home only costs a new token next time


def forget(app: GitHubApp) -> None:
    app.cache_file.unlink(missing_ok=True)


def installation_token(app: GitHubApp, *, now: datetime | None = None) -> str:
    """A token with at least five minutes left: the cached one, or a new one (then cached)."""
    now = now or datetime.now(UTC)
    token = cached(app, now=now)
    if token is None:
        token = mint(app, now=now)
        remember(app, token)
    return token.token


def read_request(stream: TextIO) -> dict[str, str]:
    """git's ``key=value`` lines up to the first empty line."""
    request: dict[str, str] = {}
    for line in stream:
        line = line.rstrip("\n")
        if not line:
            break
        key, _, value = line.partition("=")
        request[key] = value
    return request


def answer(operation: str, request: Mapping[str, str], *, app: GitHubApp) -> str:
    """What the helper prints for git's ``operation`` on ``request`` (empty: no opinion).

    Only a request for the app's git host, over the API's own scheme (``https``), is answered.
    """
    host = urlsplit(f"//{request.get('host', '')}").hostname
    if request.get("protocol") != urlsplit(app.api_url).scheme or host != app.git_host:
        return ""
    if operation == "erase":
        forget(app)
        return ""
    if operation != "get":
        return ""
    return f"username={USERNAME}\npassword={installation_token(app)}\n"


def main(argv: list[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """The credential helper's entry point: ``python -m reconciler.sources.github_app get``."""
    args = sys.argv[1:] if argv is None else argv
    operation = args[-1] if args else ""
    try:
        app = GitHubApp.from_environment(os.environ if environ is None else environ)
        sys.stdout.write(answer(operation, read_request(sys.stdin), app=app))
    except CredentialsUnavailable as exc:
        print(f"error: reconciler: {exc}", file=sys.stderr)  # git keeps error: lines
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
