"""The variables the chart's ``caBundle`` sets are read by the clients the daemon runs.

The chart points ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE`` and ``GIT_SSL_CAINFO`` at the
operator's bundle (test_chart_exposure.py checks the rendering); here a loopback HTTPS server
with a certificate signed by a private CA shows that httpx (the client of the ``http.*``
plugins, notifications and previews), hvac (Vault's client, on requests) and git, run with the
daemon's own git environment, refuse it without the variable and trust it with it. ``PGSSLROOTCERT`` is libpq's own variable and has no test here:
the PostgreSQL server of the test machine does not serve TLS.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import hvac
import hvac.exceptions
import pytest
import requests

from reconciler.sources.git import git_environment


@dataclass
class TlsServer:
    url: str
    ca_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _private_ca_and_server_certificate(directory: Path) -> None:
    """ca.pem (a private CA) and server.pem / server.key (127.0.0.1, signed by that CA)."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=Test Private CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", encoding="utf-8"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip


class _NotFound(BaseHTTPRequestHandler):
    """Answers every GET with 404: enough for a client to get past the TLS handshake."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    _private_ca_and_server_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsServer(f"https://127.0.0.1:{server.server_address[1]}", tmp_path / "ca.pem")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_httpx_trusts_a_private_ca_only_through_ssl_cert_file(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with httpx.Client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(tls_server.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_file))
    with httpx.Client() as client:
        assert client.get(tls_server.url).status_code == 404


def test_hvac_trusts_a_private_ca_only_through_requests_ca_bundle(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's Vault client and the vault.* plugins build hvac.Client(verify=True) when no
    # CA file of their own is configured.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=tls_server.url, verify=True).sys.is_initialized()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_server.ca_file))
    with pytest.raises(hvac.exceptions.InvalidPath):  # the fake server's 404: TLS went through
        hvac.Client(url=tls_server.url, verify=True).sys.is_initialized()


def _ls_remote(url: str, *, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``git ls-remote`` as the daemon runs git: its environment plus the daemon's overrides."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GIT_SSL_")}
    env = {**inherited, **extra, **git_environment()}
    return subprocess.run(
        ["git", "ls-remote", f"{url}/ops/maintenance.git"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_git_under_the_daemons_environment_trusts_a_private_ca_through_git_ssl_cainfo(
    tls_server: TlsServer,
) -> None:
    refused = _ls_remote(tls_server.url, extra={})
    assert refused.returncode != 0
    assert "certificate" in refused.stderr
    trusted = _ls_remote(tls_server.url, extra={"GIT_SSL_CAINFO": str(tls_server.ca_file)})
    assert trusted.returncode != 0  # the fake server has no repository...
    assert "certificate" not in trusted.stderr  # ...but the handshake succeeded
    assert "not found" in trusted.stderr
