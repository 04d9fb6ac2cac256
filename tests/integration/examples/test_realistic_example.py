"""examples/realistic converges from scratch under the daemon, then hand-made drift is healed.

Drift made by hand: the application's role is dropped (its database handed to ``postgres``) and
the JetStream stream's max age is cut; both come back on the next interval. Then the password
in Vault is made 31 days old and the rotation workflow replaces it on its own schedule.

The daemon is the real :class:`~reconciler.daemon.controller.Controller` on a git repository
holding a copy of the example, with its SQLite store; the servers are real: PostgreSQL
(127.0.0.1:5432), NATS JetStream (127.0.0.1:4222), Redis (127.0.0.1:6379), the in-process Vault
API (``tests/support/vault_server.py``, reached through hvac by both the secret resolver and the
``vault.*`` plugins) and a tiny fleet of web hosts served here. The copy differs from the
example only where a shared test machine needs it: unique names (role, database, stream,
subjects, keys, Vault paths), 1-second intervals, and the web hosts' addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
import redis.asyncio as aioredis

from reconciler.daemon.controller import Controller
from reconciler.daemon.settings import DaemonSettings
from reconciler.plugin import PluginRegistry
from reconciler.secrets.resolver import DefaultResolver
from reconciler.secrets.vault import VaultClient, VaultConfig
from reconciler.sources import open_source
from reconciler.store import Health, Store
from tests.conftest import require_server
from tests.support.controller import eventually
from tests.support.repos import git
from tests.support.vault_server import FakeVault
from tests.support.waiting import until_async

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "realistic"
PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
WORKFLOWS = ("db-password-rotation", "app-database", "events-stream", "web-rollout", "cache-warmup")


# ------------------------------------------------------------------------------ a web fleet


class Fleet:
    """Hosts ``/h1``..``/h3`` (POST /deploy, GET /healthz) behind a balancer ``/lb``."""

    def __init__(self) -> None:
        self.versions = {"h1": "1.0", "h2": "1.0", "h3": "1.0"}
        self.deploys = 0
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                host, _, what = self.path.strip("/").partition("/")
                if host == "lb":
                    served = set(fleet.versions.values())
                    version = served.pop() if len(served) == 1 else "mixed"
                    self._send(200, f"version {version}" if what == "version" else "ok")
                elif host in fleet.versions:
                    self._send(200, f"ok {fleet.versions[host]}")
                else:
                    self._send(404, "no such host")

            def do_POST(self) -> None:
                host, _, _what = self.path.strip("/").partition("/")
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fleet.versions[host] = body["version"]
                fleet.deploys += 1
                self._send(202, "deploying")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------- the copy


def patch(repo: Path, name: str, replacements: dict[str, str]) -> None:
    """Edit the copy as text (each ``old`` line must be there), with a 1-second interval.

    Text, not a YAML round trip: PyYAML would turn the ``on:`` keys into booleans.
    """
    path = repo / f"{name}.yaml"
    text = re.sub(r"(?m)^  interval: .*$", "  interval: 1s", path.read_text())
    for old, replacement in replacements.items():
        assert old in text, f"{name}.yaml no longer contains {old!r}"
        text = text.replace(old, replacement)
    path.write_text(text)


def make_repository(root: Path, u: str, fleet: Fleet) -> Path:
    repo = root / "repo"
    shutil.copytree(EXAMPLE, repo)
    (repo / "README.md").unlink()
    patch(
        repo,
        "db-password-rotation",
        {
            "path: realistic/app-db": f"path: realistic/app-db-{u}",
            "user: app_owner": f"user: app_{u}",
        },
    )
    patch(
        repo,
        "app-database",
        {
            "owner: app_owner": f"owner: app_{u}",
            "database: app\n": f"database: app_{u}\n",
            "vault:secret/realistic/postgres-admin#dsn": (
                f"vault:secret/realistic/postgres-admin-{u}#dsn"
            ),
            "vault:secret/realistic/app-db#password": f"vault:secret/realistic/app-db-{u}#password",
        },
    )
    patch(
        repo,
        "events-stream",
        {"name: REALISTIC_EVENTS": f"name: REAL_{u.upper()}", "[events.>]": f"[ev{u}.>]"},
    )
    hosts = "".join(f"\n      - {fleet.url}/h{i}" for i in (1, 2, 3))
    patch(
        repo,
        "web-rollout",
        {
            "balancer: http://127.0.0.1:18080": f"balancer: {fleet.url}/lb",
            "      - http://127.0.0.1:18081\n": "",
            "      - http://127.0.0.1:18082\n": "",
            "      - http://127.0.0.1:18083\n": "",
            "    hosts:": "    hosts:" + hosts,
        },
    )
    patch(
        repo,
        "cache-warmup",
        {
            "subjects: events.cache": f"subjects: ev{u}.cache",
            "marker: realistic:cache-warm": f"marker: realistic:{u}:warm",
        },
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the realistic example")
    return repo


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture
def servers() -> None:
    require_server("127.0.0.1", 5432, "PostgreSQL")
    require_server("127.0.0.1", 4222, "NATS")
    require_server("127.0.0.1", 6379, "Redis")


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    fleet = Fleet()
    yield fleet
    fleet.stop()


@pytest.fixture
def vault(vault: FakeVault, monkeypatch: pytest.MonkeyPatch) -> FakeVault:
    # the vault.* plugins take the daemon's Vault settings from the environment
    monkeypatch.setenv("RECONCILER_VAULT_ADDR", vault.addr)
    monkeypatch.setenv("RECONCILER_VAULT_TOKEN", vault.root_token)
    return vault


@pytest.fixture
async def cleanup(unique: str) -> AsyncIterator[None]:
    yield
    role = f"app_{unique}"
    async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as conn:
        await conn.execute(f"drop database if exists app_{unique} with (force)")
        exists = await (
            await conn.execute("select 1 from pg_roles where rolname = %s", [role])
        ).fetchone()
        if exists:
            await conn.execute(f"drop owned by {role}")
            await conn.execute(f"drop role {role}")
    nc = await nats.connect("nats://127.0.0.1:4222")
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await nc.jetstream().delete_stream(f"REAL_{unique.upper()}")
    await nc.close()
    client = aioredis.Redis()
    await client.delete(f"realistic:{unique}:warm")
    await client.aclose()


@pytest.fixture
def unique() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


async def cache_worker(u: str) -> None:
    """The worker cache-warmup talks to: answers each request on the ``.warmed`` subject."""
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()

    async def answer(msg: Any) -> None:
        request = json.loads(msg.data)
        await js.publish(
            f"ev{u}.cache.warmed", json.dumps({"version": request["version"], "ok": True}).encode()
        )

    try:
        await nc.subscribe(f"ev{u}.cache.warm", cb=answer)
        await asyncio.Event().wait()
    finally:
        await nc.close()


# ---------------------------------------------------------------------------------- the test


async def test_example_converges_from_scratch_and_heals_hand_made_drift(
    servers: None,
    vault: FakeVault,
    fleet: Fleet,
    cleanup: None,
    unique: str,
    tmp_path: Path,
) -> None:
    u = unique
    vault.put_kv2(
        f"secret/realistic/postgres-admin-{u}",
        {"dsn": "postgresql://postgres@127.0.0.1:5432/test"},
    )
    repo = make_repository(tmp_path, u, fleet)
    config = DaemonSettings.load(
        repo=str(repo),
        data_dir=tmp_path / "data",
        workdir=tmp_path,
        poll_interval="1s",
        grace_period="5s",
    )
    store = await Store.open(config.store, data_dir=config.data_dir)
    registry = PluginRegistry.discover()
    secrets = DefaultResolver(
        vault=VaultClient(
            VaultConfig(addr=vault.addr, token=vault.root_token, cache_ttl=0, backoff=0.01)
        )
    )
    controller = Controller(
        config,
        store,
        source=open_source(str(repo), data_dir=config.data_dir, poll_interval=1.0),
        registry=registry,
        secrets=secrets,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(cache_worker(u))
    daemon = asyncio.create_task(controller.run(stop))
    try:
        # ---- from scratch: every workflow converges and the servers hold what it declares
        for name in WORKFLOWS:
            await eventually(store, name, lambda s: s.status is Health.CONVERGED, within=40)

        password = vault.kv2[f"secret/realistic/app-db-{u}"][-1].data["password"]
        async with await psycopg.AsyncConnection.connect(
            f"host=127.0.0.1 dbname=app_{u} user=app_{u}", password=password
        ) as conn:
            row = await (
                await conn.execute(
                    "select current_user, pg_get_userbyid(datdba) from pg_database "
                    "where datname = current_database()"
                )
            ).fetchone()
        assert row == (f"app_{u}", f"app_{u}")

        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        info = await js.stream_info(f"REAL_{u.upper()}")
        assert (info.config.subjects, info.config.max_age) == ([f"ev{u}.>"], 604800.0)
        assert set(fleet.versions.values()) == {"2.4.1"}
        warm = await aioredis.Redis().get(f"realistic:{u}:warm")
        assert json.loads(warm or b"{}") == {"version": "2026-11"}

        # ---- drift made by hand, healed on the next interval
        async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as conn:
            await conn.execute(f"reassign owned by app_{u} to postgres")
            await conn.execute(f"drop owned by app_{u}")
            await conn.execute(f"drop role app_{u}")
        config_now = info.config
        config_now.max_age = 3600
        await js.update_stream(config_now)

        async def role_back() -> bool:
            async with await psycopg.AsyncConnection.connect(PG_ADMIN) as conn:
                owner = await (
                    await conn.execute(
                        "select pg_get_userbyid(datdba) from pg_database where datname = %s",
                        [f"app_{u}"],
                    )
                ).fetchone()
            return owner == (f"app_{u}",)

        async def stream_back() -> bool:
            return (await js.stream_info(f"REAL_{u.upper()}")).config.max_age == 604800.0

        await until_async(
            role_back, 40, "the dropped role is back and owns its database again", interval=0.2
        )
        await until_async(stream_back, 40, "the stream's max age is back at 7 days", interval=0.2)
        await nc.close()
        for name in ("app-database", "events-stream"):
            status = await eventually(
                store, name, lambda s: s.status is Health.CONVERGED, within=40
            )
            assert status.last_run_id is not None
        runs = await store.list_runs("app-database")
        assert len(runs) >= 2  # the first convergence and the healing

        # ---- 31 days later (the current version's creation time moved back): rotated
        versions = vault.kv2[f"secret/realistic/app-db-{u}"]
        before = len(versions)
        versions[-1].created = (datetime.now(UTC) - timedelta(days=31)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )

        async def rotated() -> bool:
            return len(vault.kv2[f"secret/realistic/app-db-{u}"]) == before + 1

        await until_async(rotated, 40, "the 31-day-old password is rotated", interval=0.2)
        latest = vault.kv2[f"secret/realistic/app-db-{u}"][-1].data
        assert latest["password"] != password and latest["user"] == f"app_{u}"
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 30)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await registry.close()
        await store.close()
