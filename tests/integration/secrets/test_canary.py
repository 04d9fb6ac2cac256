"""The canary: Vault secrets used everywhere a secret can go, found nowhere afterwards, in any form.

A real ``reconciler run`` process (SQLite store, HTTP API on a free port; once at log level info,
the default, and once at debug) resolves four canaries from the in-process Vault and uses them:

* ``token`` in a shell command (stdout, stderr and argv), an HTTP header sent to a loopback
  server that echoes it back, Basic auth built by httpx from a URL's userinfo, and the userinfo
  of a PostgreSQL connection string and of a URL whose servers are down;
* ``pw`` (holding ``@ : / +`` and a space) in a URL path and a query string (which httpx
  percent-encodes, and logs at INFO), form parameters, a JSON body and an ``http.check`` probe;
* ``db`` (holding ``@`` and ``:``) as the password of a Redis and of a NATS URL;
* ``nl`` (holding a newline) in an HTTP header, and ``long`` as an invalid HTTP method (pydantic
  quotes the tail of an invalid input).

Afterwards each canary, and every form it takes when formatted (percent-encoded as ``quote``,
``quote_plus`` and httpx do it, JSON- and repr-escaped, base64), is searched in every line the
daemon logged, every row of every table of the store (and the raw bytes of every file in the data
directory), every API body, ``/metrics`` and the output of the ``reconciler`` CLI: zero hits. The
loopback server, the file the command writes and the journal's failed actions prove the secrets
really were used.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from reconciler.engine.journal import EventKind
from reconciler.secrets.redaction import secret_forms
from reconciler.store import Store
from tests.integration.secrets.conftest import APP_POLICY
from tests.support.daemon import CLI, run_command, without_settings
from tests.support.net import free_port
from tests.support.repos import git, init_repo
from tests.support.vault_server import FakeVault
from tests.support.waiting import until_async

pytestmark = pytest.mark.timeout(150)

CANARY = "canary-5e1d9a77c03b4f28"
CANARY_PW = "canary2-p@ss:w0rd/7f3a+b c"
CANARY_DB = "canary3-r3d@s:9b41e0"
CANARY_NL = "canary4-line1\ncanary4-line2"
CANARY_LONG = "canary5-" + "L" * 50 + "-the-tail-of-it"
CANARIES = {
    "token": CANARY,
    "pw": CANARY_PW,
    "db": CANARY_DB,
    "nl": CANARY_NL,
    "long": CANARY_LONG,
}

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata:
  name: canary
spec:
  interval: 1h
  secrets:
    token: vault:secret/app/canary#token
    pw: vault:secret/app/canary#pw
    db: vault:secret/app/canary#db
    nl: vault:secret/app/canary#nl
    long: vault:secret/app/canary#long
  observe:
    plugin: http.check
    with:
      url: "http://127.0.0.1:{echo_port}/probe/${{{{ secrets.pw }}}}?token=${{{{ secrets.pw }}}}"
  desired: {{ok: false}}
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
      retry: {{attempts: 2, delay: 0s}}  # one retry: its log line is searched too
      next: down
      onError: down
    down:
      action:
        plugin: http.request
        with:
          url: http://reconciler:${{{{ secrets.token }}}}@127.0.0.1:{closed_port}/db
          timeout: 2s
      retry: {{attempts: 2, delay: 0s}}  # one retry: its log line is searched too
      next: path
      onError: path
    path:
      action:
        plugin: http.request
        with:
          url: "http://127.0.0.1:{echo_port}/items/${{{{ secrets.pw }}}}?api_key=${{{{ secrets.pw }}}}"
          params: {{token: "${{{{ secrets.pw }}}}"}}
        as: path
      next: body
      onError: failed
    body:
      action:
        plugin: http.request
        with:
          method: POST
          url: http://127.0.0.1:{echo_port}/json
          json: {{password: "${{{{ secrets.pw }}}}", nested: ["${{{{ secrets.token }}}}"]}}
        as: body
      next: basic
      onError: failed
    basic:
      action:
        plugin: http.request
        with:
          url: http://bob:${{{{ secrets.token }}}}@127.0.0.1:{echo_port}/basic
        as: basic
      next: redis
      onError: failed
    redis:
      action:
        plugin: redis.get
        with:
          url: "redis://:${{{{ secrets.db }}}}@127.0.0.1:{closed_port}/0"
          key: k
          timeout: 2s
      retry: {{attempts: 2, delay: 0s}}  # one retry: its log line is searched too
      next: nats
      onError: nats
    nats:
      action:
        plugin: nats.publish
        with:
          url: "nats://app:${{{{ secrets.db }}}}@127.0.0.1:{closed_port}"
          subject: s
          data: x
          timeout: 2s
      retry: {{attempts: 2, delay: 0s}}  # one retry: its log line is searched too
      next: newline
      onError: newline
    newline:
      action:
        plugin: http.request
        with:
          url: http://127.0.0.1:{echo_port}/nl
          headers: {{X-Token: "${{{{ secrets.nl }}}}"}}
      next: invalid
      onError: invalid
    invalid:
      action:
        plugin: http.request
        with:
          method: "${{{{ secrets.long }}}}"
          url: http://127.0.0.1:{echo_port}/long
      next: failed
      onError: failed
    failed: {{end: failure}}
"""

FAILED_ACTIONS = {  # state -> its error (the NATS client may time out before it is refused)
    "sql": "ConnectionFailed",
    "down": "ConnectionFailed",
    "redis": "ConnectionFailed",
    "nats": "ConnectionFailed or Timeout",
    "newline": "InvalidRequest",
    "invalid": "InvalidRequest",
}


