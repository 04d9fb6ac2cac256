"""``reconciler run``: the command line of the daemon.

Builds :class:`~reconciler.daemon.settings.DaemonSettings` from flags, ``RECONCILER_*``
variables and ``--config`` (in that order of precedence) and hands them to
:func:`reconciler.cli.serving.serve` until SIGTERM or SIGINT, then exits 0 after the graceful
shutdown. With no repository configured and run from the project checkout, it serves
``examples/quickstart`` as a plain directory.

The daemon's parts (store, controller, API server) are imported only when the command runs, so
that every other command starts without them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from reconciler.cli.app import app, fail
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.telemetry.logging import configure_logging

QUICKSTART = Path("examples/quickstart")


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
    max_concurrent_runs: int | None = typer.Option(
        None, "--max-concurrent-runs", metavar="N", help="Runs in flight at once (default 16)."
    ),
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
    log_level: str | None = typer.Option(
        None, "--log-level", help="debug|info|warning|error, for reconciler and its plugins."
    ),
    log_levels: str | None = typer.Option(
        None,
        "--log-levels",
        metavar="LOGGER=LEVEL,...",
        help="Levels of single loggers, e.g. 'aiosqlite=debug,httpx=info' (libraries log at "
        "warning by default).",
    ),
    log_format: str | None = typer.Option(
        None,
        "--log-format",
        help="json|console|auto (default auto: JSON when stderr is not a terminal).",
    ),
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
    verify_signatures: bool | None = typer.Option(
        None,
        "--verify-signatures/--no-verify-signatures",
        help="Apply only revisions whose head commit is signed by an allowed key.",
    ),
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers", metavar="FILE", help="Allowed-signers file for SSH signatures."
        ),
    ] = None,
    gpg_home: Annotated[
        Path | None,
        typer.Option(
            "--gpg-home", metavar="DIR", help="GnuPG home whose keyring holds the allowed GPG keys."
        ),
    ] = None,
    api_token_file: Annotated[
        Path | None,
        typer.Option(
            "--api-token-file",
            metavar="FILE",
            help="File holding the API token mutations need (or RECONCILER_API_TOKEN; never a "
            "flag, flags show up in ps).",
        ),
    ] = None,
    api_tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--api-tokens-file",
            metavar="FILE",
            help="Named API tokens with roles (YAML or JSON).",
        ),
    ] = None,
    windows_file: Annotated[
        Path | None,
        typer.Option(
            "--windows-file",
            metavar="FILE",
            help="The operator's change windows (YAML or JSON), for every workflow or by selector.",
        ),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--webhook-secret-file",
            metavar="FILE",
            help="File holding the secret push webhooks are signed with (or "
            "RECONCILER_WEBHOOK_SECRET).",
        ),
    ] = None,
    external_url: str | None = typer.Option(
        None,
        "--external-url",
        help="URL people reach the page at, for links in notifications.",
    ),
    notify_hosts: str | None = typer.Option(
        None,
        "--notify-hosts",
        help="Comma-separated host globs (host or host:port) notification providers may send "
        "to; default none.",
    ),
    notify_provider_types: str | None = typer.Option(
        None,
        "--notify-provider-types",
        help="Comma-separated provider types allowed (slack, teams, webhook, github, gitlab); "
        "default all.",
    ),
    preview_github_token_file: Annotated[
        Path | None,
        typer.Option(
            "--preview-github-token-file",
            metavar="FILE",
            help="GitHub token previews of pull requests post statuses and comments with (or "
            "RECONCILER_PREVIEW_GITHUB_TOKEN).",
        ),
    ] = None,
    preview_gitlab_token_file: Annotated[
        Path | None,
        typer.Option(
            "--preview-gitlab-token-file",
            metavar="FILE",
            help="GitLab token previews of merge requests post statuses and notes with (or "
            "RECONCILER_PREVIEW_GITLAB_TOKEN).",
        ),
    ] = None,
    preview_github_url: str | None = typer.Option(
        None,
        "--preview-github-url",
        metavar="URL",
        help="GitHub API base URL for previews (default https://api.github.com).",
    ),
    preview_gitlab_url: str | None = typer.Option(
        None,
        "--preview-gitlab-url",
        metavar="URL",
        help="GitLab base URL for previews (default https://gitlab.com).",
    ),
    preview_max_workflows: int | None = typer.Option(
        None,
        "--preview-max-workflows",
        metavar="N",
        help="Most probes one preview runs (default 50).",
    ),
    preview_timeout: str | None = typer.Option(
        None,
        "--preview-timeout",
        metavar="DURATION",
        help="Longest time one preview's probes take in all (default 2m).",
    ),
) -> None:
    """Run the reconcile daemon: watch the repository and converge every workflow."""
    from reconciler.daemon.settings import DaemonSettings  # pydantic-settings: only for run

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
            log_levels=log_levels,
            log_format=log_format,
            replica_id=replica_id,
            lease_ttl=lease_ttl,
            command_interval=command_interval,
            verify_signatures=verify_signatures,
            allowed_signers=allowed_signers,
            gpg_home=gpg_home,
            api_token_file=api_token_file,
            api_tokens_file=api_tokens_file,
            webhook_secret_file=webhook_secret_file,
            windows_file=windows_file,
            external_url=external_url,
            notify_hosts=notify_hosts,
            notify_provider_types=notify_provider_types,
            preview_github_token_file=preview_github_token_file,
            preview_gitlab_token_file=preview_gitlab_token_file,
            preview_github_url=preview_github_url,
            preview_gitlab_url=preview_gitlab_url,
            preview_max_workflows=preview_max_workflows,
            preview_timeout=preview_timeout,
        )
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if settings.repo is None:
        if not QUICKSTART.is_dir():
            raise fail("no repository to watch: pass --repo (or set RECONCILER_REPO)")
        settings = settings.model_copy(update={"repo": str(QUICKSTART)})
    from reconciler.cli.serving import register_daemon_secrets, serve

    register_daemon_secrets(settings)
    configure_logging(
        settings.log_level,
        json_lines={"json": True, "console": False}.get(settings.log_format),
        levels=settings.log_levels,
    )
    try:
        asyncio.run(serve(settings))
    except ReconcilerError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:  # a bad sub-path or a branch for a plain directory
        raise fail(str(exc)) from None
