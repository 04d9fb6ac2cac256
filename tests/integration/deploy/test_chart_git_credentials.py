"""The chart's git token reaches the daemon's real git source.

A bare repository is served over smart HTTP on loopback (``git http-backend`` behind a Basic-auth
check, as a git host does), and :func:`reconciler.sources.open_source` clones it with the
environment the chart gives the pod — the credential helper reading the token from the mounted
Secret file — and fails without it.
"""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
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


@pytest.fixture
def git_host(tmp_path: Path) -> Iterator[str]:
    """URL of a bare repository holding one workflow file, behind token auth."""
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
    handler = type("Host", (_GitHost,), {"root": root})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ops.git"
    server.shutdown()
    server.server_close()


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
