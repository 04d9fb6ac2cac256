"""``reconciler status|runs|sync|suspend|resume|cancel|approve|approvals``: the daemon's HTTP
API from a terminal.

These commands talk to a running ``reconciler run`` over its API (:mod:`reconciler.api.app`)
with httpx; they never open the store themselves. Responses are parsed with the API's own
models (:mod:`reconciler.api.models`), shown as rich tables for people and passed through as
JSON with ``--output json`` for scripts.

``--server`` (or ``RECONCILER_SERVER``; default ``http://127.0.0.1:8080``) names the daemon;
``--token`` / ``--token-file`` (or ``RECONCILER_API_TOKEN``) carry the bearer token that
mutations always need (and reads, when the daemon runs with ``--read-auth token``). Exit codes
follow :mod:`reconciler.cli.app`: 0 on success, 2 when the command could not do its job — the
daemon is unreachable, refused the token, does not know the workflow or run, or refused the
change (e.g. already running) — always with one clear line on stderr. Two commands say more,
for scripts: ``status`` exits 1 when a workflow shown is Degraded or Invalid and 3 while some
are still Pending or Progressing; ``sync --wait`` exits with the outcome of the run it caused
(0 succeeded, 1 failed or cancelled, 2 timed out).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.table import Table

from reconciler.api.models import (
    Accepted,
    ApprovalList,
    ApprovalOut,
    ErrorResponse,
    JournalEntryOut,
    RunAccepted,
    RunDetail,
    RunList,
    WindowOut,
    WorkflowDetail,
    WorkflowList,
)
from reconciler.cli.app import OutputFormat, OutputOption, app, console, err_console, fail
from reconciler.cli.terminal import escape
from reconciler.engine.journal import EventKind, RunStatus
from reconciler.errors import ReconcilerError
from reconciler.status import Health
from reconciler.types import format_duration, parse_duration

__all__ = ["RemoteError", "call", "mutate"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 10.0

Model = TypeVar("Model", bound=BaseModel)

FAILURE_KINDS = frozenset({EventKind.ACTION, EventKind.CHECK})
"""Journal entries of plugin calls: a failed one carries ``error`` with its details."""

ServerOption = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="RECONCILER_SERVER",
        metavar="URL",
        help="Base URL of the daemon's API.",
        show_default=True,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="RECONCILER_API_TOKEN",
        metavar="TOKEN",
        help="API token (prefer RECONCILER_API_TOKEN or --token-file: flags show up in ps).",
        show_default=False,
        show_envvar=True,
    ),
]
TokenFileOption = Annotated[
    Path | None, typer.Option("--token-file", metavar="FILE", help="File holding the API token.")
]


class RemoteError(ReconcilerError):
    """The daemon could not be reached or answered with an error; the message says which."""


def _token(token: str | None, token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RemoteError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        return text or None
    return token or None


async def call(
    server: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> httpx.Response:
    """One request to the API (``body``, when given, sent as JSON); :class:`RemoteError` with a
    one-line message on any failure."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = server.rstrip("/")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_SECONDS) as client:
            response = await client.request(method, path, headers=headers, params=params, json=body)
    except httpx.InvalidURL:
        raise RemoteError(f"--server {server!r} is not a URL") from None
    except httpx.UnsupportedProtocol:
        raise RemoteError(f"--server {server!r} is not an http:// or https:// URL") from None
    except httpx.TimeoutException:
        raise RemoteError(
            f"the daemon at {base} did not answer within {TIMEOUT_SECONDS:g}s"
        ) from None
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise RemoteError(f"cannot reach the daemon at {base}: {reason}") from None
    if response.is_success:
        return response
    try:
        error = ErrorResponse.model_validate_json(response.content).error
        message = error.message
    except ValidationError:
        message = response.text.strip()[:200] or response.reason_phrase
    if response.status_code == 401 and not token:
        message += " (pass --token, --token-file or set RECONCILER_API_TOKEN)"
    raise RemoteError(f"{message} (HTTP {response.status_code})")


async def _get(server: str, path: str, model: type[Model], **kw: Any) -> tuple[Model, Any]:
    response = await call(server, "GET", path, **kw)
    try:
        return model.model_validate_json(response.content), response.json()
    except ValidationError as exc:
        raise RemoteError(
            f"unexpected answer from {server} for {path} ({exc.error_count()} problems); "
            "is it a reconciler daemon of the same version?"
        ) from None


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except RemoteError as exc:
        raise fail(escape(str(exc))) from None


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: str | None, n: int = 12) -> str:
    return value[:n] if value else "-"


