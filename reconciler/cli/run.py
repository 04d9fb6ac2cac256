"""``reconciler run``: the daemon and its HTTP API.

Builds :class:`~reconciler.daemon.settings.DaemonSettings` from flags, ``RECONCILER_*``
variables and ``--config`` (in that order of precedence), opens the store and the source, and
hands them to :class:`~reconciler.daemon.controller.Controller` until SIGTERM or SIGINT, then
exits 0 after the graceful shutdown. With no repository configured and run from the project
checkout, it serves ``examples/quickstart`` as a plain directory.

The HTTP API (:func:`reconciler.api.create_app`, over a
:class:`~reconciler.daemon.view.ControllerView`) is served by uvicorn on ``--listen`` in the same
event loop as the controller; both stop together on SIGTERM (the API stops taking requests
once the controller has shut down). Logs are structured (structlog): human-readable on a terminal, JSON lines otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import structlog
import typer
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from reconciler.api import create_app
from reconciler.cli.app import app, fail
from reconciler.daemon.controller import Controller
from reconciler.daemon.policy import restrict_registry
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.view import ControllerView
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.plugin import PluginRegistry
from reconciler.secrets.redaction import register_secret
from reconciler.secrets.resolver import resolver_from_settings
from reconciler.sources import open_source
from reconciler.sources.base import url_secrets
from reconciler.store import Store, describe
from reconciler.telemetry.logging import configure_logging
from reconciler.urls import mask_url

QUICKSTART = Path("examples/quickstart")


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
        """The listening socket; :class:`ConfigError` when the address is taken or invalid."""
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
        sock.set_inheritable(True)
        return sock


@app.command()
def run(
    repo_arg: str | None = typer.Argument(
        None, metavar="REPO", help="Git URL or path (same as --repo)."
    ),
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML or TOML file of settings (lowest precedence)."),
    ] = None,
    repo: str | None = typer.Option(None, "--repo", help="Git URL or local path to watch."),
    branch: str | None = typer.Option(None, "--branch", help="Branch to follow."),
    path: str | None = typer.Option(None, "--path", help="Sub-path holding workflow files."),
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Default ./.reconciler.")
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where relative paths in workflows resolve (default .)."),
    ] = None,
    store: str | None = typer.Option(
        None, "--store", help="Store URL; default SQLite in the data dir."
    ),
    listen: str | None = typer.Option(None, "--listen", help="host:port (default 127.0.0.1:8080)."),
    read_auth: str | None = typer.Option(
        None, "--read-auth", help="none|token: whether reading the API needs the token."
    ),
    poll_interval: str | None = typer.Option(
        None, "--poll-interval", help="How often to fetch, e.g. 60s."
    ),
    max_concurrent_runs: int | None = typer.Option(None, "--max-concurrent-runs"),
    allow_plugins: str | None = typer.Option(
        None, "--allow-plugins", help="Comma-separated globs of plugins the repository may use."
    ),
    file_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--file-root", help="Directory workflows may read and write under (repeatable)."
        ),
    ] = None,
    allow_env: str | None = typer.Option(
        None, "--allow-env", help="Comma-separated globs of variables env: references may read."
    ),
    max_file_bytes: int | None = typer.Option(
        None, "--max-file-bytes", help="Largest file a workflow may read (16 MiB)."
    ),
    expression_cost_limit: int | None = typer.Option(
        None, "--expression-cost-limit", help="Budget of one CEL evaluation (1000000 units)."
    ),
    api_docs: bool | None = typer.Option(
        None,
        "--api-docs/--no-api-docs",
        help="Serve the interactive API documentation at /docs (local files; off by default).",
    ),
    keep_runs: int | None = typer.Option(None, "--keep-runs", help="Runs kept per workflow."),
    keep_days: int | None = typer.Option(None, "--keep-days", help="Days of run history kept."),
    default_interval: str | None = typer.Option(
        None, "--default-interval", help="Drift check cadence when a workflow sets none."
    ),
    grace_period: str | None = typer.Option(
        None, "--grace-period", help="On SIGTERM, time running states get to finish."
    ),
    log_level: str | None = typer.Option(None, "--log-level", help="debug|info|warning|error"),
    replica_id: str | None = typer.Option(
        None, "--replica-id", help="This replica's name in the leases table (PostgreSQL)."
    ),
    lease_ttl: str | None = typer.Option(
        None, "--lease-ttl", help="Lease lifetime; a dead replica's runs move after it (30s)."
    ),
    command_interval: str | None = typer.Option(
        None,
        "--command-interval",
        help="How often the command log is read for steering through other replicas (500ms).",
    ),
    api_token_file: Annotated[Path | None, typer.Option("--api-token-file")] = None,
    webhook_secret_file: Annotated[Path | None, typer.Option("--webhook-secret-file")] = None,
) -> None:
    """Run the reconcile daemon: watch the repository and converge every workflow."""
    if repo_arg is not None and repo is not None and repo_arg != repo:
        raise fail("give the repository either as an argument or with --repo, not both")
    try:
        settings = DaemonSettings.load(
            config,
            repo=repo_arg or repo,
            branch=branch,
            path=path,
            data_dir=data_dir,
            workdir=workdir,
            store=store,
            listen=listen,
            read_auth=read_auth,
            poll_interval=poll_interval,
            max_concurrent_runs=max_concurrent_runs,
            allow_plugins=allow_plugins,
            file_roots=file_root or None,
            allow_env=allow_env,
            max_file_bytes=max_file_bytes,
            expression_cost_limit=expression_cost_limit,
            api_docs=api_docs,
            keep_runs=keep_runs,
            keep_days=keep_days,
            default_interval=default_interval,
            grace_period=grace_period,
            log_level=log_level,
            replica_id=replica_id,
            lease_ttl=lease_ttl,
            command_interval=command_interval,
            api_token_file=api_token_file,
            webhook_secret_file=webhook_secret_file,
        )
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if settings.repo is None:
        if not QUICKSTART.is_dir():
            raise fail("no repository to watch: pass --repo (or set RECONCILER_REPO)")
        settings = settings.model_copy(update={"repo": str(QUICKSTART)})
    register_daemon_secrets(settings)
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ReconcilerError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:  # a bad sub-path or a branch for a plain directory
        raise fail(str(exc)) from None


def register_daemon_secrets(settings: DaemonSettings) -> None:
    """Have every log line mask the daemon's own secrets: API token, webhook secret, Vault
    token and AppRole secret ID, the store URL's password, the repository URL's credentials."""
    for secret in (
        settings.api_token,
        settings.webhook_secret,
        settings.vault_token,
        settings.vault_secret_id,
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
    )
    grants = settings.grants(private=source.private_paths())
    secrets = resolver_from_settings(settings, grants=grants)
    registry = restrict_registry(PluginRegistry.discover(), settings.allow_plugins)
    store = await Store.open(settings.store, data_dir=settings.data_dir)
    log = structlog.get_logger("reconciler.daemon")
    log.info(f"store: {describe(store.url)}")
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
