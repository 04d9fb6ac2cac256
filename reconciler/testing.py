"""Unit-testing workflows: mocked plugins, inline ``tests:`` and a helper for pytest.

Called by: ``reconciler test`` and users' own pytest suites. It builds a
:class:`MockRegistry` over the real :class:`~reconciler.plugin.PluginRegistry`, drives a real
:class:`~reconciler.engine.runner.Engine` with an in-memory journal and test secrets, and compares
what happened with a test's expectations. ``reconciler test`` (the CLI) calls
:func:`run_inline_test` for every ``tests:`` entry of a workflow; users call
:func:`run_workflow` from their own pytest suites.

Mocks: each mocked plugin returns its scripted responses in call order (the last one repeats
once they are exhausted); an item ``{error: Name, message: ..., retryable: ...}`` raises that
error instead. A mocked plugin keeps the real plugin's ``check`` flag, declared errors and
``Response`` validation; any plugin that is not mocked fails with "plugin X is not mocked in
test 'name'" (``workflow.run`` stays real, so child workflows run with the same mocks).
Secrets resolve to ``test-secret-<name>``. Waits between retries are skipped; ``after``, ``poll``
and timeouts run in real time, so keep them short in tests or let a poll win.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from reconciler import errors
from reconciler.clock import utcnow
from reconciler.config.models import MockError, Workflow, WorkflowTest
from reconciler.engine.approvals import ApprovalDecision, ApprovalRequest
from reconciler.engine.drift import diff_subset
from reconciler.engine.journal import MemoryJournal
from reconciler.engine.runner import Engine, Observation, RunResult
from reconciler.errors import ActionError, PluginError, PluginNotFound
from reconciler.plugin import ActionContext, Plugin, PluginRegistry, Response, SubscribePlugin
from reconciler.secrets.resolver import StaticResolver

TEST_SECRET = "test-secret-{name}"
"""What every secret resolves to under test (``{name}`` is the secret's name)."""

PASSTHROUGH = frozenset({"workflow.run"})
"""Plugins that stay real unless mocked: they only drive the engine itself."""

MockItem = Mapping[str, Any] | MockError

_DYNAMIC_ERRORS: dict[tuple[str, bool | None], type[PluginError]] = {}


class AnyRequest(BaseModel):
    """The request model of a mock: accepts whatever ``with:`` renders to."""

    model_config = ConfigDict(extra="allow")


def _as_mock_error(item: MockItem) -> MockError | None:
    if isinstance(item, MockError):
        return item
    if isinstance(item.get("error"), str) and set(item) <= {"error", "message", "retryable"}:
        return MockError.model_validate(dict(item))
    return None


def error_class(name: str, declared: Iterable[type[ActionError]] = ()) -> type[ActionError]:
    """The error class a mock's ``{error: name}`` raises.

    A built-in name from :mod:`reconciler.errors`, else one the real plugin declares, else a new
    :class:`PluginError` subclass of that name (the same class for the same name).
    """
    builtin = getattr(errors, name, None)
    if isinstance(builtin, type) and issubclass(builtin, ActionError):
        return builtin
    for cls in declared:
        if cls.__name__ == name:
            return cls
    key = (name, None)
    if key not in _DYNAMIC_ERRORS:
        _DYNAMIC_ERRORS[key] = type(name, (PluginError,), {"__module__": __name__})
    return _DYNAMIC_ERRORS[key]


def make_error(spec: MockError, declared: Iterable[type[ActionError]] = ()) -> ActionError:
    cls = error_class(spec.error, declared)
    return cls(spec.message or f"mocked {spec.error}", retryable=spec.retryable)


class _Script:
    """A mocked plugin's responses, consumed in call order; the last one repeats."""

    def __init__(self, items: Iterable[MockItem]) -> None:
        self.items = list(items)
        self.position = 0

    def next(self) -> MockItem:
        if not self.items:
            return {}
        item = self.items[min(self.position, len(self.items) - 1)]
        self.position += 1
        return item

    def remaining(self) -> list[MockItem]:
        rest = self.items[self.position :]
        self.position = len(self.items)
        return rest


class MockRegistry(PluginRegistry):
    """A registry whose plugins are the scripted mocks of one test.

    ``calls`` records, per plugin name, every request a mock received (as a dict), so a pytest
    user can assert on what the workflow sent.
    """

    def __init__(
        self,
        base: PluginRegistry,
        mocks: Mapping[str, Iterable[MockItem]],
        *,
        test_name: str = "",
        passthrough: Iterable[str] = PASSTHROUGH,
    ) -> None:
        super().__init__()
        self.base = base
        self.test_name = test_name
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.scripts = {name: _Script(items) for name, items in mocks.items()}
        self.load_errors = dict(base.load_errors)
        keep = set(passthrough)
        for name in base.names():
            if name not in self.scripts and name in keep and name in base:
                self.register(name, base.get(name))
        for name in self.scripts:
            real = base.get(name) if name in base else None
            self.register(name, self._mock_class(name, real))

    def get(self, name: str) -> type[Plugin[Any, Any]]:
        try:
            return super().get(name)
        except PluginNotFound:
            cls = self._unmocked_class(name)
            self.register(name, cls)
            return cls

    def _mock_class(self, name: str, real: type[Plugin[Any, Any]] | None) -> type[Plugin[Any, Any]]:
        script = self.scripts[name]
        calls = self.calls.setdefault(name, [])
        declared: tuple[type[ActionError], ...] = real.errors if real is not None else ()

        def answer(item: MockItem) -> Any:
            failure = _as_mock_error(item)
            if failure is not None:
                raise make_error(failure, declared)
            return dict(item) if isinstance(item, Mapping) else item

        class Mock(SubscribePlugin[AnyRequest, Any]):
            __doc__ = f"Mock of {name}."

            async def run(self, request: AnyRequest, context: ActionContext) -> Any:
                calls.append(request.model_dump())
                return answer(script.next())

            async def subscribe(
                self, request: AnyRequest, context: ActionContext
            ) -> AsyncIterator[Mapping[str, Any]]:
                calls.append(request.model_dump())
                for item in script.remaining():
                    yield answer(item)
                    await asyncio.sleep(0)
                await asyncio.Event().wait()

        Mock.__name__ = Mock.__qualname__ = f"Mock[{name}]"
        Mock.name = name
        Mock.check = real.check if real is not None else False
        Mock.Request = AnyRequest
        Mock.Response = real.Response if real is not None else Response
        Mock.errors = declared
        return Mock

    def _unmocked_class(self, name: str) -> type[Plugin[Any, Any]]:
        message = f"plugin {name!r} is not mocked in test {self.test_name!r}"
        real = self.base.get(name) if name in self.base else None

        class Unmocked(Plugin[AnyRequest, Any]):
            __doc__ = f"Placeholder for un-mocked {name}."

            async def run(self, request: AnyRequest, context: ActionContext) -> Any:
                raise PluginError(message)

        Unmocked.name = name
        Unmocked.Request = AnyRequest
        Unmocked.Response = Response
        Unmocked.check = real.check if real is not None else False
        return Unmocked


def mock_registry(
    base: PluginRegistry,
    mocks: Mapping[str, Iterable[MockItem]],
    *,
    test_name: str = "",
) -> MockRegistry:
    """A :class:`MockRegistry` over ``base`` with ``mocks`` (plugin name → scripted responses)."""
    return MockRegistry(base, mocks, test_name=test_name)


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


TEST_APPROVER = "test"
"""The name the decisions of :class:`ScriptedApprovals` are given by."""


class ScriptedApprovals:
    """An approval desk that answers from a script: each gate a run reaches gets the next
    ``"approve"`` or ``"reject"``; once the script is used up, every gate gets ``then``, or
    waits when ``then`` is ``None`` (its ``after`` or the state's timeout decides), as a gate
    nobody answers does in the daemon."""

    def __init__(self, verdicts: Iterable[str] = (), *, then: str | None = None) -> None:
        self._verdicts = list(verdicts)
        self._then = then
        self.asked: list[ApprovalRequest] = []

    async def decision(self, request: ApprovalRequest) -> ApprovalDecision:
        self.asked.append(request)
        if not self._verdicts and self._then is None:
            await asyncio.Event().wait()
        verdict = self._verdicts.pop(0) if self._verdicts else self._then
        return ApprovalDecision(
            approved=verdict == "approve", by=TEST_APPROVER, comment="", at=utcnow()
        )


def _engine(
    registry: PluginRegistry,
    *,
    workflows: Mapping[str, Workflow] | None,
    secrets: Mapping[str, str] | None = None,
    approvals: Iterable[str] = (),
) -> Engine:
    return Engine(
        registry,
        journal=MemoryJournal(),
        workflows=workflows,
        secrets=StaticResolver(secrets, default=TEST_SECRET),
        retry_sleep=_no_wait,
        approvals=ScriptedApprovals(approvals),
    )


@dataclass
class TestOutcome:
    """The result of one inline test. ``failures`` are human-readable lines, empty if passed."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    path: list[str]
    end: str | None
    failures: list[str] = field(default_factory=list)
    run: RunResult | None = None
    observation: Observation | None = None


async def run_inline_test(
    workflow: Workflow,
    test: WorkflowTest,
    *,
    registry: PluginRegistry,
    workflows: Mapping[str, Workflow] | None = None,
) -> TestOutcome:
    """Run one ``tests:`` entry the way a one-shot apply would, with mocks, and check it.

    Observe (when the workflow has a probe) → in sync: no run, path ``[]`` → else run → compare
    with ``expect``: ``path`` (states entered, end state included), ``end`` (``success`` or
    ``failure``; a run that failed without reaching an end state counts as ``failure``) and
    ``outputs`` (a subset, as for ``desired``). With no expectation at all the run must succeed.

    Example::

        wf = load_workflow("db.yaml")                      # any Workflow model
        outcome = await run_inline_test(wf, wf.tests[0], registry=PluginRegistry.discover())
        assert outcome.passed, outcome.failures
    """
    mocked = mock_registry(registry, test.mocks, test_name=test.name)
    engine = _engine(mocked, workflows=workflows, approvals=test.approvals)
    inputs = dict(test.inputs)
    observation = await engine.observe(workflow, inputs=inputs)
    result: RunResult | None = None
    path: list[str] = []
    end: str | None = None
    outputs: dict[str, Any] = {}
    if observation.in_sync is not True:
        result = await engine.run(
            workflow, reason="test", observed=observation.observed, inputs=inputs
        )
        path, outputs = result.path, result.outputs
        end = "success" if result.ok else "failure"
    failures: list[str] = []
    expect = test.expect
    why = ""
    if result is None:
        why = " (no run: observe says in sync)"
    elif result.error is not None:
        why = f" ({result.error})"
    if expect.path is not None and path != expect.path:
        failures.append(f"path: expected {expect.path}, got {path}{why}")
    if expect.end is not None and end != expect.end:
        failures.append(f"end: expected {expect.end}, got {end}{why}")
    if expect.outputs is not None:
        for d in diff_subset(expect.outputs, outputs, path="outputs"):
            got = "<missing>" if d.missing else repr(d.observed)
            failures.append(f"{d.path}: expected {d.desired!r}, got {got}")
    if expect.path is None and expect.end is None and expect.outputs is None and end == "failure":
        failures.append(f"the run failed{why}")
    return TestOutcome(
        name=test.name,
        passed=not failures,
        path=path,
        end=end,
        failures=failures,
        run=result,
        observation=observation,
    )


async def arun_workflow(
    workflow: Workflow,
    *,
    mocks: Mapping[str, Iterable[MockItem]] | None = None,
    inputs: Mapping[str, Any] | None = None,
    registry: PluginRegistry | None = None,
    workflows: Mapping[str, Workflow] | None = None,
    secrets: Mapping[str, str] | None = None,
    approvals: Iterable[str] = (),
) -> RunResult:
    """Observe (if the workflow has a probe) then run ``workflow`` once; the async form.

    With ``mocks`` every plugin call is served by the mocks (un-mocked plugins fail); without,
    the real plugins of ``registry`` (default: every installed plugin) run. Secrets resolve to
    ``secrets[name]`` or ``test-secret-<name>``. ``approvals`` are the decisions (``"approve"``
    or ``"reject"``) the run's approval gates get, in order (see :class:`ScriptedApprovals`).

    Example (pytest-asyncio)::

        async def test_creates_the_database() -> None:
            result = await arun_workflow(wf, mocks={"sql.exec": [{"changed": True}]})
            assert result.path == ["create", "done"] and result.changed
    """
    base = registry if registry is not None else PluginRegistry.discover()
    effective = mock_registry(base, mocks, test_name=workflow.name) if mocks is not None else base
    engine = _engine(effective, workflows=workflows, secrets=secrets, approvals=approvals)
    observation = await engine.observe(workflow, inputs=inputs)
    return await engine.run(workflow, reason="test", observed=observation.observed, inputs=inputs)


def run_workflow(
    workflow: Workflow,
    *,
    mocks: Mapping[str, Iterable[MockItem]] | None = None,
    inputs: Mapping[str, Any] | None = None,
    registry: PluginRegistry | None = None,
    workflows: Mapping[str, Workflow] | None = None,
    secrets: Mapping[str, str] | None = None,
    approvals: Iterable[str] = (),
) -> RunResult:
    """:func:`arun_workflow` for plain (synchronous) tests: runs to completion, returns the result.

    Inside a running event loop (an ``async def`` test) it raises :class:`RuntimeError` before
    starting anything: ``await arun_workflow(...)`` there, with the same arguments.

    Example::

        def test_conflict_goes_to_cleanup() -> None:
            result = run_workflow(wf, mocks={"sql.exec": [{"error": "Conflict"}], "sql.query": [{}]})
            assert result.path[:2] == ["create", "cleanup"]
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_workflow() cannot run inside a running event loop; await arun_workflow() instead"
        )
    return asyncio.run(
        arun_workflow(
            workflow,
            mocks=mocks,
            inputs=inputs,
            registry=registry,
            workflows=workflows,
            secrets=secrets,
            approvals=approvals,
        )
    )


__all__ = [
    "TEST_SECRET",
    "AnyRequest",
    "MockRegistry",
    "ScriptedApprovals",
    "TestOutcome",
    "arun_workflow",
    "error_class",
    "mock_registry",
    "run_inline_test",
    "run_workflow",
]