_STATUS_STYLE = {
    "Converged": "green",
    "Progressing": "cyan",
    "Pending": "yellow",
    "Degraded": "red",
    "Invalid": "red",
    "Suspended": "magenta",
    "succeeded": "green",
    "running": "cyan",
    "failed": "red",
    "cancelled": "yellow",
}


def _styled(value: str) -> str:
    style = _STATUS_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


# -- status -----------------------------------------------------------------------------------


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One workflow (default: all).")] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Show every workflow's status (or one workflow in detail) from a running daemon.

    Exit codes for scripts: 0 when every workflow shown is Converged or Suspended, 1 when any is
    Degraded or Invalid, 3 when none is but some are still Pending or Progressing, 2 when the
    daemon could not be asked.
    """

    async def fetch() -> list[Health]:
        secret = _token(token, token_file)
        if name is None:
            listing, raw = await _get(server, "/api/v1/workflows", WorkflowList, token=secret)
            if output is OutputFormat.json:
                _print_json(raw)
            else:
                _workflow_table(listing)
            return [wf.status for wf in listing.workflows]
        detail, raw = await _get(
            server, f"/api/v1/workflows/{quote(name, safe='')}", WorkflowDetail, token=secret
        )
        if output is OutputFormat.json:
            _print_json(raw)
        else:
            _workflow_detail(detail)
        return [detail.status]

    raise typer.Exit(status_exit_code(_run(fetch())))


HEALTHY = frozenset({Health.CONVERGED, Health.SUSPENDED})
"""What ``status`` counts as nothing to worry about (a suspension is someone's choice)."""
UNHEALTHY = frozenset({Health.DEGRADED, Health.INVALID})
"""What makes ``status`` exit 1."""
STATUS_UNSETTLED = 3
"""``status``'s exit code while workflows are Pending or Progressing and none is unhealthy."""


def status_exit_code(statuses: list[Health]) -> int:
    """0 when every status is healthy (or there are none), 1 when any is Degraded or Invalid,
    :data:`STATUS_UNSETTLED` otherwise (some still Pending or Progressing)."""
    if any(s in UNHEALTHY for s in statuses):
        return 1
    if all(s in HEALTHY for s in statuses):
        return 0
    return STATUS_UNSETTLED


def _workflow_table(listing: WorkflowList) -> None:
    table = Table(
        title=f"revision {_short(listing.revision) if listing.revision else '(none yet)'}"
    )
    # the WINDOW column only when a change window applies to some workflow shown
    windows = any(wf.window is not None for wf in listing.workflows)
    columns = ["WORKFLOW", "STATUS", "SYNC", "REVISION", "LAST RUN", "NEXT CHECK", "REASON"]
    for column in columns[:-1] + ["WINDOW"] * windows + columns[-1:]:
        table.add_column(column)
    for wf in listing.workflows:
        reason = wf.reason + (f": {wf.message}" if wf.message else "")
        window = [_window_cell(wf.window)] if windows else []
        table.add_row(
            escape(wf.name),
            _styled(wf.status.value) + (" (API)" if wf.suspended else ""),
            wf.sync.value,
            _short(wf.revision),
            _short(wf.running_run_id or wf.last_run_id, 8)
            + (" (running)" if wf.running_run_id else ""),
            _when(wf.next_check_at),
            *window,
            escape(reason),
        )
    console.print(table)
    if not listing.workflows:
        console.print("no workflows")


def _window_cell(window: WindowOut | None) -> str:
    """``blocked until 2026-12-07 06:00:00``, ``open``, or ``-`` when no window applies."""
    if window is None:
        return "-"
    text = "[yellow]blocked[/yellow]" if window.state == "blocked" else "open"
    return text + (f" until {_when(window.until)}" if window.until is not None else "")


def _workflow_detail(wf: WorkflowDetail) -> None:
    rows = [
        ("workflow", wf.name),
        ("status", _styled(wf.status.value)),
        ("sync", wf.sync.value),
        ("reason", escape(wf.reason or "-")),
        ("message", escape(wf.message or "-")),
        ("revision", wf.revision or "-"),
        ("last attempted", wf.last_attempted_revision or "-"),
        ("last run", wf.last_run_id or "-"),
        ("running", wf.running_run_id or "-"),
        ("last success", _when(wf.last_success_at)),
        ("next check", _when(wf.next_check_at)),
        ("failures", str(wf.failures)),
        ("suspended (API)", "yes" if wf.suspended else "no"),
    ]
    if wf.window is not None:
        rows.append(("window", f"{_window_cell(wf.window)}: {escape(wf.window.message)}"))
    if wf.labels:
        rows.append(("labels", escape(", ".join(f"{k}={v}" for k, v in wf.labels.items()))))
    if wf.spec is not None:
        rows.append(("file", f"{wf.spec.file}:{wf.spec.line}"))
        rows.append(("states", escape(", ".join(s.name for s in wf.spec.states))))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"[bold]{key.ljust(width)}[/bold]  {value}", highlight=False)
    if wf.diff:
        console.print("[bold]diff[/bold]")
        console.print_json(json.dumps(wf.diff))
    for problem in wf.problems:
        console.print(
            f"[red]{escape(problem.path)}:{problem.line}:{problem.column}: "
            f"{problem.severity}:[/red] {escape(problem.message)}",
            highlight=False,
        )


