"""The chart's git credentials reach the daemon's real git source.

A bare repository is served over smart HTTP on loopback (``git http-backend`` behind a Basic-auth
check, as a git host does), and :func:`reconciler.sources.open_source` clones it with the
environment the chart gives the pod — the credential helper reading the token from the mounted
Secret file, or minting a GitHub App's installation token from a stand-in for GitHub's API that
checks the app's signed JWT — and fails without it.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from deploy_helpers import VALUE_SETS, load_chart, render

from reconciler.errors import FetchFailed
from reconciler.sources import open_source

TOKEN = "glpat-canary-7f3e"
MOUNT = "/etc/reconciler/git"
GIT = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT, check=True, capture_output=True)


class _GitHost(http.server.BaseHTTPRequestHandler):
    """Smart HTTP: Basic auth with the token as password, then git http-backend as CGI."""

    root: Path
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "GIT_HTTP_MAX_REQUEST_BUFFER": "10M",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=True
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().split("\r\n") if line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[str, Any]:
    """Serve ``handler`` on a loopback port in a thread: (base URL, server to shut down)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def serve_repository(tmp_path: Path, *, password: str) -> Iterator[str]:
    """URL of a bare repository holding one workflow file, behind Basic auth with ``password``."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "workflows").mkdir()
    (work / "workflows" / "disk.yaml").write_text("name: disk\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "first")
    root = tmp_path / "srv"
    root.mkdir()
    git(root, "clone", "-q", "--bare", str(work), "ops.git")
    expected = "Basic " + base64.b64encode(f"x-access-token:{password}".encode()).decode()
    handler = type("Host", (_GitHost,), {"root": root, "expected": expected})
    url, server = serve(handler)
    yield f"{url}/ops.git"
    server.shutdown()
    server.server_close()


@pytest.fixture
def git_host(tmp_path: Path) -> Iterator[str]:
    """URL of a bare repository holding one workflow file, behind token auth."""
    yield from serve_repository(tmp_path, password=TOKEN)


@pytest.fixture
def pod_git_env(tmp_path: Path) -> dict[str, str]:
    """The git variables of the chart's pod, with the Secret's volume at a temporary path."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text(TOKEN + "\n")
    with load_chart() as chart:
        rendered = render(chart, VALUE_SETS["token-git-and-api-tokens"])
    assert rendered.mounts[MOUNT]["name"] == "git-credentials"
    return {
        name: item["value"].replace(MOUNT, str(secret))
        for name, item in rendered.env.items()
        if name.startswith("GIT_")
    }


@pytest.fixture
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git configuration (no stored credentials) can help the clone."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("GIT_CONFIG_COUNT", "GIT_ASKPASS", "SSH_ASKPASS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("isolated_git")
async def test_the_daemon_clones_with_the_token_from_the_mounted_secret(
    git_host: str, pod_git_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in pod_git_env.items():
        monkeypatch.setenv(name, value)
    source = open_source(git_host, branch="main", path="workflows", data_dir=tmp_path / "data")

    revision = await source.fetch()

    assert revision is not None
    assert {name: data.decode() for name, data in revision.files.items()} == {
        "disk.yaml": "name: disk\n"
    }
    # The token stays in the Secret's file: not in the clone's remote URL or config.
    configs = [p.read_text() for p in (tmp_path / "data").rglob("config") if p.is_file()]
    assert configs and not any(TOKEN in text for text in configs)


@pytest.mark.usefixtures("isolated_git")
async def test_without_the_chart_credentials_the_host_refuses_the_clone(
    git_host: str, tmp_path: Path
) -> None:
    source = open_source(git_host, branch="main", data_dir=tmp_path / "data")
    with pytest.raises(FetchFailed):
        await source.fetch()


APP_ID = "123456"
INSTALLATION = "7890123"
INSTALLATION_TOKEN = "ghs_canaryInstallationToken42"


class _GitHubApi(http.server.BaseHTTPRequestHandler):
    """GitHub's token endpoint: a valid RS256 JWT of the app buys an installation token."""

    public_key: Any
    minted: list[dict[str, Any]]
    refuse = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        claims: dict[str, Any] | None = None
        try:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            claims = jwt.decode(bearer, self.public_key, algorithms=["RS256"], issuer=APP_ID)
        except jwt.PyJWTError:
            pass
        path = f"/app/installations/{INSTALLATION}/access_tokens"
        if self.refuse or claims is None or self.path != path:
            self._answer(401, {"message": "A JSON web token could not be decoded"})
            return
        self.minted.append({"claims": claims, "body": body})
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._answer(201, {"token": INSTALLATION_TOKEN, "expires_at": expires})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class GitHubStandIn:
    """The API's stand-in and what it saw: the app's key pair, the tokens it minted."""

    def __init__(self, tmp_path: Path) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self.minted: list[dict[str, Any]] = []
        self.handler = type(
            "Api", (_GitHubApi,), {"public_key": key.public_key(), "minted": self.minted}
        )
        self.url, self._server = serve(self.handler)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubStandIn]:
    api = GitHubStandIn(tmp_path)
    yield api
    api.close()


