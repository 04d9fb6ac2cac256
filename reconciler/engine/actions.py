"""One run's working context and the single way the engine calls a plugin.

Called by: the state loop (``engine/machine.py``), ``engine/foreach.py``, ``engine/conditions.py``
and ``engine/checks.py``. Calls: the plugins, the expression evaluator, the journal.
:class:`RunContext` holds what one run knows (inputs, observed, outputs so far, resolved secrets,
its redactor, logger and journal) and :meth:`RunContext.call_action` renders ``with:``, validates
the request, calls the plugin under its deadline with the retry policy, validates the response and
journals the attempt. ``engine/machine.py`` drives states with it; ``engine/foreach.py``,
``engine/conditions.py`` and ``engine/checks.py`` use it for their plugin calls. Every error that
leaves this module is an :class:`ActionError` whose message has been redacted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.clock import earliest
from reconciler.config.expressions import (
    DEFAULT_COST_LIMIT,
    INLINE_COST,
    NeedsWorker,
    evaluate_async,
    fill,
    iter_templates,
    render,
)
from reconciler.config.models import Action
from reconciler.config.shellquote import render_shell, shell_fields_of
from reconciler.engine.approvals import ApprovalDesk
from reconciler.engine.journal import EventKind, Journal, JournalEntry, RunRecord
from reconciler.engine.retry import effective_policy, retry_delay
from reconciler.errors import (
    ActionError,
    InvalidRequest,
    PluginError,
    PluginNotFound,
    Timeout,
)
from reconciler.grants import Grants
from reconciler.plugin import (
    ActionContext,
    ChildRunner,
    Plugin,
    PluginRegistry,
    RunInfo,
    SubscribePlugin,
)
from reconciler.secrets.redaction import RedactingLogger, Redactor, describe_validation_error
from reconciler.types import RetryPolicy

_ABSENT = object()


class _LazyScope(Mapping[str, Any]):
    """The CEL scope of a ``with:``, built only when a ``${{ }}`` in it is evaluated."""

    __slots__ = ("_build", "_data")

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build = build
        self._data: dict[str, Any] | None = None

    def _scope(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._build()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._scope()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope())

    def __len__(self) -> int:
        return len(self._scope())


def _split_shell(
    with_: Mapping[str, Any], fields: Iterable[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``with:`` without its shell-text fields, and those fields (rendered apart: each value in
    them becomes one quoted shell word)."""
    data = dict(with_)
    shell = {k: data.pop(k) for k in fields if isinstance(data.get(k), str)}
    return data, shell


def _said(exc: BaseException) -> str:
    """What ``exc`` says, except a pydantic error's input values (they may hold secrets)."""
    return describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)