# -- runs -------------------------------------------------------------------------------------


@app.command()
def runs(
    run_id: Annotated[
        str | None,
        typer.Argument(
            help="One run, with its journal: its id or a unique prefix (4+ characters)."
        ),
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", metavar="NAME", help="Only this workflow's runs."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            max=500,
            metavar="N",
            help="How many runs to list, newest first.",
        ),
    ] = 20,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """List recent runs (newest first), or show one run with its transition journal."""

    async def fetch() -> None:
        secret = _token(token, token_file)
        if run_id is None:
            params: dict[str, Any] = {"limit": limit}
            if workflow:
                params["workflow"] = workflow
            listing, raw = await _get(server, "/api/v1/runs", RunList, token=secret, params=params)
            if output is OutputFormat.json:
                _print_json(raw)
            else:
                _runs_table(listing)
        else:
            detail, raw = await _get(
                server, f"/api/v1/runs/{quote(run_id, safe='')}", RunDetail, token=secret
            )
            if output is OutputFormat.json:
                _print_json(raw)
            else:
                _run_detail(detail)

    _run(fetch())


def _duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


def _inputs_text(inputs: dict[str, Any] | None) -> str:
    """A run's inputs on one line: ``replicas=5 env="prod"`` (values as JSON)."""
    return " ".join(f"{k}={json.dumps(v)}" for k, v in sorted((inputs or {}).items()))


def _runs_table(listing: RunList) -> None:
    table = Table()
    columns = ["RUN", "WORKFLOW", "STATUS", "REASON", "STATE", "STARTED", "TOOK", "ERROR"]
    with_inputs = any(run.inputs for run in listing.runs)  # the column only when it says something
    for column in [*columns, "INPUTS"] if with_inputs else columns:
        table.add_column(column)
    for run in listing.runs:
        cells = [
            run.id,
            escape(run.workflow),
            _styled(run.status.value),
            escape(run.reason),
            escape(run.current_state or "-"),
            _when(run.started_at),
            _duration(run.started_at, run.finished_at),
            escape(run.error or ""),
        ]
        if with_inputs:
            cells.append(escape(_inputs_text(run.inputs)))
        table.add_row(*cells)
    console.print(table)
    if not listing.runs:
        console.print("no runs")


def _run_detail(run: RunDetail) -> None:
    console.print(
        f"run [bold]{run.id}[/bold] of workflow [bold]{escape(run.workflow)}[/bold]: "
        f"{_styled(run.status.value)} (reason {escape(run.reason or '-')}, revision "
        f"{_short(run.revision)}, started {_when(run.started_at)}, took "
        f"{_duration(run.started_at, run.finished_at)})",
        highlight=False,
    )
    if run.requested_by:
        console.print(f"requested by {escape(run.requested_by)}", highlight=False)
    if run.inputs:
        console.print(f"inputs {escape(_inputs_text(run.inputs))}", highlight=False)
    if run.cancelled_by:
        console.print(f"cancelled by {escape(run.cancelled_by)}", highlight=False)
    if run.error:
        console.print(f"[red]error:[/red] {escape(run.error)}", highlight=False)
    if run.approval is not None:
        _print_approval(run.approval)
    table = Table(title="journal")
    for column in ("SEQ", "AT", "EVENT", "STATE", "TO", "OUTCOME"):
        table.add_column(column)
    for e in run.journal:
        table.add_row(
            str(e.seq),
            _when(e.at),
            e.kind.value,
            escape(e.state or ""),
            escape(e.to_state or ""),
            escape(e.outcome or ""),
        )
    console.print(table)
    for entry in run.journal:
        _print_failure(entry)