@pytest.fixture
def app_repository(tmp_path: Path) -> Iterator[str]:
    """The repository, accepting only the installation token as password."""
    yield from serve_repository(tmp_path, password=INSTALLATION_TOKEN)


def github_app_pod_env(tmp_path: Path, github: GitHubStandIn) -> dict[str, str]:
    """The variables of the chart's pod with ``githubApp`` credentials pointed at the stand-in,
    the Secret's volume at a temporary path, and the image's interpreter first on PATH."""
    secret = tmp_path / "app-secret"
    secret.mkdir()
    (secret / "private-key.pem").write_text(github.private_pem)
    with load_chart() as chart:
        values = VALUE_SETS["github-app-git"]
        credentials = values["git"]["credentials"]
        rendered = render(
            chart,
            {
                **values,
                "git": {
                    "credentials": {
                        **credentials,
                        "githubApp": {**credentials["githubApp"], "apiUrl": github.url},
                    }
                },
            },
        )
    assert rendered.mounts[MOUNT]["name"] == "git-credentials"
    env = {
        name: item["value"].replace(MOUNT, str(secret))
        for name, item in rendered.env.items()
        if name.startswith(("GIT_", "RECONCILER_GITHUB_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return env


@pytest.mark.usefixtures("isolated_git")
async def test_the_daemon_clones_as_a_github_app_with_a_token_it_mints_once(
    app_repository: str,
    github: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in github_app_pod_env(tmp_path, github).items():
        monkeypatch.setenv(name, value)
    source = open_source(app_repository, branch="main", path="workflows", data_dir=tmp_path / "d")

    revision = await source.fetch()
    await source.fetch()  # the next fetch reuses the cached token

    assert revision is not None and set(revision.files) == {"disk.yaml"}
    assert len(github.minted) == 1
    minted = github.minted[0]
    assert minted["claims"]["iss"] == APP_ID
    assert minted["claims"]["exp"] - minted["claims"]["iat"] <= 600  # GitHub's limit
    assert minted["body"] == {"permissions": {"contents": "read"}}
    configs = [p.read_text() for p in (tmp_path / "d").rglob("config") if p.is_file()]
    assert configs and not any(INSTALLATION_TOKEN in text for text in configs)
    # the token is cached beside the clone, in the data directory, not in $HOME
    assert [p.name for p in (tmp_path / "d").rglob("github-app-*.json")] == [
        f"github-app-{APP_ID}-{INSTALLATION}.json"
    ]
    assert not (tmp_path / ".cache").exists()


@pytest.mark.usefixtures("isolated_git")
async def test_a_github_app_the_api_refuses_fails_the_fetch_naming_the_app(
    app_repository: str,
    github: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    github.handler.refuse = True
    for name, value in github_app_pod_env(tmp_path, github).items():
        monkeypatch.setenv(name, value)
    source = open_source(app_repository, branch="main", data_dir=tmp_path / "d")

    with pytest.raises(FetchFailed) as failure:
        await source.fetch()

    message = str(failure.value)
    assert f"GitHub App {APP_ID} (installation {INSTALLATION})" in message
    assert "answered 401" in message and "could not be decoded" in message
    assert "BEGIN RSA PRIVATE KEY" not in message and "eyJ" not in message
