"""Serving the daemon: the store, the source, the controller and the HTTP API in one loop.

:func:`serve` opens the store and the source and runs the
:class:`~reconciler.daemon.controller.Controller` with the HTTP API
(:func:`reconciler.api.app.create_app`, over a :class:`~reconciler.daemon.view.ControllerView`)
served by uvicorn on ``--listen`` in the same event loop; both stop together on SIGTERM (the API
stops taking requests once the controller has shut down). Logs are structured (structlog):
human-readable on a terminal, JSON lines otherwise.

Called by: ``reconciler run`` (:mod:`reconciler.cli.run`) and the test harnesses
(:class:`ApiServer`). Calls: the daemon, the API, the store, the source and the secret
resolvers. Kept apart from the command so that no other command imports any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from reconciler.api.app import create_app
from reconciler.daemon.controller import Controller
from reconciler.daemon.policy import restrict_registry
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.view import ControllerView
from reconciler.errors import ConfigError
from reconciler.plugin import PluginRegistry
from reconciler.secrets.redaction import register_secret
from reconciler.secrets.resolver import resolver_from_settings
from reconciler.sources import open_source
from reconciler.sources.base import url_secrets
from reconciler.store import Store, describe
from reconciler.urls import mask_url


class ApiServer(uvicorn.Server):
    """uvicorn serving the API on ``listen`` (``host:port``), leaving signals to :func:`serve`.

    uvicorn's own signal capture would re-raise SIGTERM after shutting down; here the controller
    owns SIGTERM/SIGINT and tells the server to exit once it has stopped.
    """

    def __init__(self, app: FastAPI, *, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]") or "0.0.0.0"
        try:
            self.port = int(port)
        except ValueError:
            raise ConfigError(f"--listen {listen!r} is not host:port") from None
        super().__init__(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def bind(self) -> socket.socket:
        """The listening socket; :class:`ConfigError` when the address is taken or invalid.

        It listens already when returned: connections made as soon as the daemon logs its
        address wait in the backlog until uvicorn accepts them, instead of being refused."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        sock.listen(self.config.backlog)
        sock.set_inheritable(True)
        return sock


def register_daemon_secrets(settings: DaemonSettings) -> None:
    """Have every log line mask the daemon's own secrets: API token, webhook secret, Vault
    token and AppRole secret ID, the store URL's password, the repository URL's credentials."""
    for secret in (
        settings.api_token,
        settings.webhook_secret,
        settings.vault_token,
        settings.vault_secret_id,
        settings.preview_github_token,
        settings.preview_gitlab_token,
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.store and "://" in settings.store:
        with contextlib.suppress(ArgumentError, ValueError):
            password = make_url(settings.store).password
            register_secret(password if isinstance(password, str) else None)
    for credential in url_secrets(settings.repo or ""):
        register_secret(credential)


async def serve(settings: DaemonSettings, *, stop: asyncio.Event | None = None) -> None:
    """Open the store and the source, and reconcile until ``stop`` (or SIGTERM/SIGINT).

    Raises :class:`~reconciler.errors.ReconcilerError` when the store or the repository cannot
    be opened; nothing is left running when it returns.
    """
    assert settings.repo is not None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    source = open_source(
        settings.repo,
        branch=settings.branch,
        path=settings.path,
        data_dir=settings.data_dir,
        poll_interval=settings.poll_interval.total_seconds(),
        verify=settings.signature_policy(),
    )
    grants = settings.grants(private=source.private_paths())
    secrets = resolver_from_settings(settings, grants=grants)
    registry = restrict_registry(PluginRegistry.discover().load_all(), settings.allow_plugins)
    store = await Store.open(
        settings.store, data_dir=settings.data_dir, connections=settings.store_connections()
    )
    log = structlog.get_logger("reconciler.daemon")
    log.info(f"store: {describe(store.url)}")
    policy = settings.signature_policy()
    if policy is not None:
        log.info(f"signed commits: the head commit must be signed by {policy.describe()}")
    upkeep: asyncio.Task[None] | None = None
    if secrets.vault is not None:
        log.info(f"vault: {mask_url(secrets.vault.config.addr)} is {await secrets.vault.health()}")
        upkeep = asyncio.create_task(secrets.vault.keep_token_alive(stop), name="vault-token")
    try:
        controller = Controller(
            settings, store, source=source, registry=registry, secrets=secrets, grants=grants
        )
        server = ApiServer(create_app(ControllerView(controller)), listen=settings.listen)
        sock = server.bind()
        http = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        host, port = sock.getsockname()[:2]
        log.info(f"API listening on http://{host}:{port}")
        try:
            await controller.run(stop)
        finally:
            server.should_exit = True
            await asyncio.gather(http, return_exceptions=True)
            sock.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await registry.close()
        await store.close()
        if upkeep is not None:
            upkeep.cancel()
            await asyncio.gather(upkeep, return_exceptions=True)
        if secrets.vault is not None:
            secrets.vault.close()