OUTPUT_FIELDS = ("stdout", "stderr")
"""Details printed as blocks of text (a command's output tails), after the one-line ones."""


def _print_failure(entry: JournalEntryOut) -> None:
    """A failed action or check attempt of the journal with its error's details — exit code,
    output tails, a server's message, a body excerpt — as Ansible shows ``rc``/``stdout``/
    ``stderr``. Everything shown was redacted by the engine before it was journaled."""
    error = entry.detail.get("error")
    if entry.kind not in FAILURE_KINDS or entry.detail.get("ok") is not False:
        return
    if not isinstance(error, dict):
        return
    plugin, attempt = entry.detail.get("plugin", "?"), entry.detail.get("attempt", 1)
    console.print(
        f"[red]{escape(entry.state or '-')}: {escape(str(plugin))} (attempt {attempt}) failed:"
        f"[/red] {escape(str(error.get('name', '')))}: {escape(str(error.get('message', '')))}",
        highlight=False,
    )
    details = error.get("details")
    if not isinstance(details, dict):
        return
    for key, value in details.items():
        if key not in OUTPUT_FIELDS:
            console.print(f"  {escape(key)}: {escape(json.dumps(value))}", highlight=False)
    for key in OUTPUT_FIELDS:
        text = details.get(key)
        if isinstance(text, str) and text.strip():
            console.print(f"  {key}:", highlight=False)
            for line in text.rstrip("\n").splitlines():
                console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)


# -- mutations --------------------------------------------------------------------------------


def mutate(
    what: str,
    path: str,
    *,
    server: str,
    token: str | None,
    token_file: Path | None,
    output: OutputFormat,
    body: Any = None,
    answer: type[Accepted] = Accepted,
) -> None:
    """POST to ``path`` (with ``body`` as JSON, when given) and print the daemon's answer."""

    async def post() -> None:
        secret = _token(token, token_file)
        if secret is None:
            raise RemoteError(
                f"{what} needs the daemon's API token: pass --token-file, set "
                "RECONCILER_API_TOKEN or pass --token"
            )
        response = await call(server, "POST", path, token=secret, body=body)
        if output is OutputFormat.json:
            _print_json(response.json())
        else:
            console.print(
                escape(answer.model_validate_json(response.content).message), highlight=False
            )

    _run(post())


def _mutation(verb: str, *, resource: str, about: str, argument: str) -> None:
    """Register ``reconciler <verb> NAME``: a POST to ``/api/v1/<resource>/NAME/<verb>``."""

    def command(
        name: str,
        server: ServerOption = DEFAULT_SERVER,
        token: TokenOption = None,
        token_file: TokenFileOption = None,
        output: OutputFormat = OutputOption,
    ) -> None:
        mutate(
            verb,
            f"/api/v1/{resource}/{quote(name, safe='')}/{verb}",
            server=server,
            token=token,
            token_file=token_file,
            output=output,
        )

    command.__doc__ = about
    # the argument's help differs per command (annotations are strings under __future__)
    metavar = "RUN_ID" if resource == "runs" else "NAME"
    command.__annotations__["name"] = Annotated[str, typer.Argument(help=argument, metavar=metavar)]
    app.command(name=verb)(command)


# -- sync, optionally waiting for its run ----------------------------------------------------

WAIT_POLL_SECONDS = 0.5
"""How often ``sync --wait`` asks for the workflow's runs."""
RUNS_SEEN_BEFORE = 50
"""How many of the workflow's latest runs ``sync --wait`` notes before asking: a manual run
outside them started after the request."""

SYNC_EXIT = {RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1, RunStatus.CANCELLED: 1}
"""``sync --wait``'s exit code by the outcome of the run; 2 is for a timeout or the daemon."""


class SyncTimedOut(RemoteError):
    """``sync --wait`` gave up before the run it caused finished (or started)."""