def forms(value: str) -> set[str]:
    """``value`` and what it looks like once formatted: :func:`secret_forms` (percent-encoded,
    escaped, base64) and exactly what httpx puts in a request line's path and query."""
    try:
        sent = httpx.URL(f"http://h/{value}", params={"k": value})
    except httpx.InvalidURL:  # a newline cannot be sent in a URL at all
        return secret_forms(value)
    return secret_forms(value) | {
        sent.raw_path.decode().removeprefix("/").split("?")[0],
        sent.query.decode().removeprefix("k="),
    }


ALL_FORMS = sorted({form for value in CANARIES.values() for form in forms(value)}, key=len)


def leaks(text: str) -> list[str]:
    """The canary forms found in ``text``."""
    return [form for form in ALL_FORMS if form in text]


class EchoServer:
    """Loopback HTTP server answering every GET and POST with what it received (path,
    Authorization header, body), so the canaries come back in the responses the run keeps."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        """First path segment → Authorization header, path and query, and body received."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.answer(b"")

            def do_POST(self) -> None:
                self.answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def answer(self, body: bytes) -> None:
                header = self.headers.get("Authorization", "")
                received = {"youSent": header, "path": self.path, "body": body.decode()}
                outer.seen[self.path.split("/")[1].split("?")[0]] = json.dumps(received)
                data = json.dumps(received).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def degraded() -> bool:
            try:
                response = await client.get(f"/api/v1/workflows/{name}")
            except httpx.TransportError:
                return False  # not listening yet
            return response.status_code == 200 and '"Degraded"' in response.text

        await until_async(degraded, 45, "the canary workflow to fail as planned", interval=0.2)


def start_daemon(
    repo: Path, data_dir: Path, *, port: int, log: IO[bytes], vault: FakeVault, level: str
) -> Any:
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
            level,
            # at debug, the libraries that log request URLs too: their lines must be masked
            *(["--log-levels", "httpx=debug,httpcore=debug"] if level == "debug" else []),
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


def cli_outputs(base: str, run_ids: list[str]) -> dict[str, str]:
    """stdout and stderr of the ``reconciler`` commands that read the daemon, by command."""
    commands = [["status"], ["runs", "-w", "canary"], ["status", "canary"]]
    commands += [["runs", run_id] for run_id in run_ids]
    argvs = {
        " ".join([*command, output]): [*CLI, *command, "--server", base, "--output", output]
        for command in commands
        for output in ("table", "json")
    }

    def one(argv: list[str]) -> str:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, env=without_settings()
        )
        # status exits 1: the canary workflow is Degraded after its failing run; or 3 when the
        # read falls while its back-off retry runs (Progressing), which a loaded machine allows
        expected = {1, 3} if "status" in argv else {0}
        assert done.returncode in expected, (argv, done.stdout, done.stderr)
        return done.stdout + done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(argvs, pool.map(one, argvs.values()), strict=True))


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_a_vault_canary_is_nowhere_after_a_failing_run(
    tmp_path: Path, echo: EchoServer, level: str
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
        vault.put_kv2("secret/app/canary", CANARIES)
        daemon = start_daemon(repo, data_dir, port=listen_port, log=log, vault=vault, level=level)
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
            cli = await asyncio.to_thread(cli_outputs, base, run_ids)
        finally:
            daemon.terminate()
            assert await asyncio.to_thread(daemon.wait, 30) == 0

    # the secrets really went everywhere they were written
    assert used.read_text() == CANARY
    assert json.loads(echo.seen["echo"])["youSent"] == f"Bearer {CANARY}"
    assert json.loads(echo.seen["basic"])["youSent"].startswith("Basic ")
    assert CANARY_PW in urllib.parse.unquote(echo.seen["items"])
    assert CANARY_PW in json.loads(json.loads(echo.seen["json"])["body"])["password"]
    assert "probe" in echo.seen, "the http.check probe ran"
    assert status is not None and status.reason == "RunFailed"
    assert failed_actions.keys() == FAILED_ACTIONS.keys()
    assert all(failed_actions[state] in FAILED_ACTIONS[state] for state in FAILED_ACTIONS)
    assert "InvalidRequest" in status.message

    log_text = log_path.read_text()
    assert "run finished" in log_text, "the daemon logged the run"
    assert (level == "debug") == ("HTTP Request:" in log_text), "httpx is quiet unless named"
    assert [(form, line) for line in log_text.splitlines() for form in leaks(line)] == []

    databases = [p for p in data_dir.rglob("*") if p.is_file() and p.suffix == ".db"]
    assert databases, "the store's SQLite file"
    rows = [(table, row) for db in databases for table, row in table_rows(db)]
    assert any(table for table, _ in rows), "the store has rows to search"
    assert any("***" in row for _, row in rows), "redacted outputs are kept"
    assert [(table, row) for table, row in rows if leaks(row)] == []
    for file in data_dir.rglob("*"):
        if file.is_file():
            raw = file.read_bytes()
            assert [f for f in ALL_FORMS if f.encode() in raw] == [], f"canary found in {file}"

    assert "reconciler" in bodies["/metrics"]
    assert [(path, leaks(body)) for path, body in bodies.items() if leaks(body)] == []
    assert all("***" in bodies[f"/api/v1/runs/{run_id}"] for run_id in run_ids), (
        "the run's journal is served, masked"
    )
    assert any("InvalidRequest" in text for text in cli.values()), "the CLI shows the journal"
    assert [(command, leaks(text)) for command, text in cli.items() if leaks(text)] == []
