"""The canary: one Vault secret used everywhere a secret can go, found nowhere afterwards.

A real ``reconciler run`` process (debug logging, SQLite store, HTTP API on a free port) resolves
``vault:secret/app/canary#token`` from the in-process Vault and uses it in a shell command (stdout,
stderr and argv), in an HTTP header sent to a loopback server that echoes it back, and in the
userinfo of a PostgreSQL connection string and of a URL whose servers are down (failing
connection strings). Afterwards the canary value is searched in every line the daemon logged,
every row of every table of the store (and the raw bytes of every file in the data directory),
every API body and ``/metrics``: zero hits. The loopback server, the file the command writes and
the journal's two ConnectionFailed actions prove the secret really was used.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from reconciler.engine.journal import EventKind
from reconciler.store import Store
from tests.integration.secrets.conftest import APP_POLICY
from tests.support.daemon import run_command
from tests.support.net import free_port
from tests.support.repos import git, init_repo
from tests.support.vault_server import FakeVault

pytestmark = pytest.mark.timeout(90)

CANARY = "canary-5e1d9a77c03b4f28"

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: canary
spec:
  interval: 1h
  secrets:
    token: vault:secret/app/canary#token
  start: shell
  states:
    shell:
      action:
        plugin: shell.run
        with:
          shell: true
          command: >-
            printf '%s' "${{{{ secrets.token }}}}" > {used};
            echo "stdout has ${{{{ secrets.token }}}}";
            echo "stderr has ${{{{ secrets.token }}}}" >&2
        as: shell
      next: header
      onError: failed
    header:
      action:
        plugin: http.request
        with:
          url: http://127.0.0.1:{echo_port}/echo
          headers: {{Authorization: "Bearer ${{{{ secrets.token }}}}"}}
        as: echo
      next: sql
      onError: failed
    sql:
      action:
        plugin: sql.query
        with:
          dsn: postgresql://reconciler:${{{{ secrets.token }}}}@127.0.0.1:{closed_port}/app
          query: SELECT 1
          timeout: 2s
      next: down
      onError: down
    down:
      action:
        plugin: http.request
        with:
          url: http://reconciler:${{{{ secrets.token }}}}@127.0.0.1:{closed_port}/db
          timeout: 2s
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""


class EchoServer:
    """Loopback HTTP server answering every GET with the Authorization header it received."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                header = self.headers.get("Authorization", "")
                outer.seen.append(header)
                body = json.dumps({"youSent": header}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


async def wait_until_degraded(base: str, name: str) -> None:
    """Poll the daemon's API until the workflow's status is Degraded."""
    deadline = time.monotonic() + 45
    body = ""
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.get(f"/api/v1/workflows/{name}")
                body = response.text
                if response.status_code == 200 and '"Degraded"' in body:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            await asyncio.sleep(0.2)
    raise AssertionError(f"the canary workflow never failed as planned: {body}")


def start_daemon(repo: Path, data_dir: Path, *, port: int, log: IO[bytes], vault: FakeVault) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "VAULT_"))}
    env |= {
        "RECONCILER_VAULT_ADDR": vault.addr,
        "RECONCILER_VAULT_TOKEN": vault.create_token(APP_POLICY),
    }
    return subprocess.Popen(
        run_command(
            repo,
            data_dir,
            "--listen",
            f"127.0.0.1:{port}",
            "--log-level",
            "debug",
            "--poll-interval",
            "500ms",
            "--grace-period",
            "5s",
        ),
        cwd=repo.parent,
        stdout=log,
        stderr=log,
        env=env,
    )


def table_rows(database: Path) -> Iterator[tuple[str, str]]:
    """(table, row as text) for every row of every table of a SQLite database."""
    connection = sqlite3.connect(database)
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                yield table, repr(row)
    finally:
        connection.close()


def api_bodies(base: str, run_ids: list[str]) -> dict[str, str]:
    paths = ["/", "/static/app.js", "/api/v1/workflows", "/api/v1/workflows/canary"]
    paths += ["/api/v1/workflows/canary/graph?format=json", "/api/v1/runs", "/metrics"]
    paths += [f"/api/v1/runs/{run_id}" for run_id in run_ids]
    out: dict[str, str] = {}
    with httpx.Client(base_url=base, timeout=10) as client:
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text)
            out[path] = response.text
    return out


async def test_a_vault_canary_is_nowhere_after_a_failing_run(
    tmp_path: Path, echo: EchoServer
) -> None:
    repo, data_dir, used = tmp_path / "repo", tmp_path / "data", tmp_path / "used-by-shell"
    init_repo(repo)
    (repo / "canary.yaml").write_text(
        WORKFLOW.format(used=used, echo_port=echo.port, closed_port=free_port())
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "canary")
    listen_port = free_port()
    log_path = tmp_path / "daemon.log"

    with FakeVault() as vault, log_path.open("wb") as log:
        vault.put_kv2("secret/app/canary", {"token": CANARY})
        daemon = start_daemon(repo, data_dir, port=listen_port, log=log, vault=vault)
        try:
            base = f"http://127.0.0.1:{listen_port}"
            await wait_until_degraded(base, "canary")
            store = await Store.open(None, data_dir=data_dir)
            try:
                run_ids = [run.id for run in await store.list_runs("canary")]
                status = await store.get_status("canary")
                failed_actions = {
                    entry.state: entry.outcome
                    for entry in await store.entries(run_ids[0])
                    if entry.kind is EventKind.ACTION and entry.outcome != "success"
                }
            finally:
                await store.close()
            bodies = await asyncio.to_thread(api_bodies, base, run_ids)
        finally:
            daemon.terminate()
            assert await asyncio.to_thread(daemon.wait, 30) == 0

    # the secret really went everywhere it was written
    assert used.read_text() == CANARY
    assert echo.seen == [f"Bearer {CANARY}"]
    assert status is not None and status.reason == "RunFailed"
    assert failed_actions == {"sql": "ConnectionFailed", "down": "ConnectionFailed"}
    assert "ConnectionFailed" in status.message

    log_lines = log_path.read_text().splitlines()
    assert any("run finished" in line for line in log_lines), "the daemon logged the run"
    assert [line for line in log_lines if CANARY in line] == []

    databases = [p for p in data_dir.rglob("*") if p.is_file() and p.suffix == ".db"]
    assert databases, "the store's SQLite file"
    rows = [(table, row) for db in databases for table, row in table_rows(db)]
    assert any(table for table, _ in rows), "the store has rows to search"
    assert any("***" in row for _, row in rows), "redacted outputs are kept"
    assert [(table, row) for table, row in rows if CANARY in row] == []
    for file in data_dir.rglob("*"):
        if file.is_file():
            assert CANARY.encode() not in file.read_bytes(), f"canary found in {file}"

    assert "reconciler" in bodies["/metrics"]
    assert [path for path, body in bodies.items() if CANARY in body] == []
    assert all("***" in bodies[f"/api/v1/runs/{run_id}"] for run_id in run_ids), (
        "the run's journal is served, masked"
    )