def _timeout(value: str | timedelta) -> timedelta:
    """Parse ``--timeout`` as the workflow format's durations (``90s``, ``5m``, ``1h``)."""
    if isinstance(value, timedelta):
        return value
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if parsed <= timedelta(0):
        raise typer.BadParameter("the timeout must be longer than 0s")
    return parsed


@app.command()
def sync(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The workflow to sync now.")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow the run the sync causes until it finishes; exit 0 if it succeeded, 1 "
            "if it failed or was cancelled, 2 on a timeout or a problem with the daemon.",
        ),
    ] = False,
    timeout: Annotated[
        timedelta,
        typer.Option(
            "--timeout",
            parser=_timeout,
            metavar="DURATION",
            show_default="5m",
            help="With --wait, how long to wait for the run to finish (e.g. 90s, 5m, 1h).",
        ),
    ] = timedelta(minutes=5),
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            metavar="KEY=VALUE",
            help="Run with this input (repeatable): a settable parameter of the workflow "
            "(spec.parameters); VALUE is read as YAML, so replicas=5 is a number and "
            "dry_run=true a boolean (quote to keep a string: version='\"1.10\"'). Applies to "
            "this one run; git's desired state stays as it is.",
        ),
    ] = None,
    inputs_file: Annotated[
        Path | None,
        typer.Option(
            "--inputs-file",
            metavar="FILE",
            help="Inputs from a YAML or JSON mapping (an --input of the same key wins).",
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Ask the daemon to check and converge a workflow now (runs even when in sync).

    With --input/--inputs-file, the run it causes has those inputs (checked by the daemon
    against the workflow's spec.parameters; a refused input exits 2 with the daemon's reason).
    With --wait, follow the manual run the sync causes and print its outcome.
    """
    given: dict[str, Any] = {}
    if inputs or inputs_file is not None:
        # the workflow format's YAML loader: imported by a sync with inputs only
        from reconciler.cli.inputs import InputsError, collect_inputs

        try:
            given = collect_inputs(inputs or [], inputs_file)
        except InputsError as exc:
            raise fail(escape(str(exc))) from None
    workflow = quote(name, safe="")
    path = f"/api/v1/workflows/{workflow}/runs" if given else f"/api/v1/workflows/{workflow}/sync"
    body = {"inputs": given} if given else None
    if not wait:
        mutate(
            "sync",
            path,
            server=server,
            token=token,
            token_file=token_file,
            output=output,
            body=body,
            answer=RunAccepted if given else Accepted,
        )
        return
    secret = _token_or_fail(token, token_file)
    run = _run(_sync_and_wait(name, path, server, secret, timeout, inputs=given))
    if output is OutputFormat.json:
        _print_json(run[1])
    else:
        _print_outcome(run[0])
    raise typer.Exit(SYNC_EXIT.get(run[0].status, 1))


def _token_or_fail(token: str | None, token_file: Path | None) -> str:
    try:
        secret = _token(token, token_file)
    except RemoteError as exc:
        raise fail(escape(str(exc))) from None
    if secret is None:
        raise fail(
            "sync needs the daemon's API token: pass --token-file, set RECONCILER_API_TOKEN or "
            "pass --token"
        )
    return secret


async def _sync_and_wait(
    name: str,
    path: str,
    server: str,
    token: str,
    within: timedelta,
    *,
    inputs: dict[str, Any],
) -> tuple[RunDetail, Any]:
    """Request the sync, then poll the workflow's runs for the manual run it caused (one not
    among the runs seen just before the request, with exactly ``inputs``) until that run has
    finished; the run's detail and its raw JSON. :class:`SyncTimedOut` after ``within``."""
    params = {"workflow": name, "limit": RUNS_SEEN_BEFORE}
    before, _ = await _get(server, "/api/v1/runs", RunList, token=token, params=params)
    seen = {r.id for r in before.runs}
    body = {"inputs": inputs} if inputs else None
    accepted = await call(server, "POST", path, token=token, body=body)
    if sys.stderr.isatty():
        answer = RunAccepted if inputs else Accepted
        err_console.print(
            escape(answer.model_validate_json(accepted.content).message), highlight=False
        )
    deadline = asyncio.get_running_loop().time() + within.total_seconds()
    run_id: str | None = None
    while True:
        if run_id is None:
            listing, _ = await _get(server, "/api/v1/runs", RunList, token=token, params=params)
            run_id = next(
                (
                    r.id
                    for r in listing.runs
                    if r.reason == "manual" and r.id not in seen and (r.inputs or {}) == inputs
                ),
                None,
            )
        if run_id is not None:
            detail, raw = await _get(server, f"/api/v1/runs/{run_id}", RunDetail, token=token)
            if detail.status is not RunStatus.RUNNING:
                return detail, raw
        if asyncio.get_running_loop().time() >= deadline:
            waited = format_duration(within)
            if run_id is None:
                raise SyncTimedOut(f"timed out after {waited} waiting for a run of {name} to start")
            raise SyncTimedOut(
                f"timed out after {waited} waiting for run {run_id[:8]} of workflow {name} to "
                "finish (it goes on in the daemon)"
            )
        await asyncio.sleep(WAIT_POLL_SECONDS)


def _print_outcome(run: RunDetail) -> None:
    """One line: the run, its workflow, how it ended and how long it took; then its error."""
    console.print(
        f"run {run.id[:8]} of workflow {escape(run.workflow)} {_styled(run.status.value)} "
        f"after {_duration(run.started_at, run.finished_at)}",
        highlight=False,
    )
    if run.error:
        console.print(f"[red]error:[/red] {escape(run.error)}", highlight=False, soft_wrap=True)


_mutation(
    "suspend",
    resource="workflows",
    about="Stop the daemon from starting runs of a workflow until it is resumed.",
    argument="The workflow to suspend.",
)
_mutation(
    "resume",
    resource="workflows",
    about="Undo a suspend; the daemon checks the workflow at once.",
    argument="The workflow to resume.",
)
_mutation(
    "cancel",
    resource="runs",
    about="Cancel a run in progress (the workflow backs off as after a failure).",
    argument="The run to cancel: its id or a unique prefix (4+ characters).",
)


# -- approvals --------------------------------------------------------------------------------


@app.command()
def approve(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID",
            help="The run waiting for approval: its id or a unique prefix (4+ characters).",
        ),
    ],
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject the run instead of approving it.")
    ] = False,
    comment: Annotated[
        str,
        typer.Option("--comment", "-m", metavar="TEXT", help="Why, in a sentence; journaled."),
    ] = "",
    request: Annotated[
        int | None,
        typer.Option(
            "--request",
            metavar="N",
            help="The REQUEST number `reconciler approvals` showed: refused if the run has "
            "moved on to another question since.",
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """Approve (or --reject) a run waiting at an approval gate.

    The journal records the token's name, the time and the comment.
    `reconciler approvals` lists the runs waiting.
    """
    verb = "reject" if reject else "approve"
    body: dict[str, Any] = {"comment": comment}
    if request is not None:
        body["request"] = request
    mutate(
        verb,
        f"/api/v1/runs/{quote(run_id, safe='')}/{verb}",
        server=server,
        token=token,
        token_file=token_file,
        output=output,
        body=body,
    )


@app.command()
def approvals(
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    output: OutputFormat = OutputOption,
) -> None:
    """List the runs waiting for an approval, oldest request first."""

    async def fetch() -> None:
        listing, raw = await _get(
            server, "/api/v1/approvals", ApprovalList, token=_token(token, token_file)
        )
        if output is OutputFormat.json:
            _print_json(raw)
            return
        table = Table()
        columns = ("RUN", "WORKFLOW", "STATE", "REQUEST", "WAITING SINCE", "APPROVERS", "QUESTION")
        for column in columns:
            table.add_column(column)
        for run in listing.runs:
            approval = run.approval
            table.add_row(
                run.id[:8],
                escape(run.workflow),
                escape(approval.state),
                str(approval.request),
                _when(approval.requested_at),
                escape(", ".join(approval.approvers) or "any operator"),
                escape(approval.message),
            )
        console.print(table)
        if not listing.runs:
            console.print("no run is waiting for approval")

    _run(fetch())


def _print_approval(approval: ApprovalOut) -> None:
    """The approval a run waits for, in the run's detail."""
    who = ", ".join(approval.approvers) or "any token with the operate role"
    console.print(
        f"[yellow]waiting for approval[/yellow] in state [bold]{escape(approval.state)}[/bold] "
        f"since {_when(approval.requested_at)} (may decide: {escape(who)})",
        highlight=False,
    )
    if approval.message:
        console.print(f"  {escape(approval.message)}", highlight=False)
    if approval.why:
        console.print(f"  started because: {escape(approval.why)}", highlight=False)