@dataclass
class RunContext:
    """What one run (or one observe probe) knows while it executes.

    ``outputs`` hold raw responses (they feed CEL); anything written out goes through
    :attr:`redactor` first. ``journal`` is ``None`` for an observe probe, which records nothing.
    """

    registry: PluginRegistry
    record: RunRecord
    redactor: Redactor
    logger: RedactingLogger
    journal: Journal | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    observed: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=Path.cwd)
    grants: Grants | None = None
    run_child: ChildRunner | None = None
    clock: Callable[[], float] | None = None
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    """How retry waits are spent (the test harness skips them)."""
    ready: Callable[[Plugin[Any, Any]], Awaitable[None]] | None = None
    """Makes sure a plugin's ``init()`` ran once before its first call (the engine's)."""
    cost_limit: int = DEFAULT_COST_LIMIT
    """Budget of one CEL evaluation (``expression_cost_limit``)."""
    approvals: ApprovalDesk | None = None
    """Where ``approval`` conditions get their decisions (``None``: nobody can approve)."""
    changed: bool = False
    seq: int = 0
    visit: int = 0
    """The ``seq`` of the run's last ``transition`` entry (0 before the first): entries after it
    belong to the visit of the current state, across resumptions too."""
    _snapshot: tuple[dict[str, Any], int, tuple[tuple[str, Any], ...], dict[str, Any]] | None = (
        field(default=None, init=False, repr=False)
    )
    """The cache of :meth:`outputs_snapshot`: (outputs dict, number of secret values known,
    the outputs' items, their redacted copy)."""
    _run_info: RunInfo | None = field(default=None, init=False, repr=False)
    """The last :meth:`run_info` (immutable), reused while the record agrees with it."""

    # -- time, scope, redaction -------------------------------------------------------------

    def now(self) -> float:
        return self.clock() if self.clock is not None else asyncio.get_running_loop().time()

    def run_info(self, attempt: int | None = None) -> RunInfo:
        record = self.record
        if attempt is None:
            attempt = record.attempt
        info = self._run_info
        if (  # every plugin call asks twice: reuse it while the record says the same
            info is None
            or info.attempt != attempt
            or info.id is not record.id
            or info.revision is not record.revision
            or info.workflow is not record.workflow
            or info.parent_id is not record.parent_id
        ):
            info = self._run_info = RunInfo(
                id=record.id,
                workflow=record.workflow,
                revision=record.revision,
                attempt=attempt,
                parent_id=record.parent_id,
            )
        return info

    def scope(
        self,
        *,
        with_secrets: bool = False,
        extra: Mapping[str, Any] | None = None,
        attempt: int | None = None,
    ) -> dict[str, Any]:
        """CEL variables: inputs, observed, outputs, run (+ secrets only for ``with:``)."""
        scope: dict[str, Any] = {
            "inputs": self.inputs,
            "observed": self.observed if self.observed is not None else {},
            "outputs": self.outputs,
            "run": self.run_info(attempt).as_scope(),
        }
        if with_secrets:
            scope["secrets"] = self.secrets
        if extra:
            scope.update(extra)
        return scope

    def redact_error(self, err: ActionError) -> ActionError:
        """Mask secrets in an error's message, args and details (in place); returns it."""
        err.message = self.redactor.redact(err.message)
        err.args = tuple(self.redactor.redact(a) if isinstance(a, str) else a for a in err.args)
        err.details = self.redactor.redact_obj(err.details)
        return err

    def error_detail(self, err: ActionError) -> dict[str, str]:
        return {"name": err.name, "message": self.redactor.redact(err.message)}

    def failure_detail(self, err: ActionError) -> dict[str, Any]:
        """:meth:`error_detail` plus the error's redacted ``details`` (a command's exit code
        and output tails, a server's message, a response body excerpt), for the journal entry of
        the failed attempt: what ``/api/v1/runs/{id}`` and ``reconciler runs ID`` show of why."""
        detail: dict[str, Any] = dict(self.error_detail(err))
        if err.details:
            detail["details"] = self.redactor.redact_obj(err.details)
        return detail

    def redacted_outputs(self) -> dict[str, Any]:
        """A fresh redacted copy of :attr:`outputs` (top level copied; values shared)."""
        return dict(self.outputs_snapshot())

    def outputs_snapshot(self) -> dict[str, Any]:
        """The redacted outputs as of now, shared until :attr:`outputs` changes: do not mutate.

        Every ``transition`` entry carries the outputs; most states add none, so the redacted
        copy is kept and reused while ``outputs`` is the same dict holding the same values
        (compared by identity — outputs are plugin responses, never changed in place).
        """
        outputs = self.outputs
        secrets = len(self.redactor)
        cached = self._snapshot
        if cached is not None and cached[0] is outputs and cached[1] == secrets:
            items = cached[2]
            if len(items) == len(outputs):
                get = outputs.get
                if not items or all(get(k, _ABSENT) is v for k, v in items):
                    return cached[3]
        snapshot: dict[str, Any] = self.redactor.redact_obj(outputs) if secrets else dict(outputs)
        self._snapshot = (outputs, secrets, tuple(outputs.items()), snapshot)
        return snapshot

    async def write(
        self,
        kind: EventKind,
        *,
        state: str | None = None,
        to_state: str | None = None,
        outcome: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append a journal entry (detail redacted); no-op for an observe probe.

        The runner's state loop builds its ``state_entered``/``transition`` entries itself, from
        parts already redacted (:meth:`outputs_snapshot`, :meth:`error_detail`).
        """
        if self.journal is None:
            return
        if detail is None:
            detail = {}
        elif len(self.redactor):
            detail = self.redactor.redact_obj(detail)
        self.seq += 1
        await self.journal.record(
            JournalEntry(
                run_id=self.record.id,
                seq=self.seq,
                kind=kind,
                state=state,
                to_state=to_state,
                outcome=outcome,
                detail=detail,
            )
        )

    # -- plugin calls ---------------------------------------------------------------------

    def plugin(self, name: str) -> tuple[type[Plugin[Any, Any]], Plugin[Any, Any]]:
        try:
            return self.registry.get(name), self.registry.instance(name)
        except PluginNotFound as exc:
            raise PluginError(str(exc)) from None

    def render_inline(
        self,
        plugin_cls: type[Plugin[Any, Any]],
        with_: Mapping[str, Any],
        *,
        extra: Mapping[str, Any] | None = None,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """``with:`` rendered on the event loop, shell-text fields quoted word by word.

        Raises :class:`NeedsWorker` when a ``${{ }}`` is too expensive to evaluate here: the
        caller then renders with :meth:`render_in_worker`. Errors are redacted.
        """
        if not with_:  # nothing to render (many actions take no arguments)
            return {}
        scope = _LazyScope(lambda: self.scope(with_secrets=True, extra=extra, attempt=attempt))
        try:
            fields = shell_fields_of(plugin_cls.Request)
            data: Mapping[str, Any] = with_
            shell: Mapping[str, Any] = {}
            if fields and any(k in with_ for k in fields):
                data, shell = _split_shell(with_, fields)
            rendered: dict[str, Any] = render(
                data, scope, cost_limit=self.cost_limit, inline_limit=INLINE_COST
            )
            for k, text in shell.items():  # shell text: each value one quoted word
                rendered[k] = render_shell(
                    text, scope, cost_limit=self.cost_limit, inline_limit=INLINE_COST
                )
        except ActionError as err:
            raise self.redact_error(err) from None
        return rendered

    async def render_in_worker(
        self,
        plugin_cls: type[Plugin[Any, Any]],
        with_: Mapping[str, Any],
        *,
        extra: Mapping[str, Any] | None = None,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """:meth:`render_inline`, expensive expressions evaluated in the worker process
        (:func:`~reconciler.config.expressions.evaluate_async`)."""
        scope = self.scope(with_secrets=True, extra=extra, attempt=attempt)
        fields = shell_fields_of(plugin_cls.Request)
        try:
            values: dict[str, Any] = {}
            for source in dict.fromkeys(iter_templates(dict(with_))):
                values[source] = await evaluate_async(source, scope, cost_limit=self.cost_limit)
            data, shell = _split_shell(with_, fields)
            rendered: dict[str, Any] = fill(data, values)
            for k, text in shell.items():
                rendered[k] = render_shell(text, scope, values=values)
        except ActionError as err:
            raise self.redact_error(err) from None
        return rendered

    def prepare(
        self,
        plugin_name: str,
        plugin_cls: type[Plugin[Any, Any]],
        rendered: dict[str, Any],
        *,
        key: str,
        deadline: float | None = None,
        attempt: int = 1,
        state: str | None = None,
    ) -> tuple[BaseModel, ActionContext]:
        """Validate a rendered request and build the plugin's context (no call yet)."""
        try:
            request = plugin_cls.Request.model_validate(rendered)
        except ValidationError as exc:
            raise InvalidRequest(
                self.redactor.redact(f"{plugin_name}: {describe_validation_error(exc)}"),
                details={"plugin": plugin_name},
            ) from None
        context = ActionContext(
            run=self.run_info(attempt),
            idempotency_key=key,
            logger=self.logger.bind(state=state, plugin=plugin_name, attempt=attempt),
            workdir=self.workdir,
            grants=self.grants,
            redact=self.redactor.redact,
            run_child=self.run_child,
            deadline=deadline,
        )
        return request, context

    async def call_once(
        self,
        plugin_name: str,
        with_: Mapping[str, Any],
        *,
        key: str,
        time_limit: float | None = None,
        deadline: float | None = None,
        extra: Mapping[str, Any] | None = None,
        attempt: int = 1,
        state: str | None = None,
        found: tuple[type[Plugin[Any, Any]], Plugin[Any, Any]] | None = None,
    ) -> dict[str, Any]:
        """One try: render, validate, call (under ``time_limit``), validate the response.

        Returns the response as JSON-able data (by alias). ``deadline`` (event-loop time) is the
        outer limit the plugin is told about; ``time_limit`` (seconds) is this call's own limit.
        ``found`` is what :meth:`plugin` returned for ``plugin_name``, when the caller has it.
        """
        own_deadline = self.now() + time_limit if time_limit is not None else None
        plugin_cls, plugin = found if found is not None else self.plugin(plugin_name)
        try:  # inline: most requests are cheap to render, and an await per call adds up
            rendered = self.render_inline(plugin_cls, with_, extra=extra, attempt=attempt)
        except NeedsWorker:
            rendered = await self.render_in_worker(plugin_cls, with_, extra=extra, attempt=attempt)
        request, context = self.prepare(
            plugin_name,
            plugin_cls,
            rendered,
            key=key,
            deadline=earliest(own_deadline, deadline),
            attempt=attempt,
            state=state,
        )
        try:
            if own_deadline is None:  # no timer to arm
                response = await self._invoke(plugin, request, context)
            else:
                async with asyncio.timeout_at(own_deadline):
                    response = await self._invoke(plugin, request, context)
        except ActionError as err:
            raise self.redact_error(err) from None
        except TimeoutError:
            limit = f" after {time_limit:g}s" if time_limit is not None else ""
            raise Timeout(f"{plugin_name} timed out{limit}") from None
        except Exception as exc:  # a plugin bug must never crash the run loop
            raise PluginError(
                self.redactor.redact(f"{plugin_name} raised {type(exc).__name__}: {_said(exc)}")
            ) from None
        return self.validate_response(plugin_name, plugin_cls, response=response)

    async def _invoke(
        self, plugin: Plugin[Any, Any], request: BaseModel, context: ActionContext
    ) -> Any:
        if self.ready is not None:
            await self.ready(plugin)
        return await plugin.run(request, context)

    def validate_response(
        self, plugin_name: str, plugin_cls: type[Plugin[Any, Any]], *, response: Any
    ) -> dict[str, Any]:
        model = plugin_cls.Response
        try:
            if not isinstance(response, model):
                data = response.model_dump() if isinstance(response, BaseModel) else response
                response = model.model_validate(data)
        except ValidationError as exc:
            raise PluginError(
                self.redactor.redact(
                    f"{plugin_name} returned an invalid response: {describe_validation_error(exc)}"
                )
            ) from None
        dumped: dict[str, Any] = response.model_dump(by_alias=True, mode="json")
        return dumped

    async def call_action(
        self,
        action: Action,
        *,
        state: str | None,
        index: int,
        key: str,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        extra: Mapping[str, Any] | None = None,
        kind: EventKind = EventKind.ACTION,
        detail: Mapping[str, Any] | None = None,
        count_changes: bool = True,
    ) -> dict[str, Any]:
        """Call ``action`` with its retry policy, journaling every attempt.

        Returns the response data; raises the last (redacted) :class:`ActionError`. A
        non-retryable error stops the retries at once. Keeps ``outputs[as]`` only when called for
        a plain state (the caller decides; foreach keeps per-item results instead).
        """
        try:
            found = self.plugin(action.plugin)
        except PluginError as err:
            failed = {"plugin": action.plugin, "index": index, "attempt": 1, **(detail or {})}
            failed.update(ok=False, changed=False, error=self.error_detail(err), duration=0.0)
            await self.write(kind, state=state, outcome=err.name, detail=failed)
            raise
        policy = effective_policy(retry, found[0])
        timeout = action.timeout.total_seconds() if action.timeout is not None else None
        attempt = 1
        while True:
            started = self.now()
            entry: dict[str, Any] = {
                "plugin": action.plugin,
                "index": index,
                "attempt": attempt,
                **(detail or {}),
            }
            try:
                data = await self.call_once(
                    action.plugin,
                    action.with_,
                    key=key,
                    time_limit=timeout,
                    deadline=deadline,
                    extra=extra,
                    attempt=attempt,
                    state=state,
                    found=found,
                )
            except ActionError as err:
                entry.update(
                    ok=False,
                    changed=False,
                    error=self.failure_detail(err),
                    duration=round(self.now() - started, 6),
                )
                await self.write(kind, state=state, outcome=err.name, detail=entry)
                self.logger.warning(
                    "action failed", state=state, plugin=action.plugin, error=str(err)
                )
                if attempt >= policy.attempts or not err.retryable:
                    raise
                await self.sleep(retry_delay(policy, attempt, rng=self.rng))
                attempt += 1
                continue
            changed = bool(data.get("changed"))
            if count_changes and changed:
                self.changed = True
            entry.update(ok=True, changed=changed, duration=round(self.now() - started, 6))
            await self.write(kind, state=state, outcome="success", detail=entry)
            return data

    async def subscribe(
        self,
        plugin_name: str,
        with_: Mapping[str, Any],
        *,
        key: str,
        state: str | None = None,
    ) -> AsyncIterator[Mapping[str, Any]]:
        """The message stream of a subscribe plugin (closed by the caller with ``aclose``)."""
        plugin_cls, plugin = self.plugin(plugin_name)
        try:
            rendered = self.render_inline(plugin_cls, with_)
        except NeedsWorker:
            rendered = await self.render_in_worker(plugin_cls, with_)
        request, context = self.prepare(plugin_name, plugin_cls, rendered, key=key, state=state)
        if not isinstance(plugin, SubscribePlugin):
            raise InvalidRequest(f"{plugin_name} cannot be used in `subscribe`")
        if self.ready is not None:
            await self.ready(plugin)
        return plugin.subscribe(request, context)
