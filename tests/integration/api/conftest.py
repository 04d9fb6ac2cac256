"""A real daemon for API tests: a git repository in ``tmp_path``, a SQLite store, a running
:class:`Controller` and the API served by uvicorn on a free loopback port (the same
:class:`~reconciler.cli.serving.ApiServer` ``reconciler run`` uses), both from
:mod:`tests.support.controller`.

The repository holds ``motd`` (keeps a file's content; converges in a moment), ``slow`` (a
``sleep`` that stays running, for cancel and "already running") and ``broken`` (uses a plugin
that does not exist: ``Invalid``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.api.tokens import hash_token
from reconciler.daemon.controller import Controller
from reconciler.store import Store
from tests.support.controller import running, serving_api
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async
from tests.support.workflows import file_workflow, put

TOKEN = "t0ken-for-tests-4c1d"
SECRET = "hook-secret-9a7e"


def motd(target: Path, content: str) -> dict[str, Any]:
    return file_workflow("motd", target, content, keep=True, labels={"team": "ops"})


SLOW = {
    "apiVersion": "reconciler/v1",
    "kind": "Workflow",
    "metadata": {"name": "slow"},
    "spec": {
        "interval": "1h",
        "start": "wait",
        "states": {
            "wait": {
                "action": {"plugin": "shell.run", "with": {"argv": ["sleep", "60"]}},
                "next": "done",
                "onError": "failed",
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
    },
}

BROKEN = {
    "apiVersion": "reconciler/v1",
    "kind": "Workflow",
    "metadata": {"name": "broken"},
    "spec": {
        "start": "go",
        "states": {
            "go": {"action": {"plugin": "no.such.plugin", "with": {}}, "next": "done"},
            "done": {"end": "success"},
        },
    },
}


def write_repo(repo: Path, out: Path, content: str = "hello") -> str:
    for name, doc in (("motd", motd(out, content)), ("slow", SLOW), ("broken", BROKEN)):
        (repo / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return commit(repo)


@dataclass
class Daemon:
    """A running controller with its API, and an httpx client pointed at it."""

    url: str
    repo: Path
    out: Path
    controller: Controller
    store: Store
    client: httpx.AsyncClient

    def auth(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        await until_async(check, 20, what, interval=0.05)

    async def workflow(self, name: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/workflows/{name}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def until_status(self, name: str, *statuses: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def check() -> bool:
            seen.update(await self.workflow(name))
            return seen["status"] in statuses

        await self.until(check, f"{name} in {statuses} (last: {seen.get('status')})")
        return seen

    async def running_run(self, name: str) -> str:
        """The id of ``name``'s run in progress, once the store shows it in a state."""
        found: list[str] = []

        async def check() -> bool:
            found[:] = [r for r, w in self.controller.running.items() if w == name]
            run = await self.store.get_run(found[0]) if found else None
            return run is not None and run.current_state is not None

        await self.until(check, f"a run of {name} in progress")
        return found[0]


async def start_daemon(
    tmp_path: Path,
    *,
    token: str | None = TOKEN,
    secret: str | None = SECRET,
    poll_interval: str = "1h",
    extra: Sequence[Mapping[str, Any]] = (),
    **overrides: Any,
) -> AsyncIterator[Daemon]:
    """Commit the repository (unless this is a restart) with ``extra`` workflow documents
    beside the three, start controller and API, yield; stop both on exit."""
    repo, out = tmp_path / "repo", tmp_path / "motd.txt"
    if not repo.exists():  # a second start in the same tmp_path is a restart
        init_repo(repo)
        for document in extra:
            put(repo, document)
        write_repo(repo, out)
    url = f"file://{repo}"  # a remote: only polls (hourly) and hooks fetch, no file watcher
    async with (
        running(
            tmp_path,
            url,
            branch="main",
            poll_interval=poll_interval,
            grace_period="200ms",
            listen="127.0.0.1:0",
            secret_settings={"api_token": token, "webhook_secret": secret},
            **overrides,
        ) as (controller, store),
        serving_api(controller) as base,
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them:
        # reusing one as the server closes it is a ReadError.
        httpx.AsyncClient(
            base_url=base, timeout=10, limits=httpx.Limits(keepalive_expiry=2)
        ) as client,
    ):
        daemon = Daemon(base, repo, out, controller, store, client)
        await daemon.until(_ready(controller), "the first revision to load")
        yield daemon


def tokens_file(path: Path, tokens: Mapping[str, tuple[str, str]]) -> Path:
    """A tokens file at ``path``: each name's (token, role), stored as its hash."""
    entries = [
        {"name": name, "sha256": hash_token(token), "role": role}
        for name, (token, role) in tokens.items()
    ]
    path.write_text(json.dumps(entries))
    return path


def _ready(controller: Controller) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return controller.ready.is_set()

    return check


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The daemon with a token and a webhook secret configured."""
    async for d in start_daemon(tmp_path):
        yield d
