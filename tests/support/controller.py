"""An in-process daemon for integration tests: a real Controller on a real repository and store.

:func:`running` wires what ``reconciler run`` wires — :class:`~reconciler.daemon.settings.DaemonSettings`,
a :class:`~reconciler.store.Store` (SQLite under ``tmp_path`` unless ``store=`` names another), the git
source from :mod:`reconciler.sources` and the allowed plugins — into a
:class:`~reconciler.daemon.controller.Controller` (``docs/architecture.md`` draws what it runs) and stops it gracefully on exit; :func:`serving_api` serves that controller's HTTP API the way
``reconciler run`` does. :func:`eventually` waits for a workflow's status record in that store.
Repositories come from :mod:`tests.support.repos`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from reconciler.api.app import create_app
from reconciler.cli.serving import ApiServer
from reconciler.daemon.controller import Controller
from reconciler.daemon.policy import restrict_registry
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.view import ControllerView
from reconciler.plugin import PluginRegistry
from reconciler.secrets.resolver import SecretResolver, resolver_from_settings
from reconciler.sources import open_source
from reconciler.store import Store, WorkflowStatusRecord
from tests.support.waiting import until_async


@asynccontextmanager
async def running(
    tmp_path: Path,
    repo: Path | str,
    *,
    secret_settings: dict[str, str | None] | None = None,
    resolver: SecretResolver | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[Controller, Store]]:
    """A controller on ``repo`` (a path or a URL) with its store, stopped (gracefully) on exit.

    ``overrides`` are daemon settings; by default the data lives in ``tmp_path / "data"``, the
    workdir (and so the only file root) is ``tmp_path``, the repository is polled every 200 ms
    and stopping waits up to 5 s for running runs. ``secret_settings`` are the settings that
    cannot be flags (``api_token``, ``webhook_secret``: ``None`` leaves one unset). Secrets
    resolve as the daemon resolves them (``env:``, ``file:``, Vault from the settings) unless
    ``resolver`` says otherwise.
    """
    settings = DaemonSettings.load(
        **{
            "repo": str(repo),
            "data_dir": tmp_path / "data",
            "workdir": tmp_path,
            "poll_interval": "200ms",
            "grace_period": "5s",
            **overrides,
        }
    )
    if secret_settings:
        settings = settings.model_copy(
            update={k: None if v is None else SecretStr(v) for k, v in secret_settings.items()}
        )
    store = await Store.open(settings.store, data_dir=settings.data_dir)
    source = open_source(
        str(repo),
        branch=settings.branch,
        data_dir=settings.data_dir,
        poll_interval=settings.poll_interval.total_seconds(),
    )
    registry = restrict_registry(PluginRegistry.discover().load_all(), settings.allow_plugins)
    secrets = resolver if resolver is not None else resolver_from_settings(settings)
    controller = Controller(settings, store, source=source, registry=registry, secrets=secrets)
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    try:
        yield controller, store
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await registry.close()
        await store.close()


@asynccontextmanager
async def serving_api(controller: Controller, listen: str = "127.0.0.1:0") -> AsyncIterator[str]:
    """The controller's HTTP API (the app and server ``reconciler run`` uses) on ``listen`` (by
    default a free loopback port); yields its base URL once it accepts requests, stops it on exit."""
    server = ApiServer(create_app(ControllerView(controller)), listen=listen)
    sock = server.bind()
    host, port = sock.getsockname()[:2]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until_async(lambda: server.started, 20, "the API server to start", interval=0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def eventually(
    store: Store, name: str, check: Callable[[WorkflowStatusRecord], bool], *, within: float = 20
) -> WorkflowStatusRecord:
    """The status of ``name`` once ``check`` accepts it (fails after ``within`` seconds)."""

    async def accepted() -> WorkflowStatusRecord | None:
        status = await store.get_status(name)
        return status if status is not None and check(status) else None

    found = await until_async(accepted, within, f"a status of {name} that matches")
    assert found is not None
    return found
