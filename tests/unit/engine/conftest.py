"""Small real plugins and builders shared by the engine's unit tests.

The plugins are genuine :class:`reconciler.plugin.Plugin` subclasses (sleepers, failers, echoes,
a subscribe source, a health check) that remember what happened to them, so the tests can assert
on calls, idempotency keys, concurrency and cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from reconciler import errors
from reconciler.config.models import Workflow
from reconciler.engine.journal import JournalEntry, MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.plugin import (
    ActionContext,
    Plugin,
    PluginRegistry,
    Request,
    Response,
    SubscribePlugin,
)


class EchoRequest(Request):
    value: Any = None
    changed: bool = False


class EchoResponse(Response):
    value: Any = None


class Echo(Plugin[EchoRequest, EchoResponse]):
    """Returns its value; remembers every call's value, key and attempt."""

    Request = EchoRequest
    Response = EchoResponse

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def run(self, request: EchoRequest, context: ActionContext) -> EchoResponse:
        self.calls.append(
            {"value": request.value, "key": context.idempotency_key, "attempt": context.run.attempt}
        )
        context.logger.info("echo", value=request.value)
        return EchoResponse(value=request.value, changed=request.changed)


class FailRequest(Request):
    error: str = "PluginError"
    message: str = ""
    times: int = -1
    """Fail this many calls, then succeed; -1 fails forever."""


class Fail(Plugin[FailRequest, Response]):
    """Raises the named error from reconciler.errors (``times`` times, then succeeds)."""

    Request = FailRequest
    Response = Response

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def run(self, request: FailRequest, context: ActionContext) -> Response:
        self.calls.append(
            {
                "key": context.idempotency_key,
                "attempt": context.run.attempt,
                "at": asyncio.get_running_loop().time(),
            }
        )
        if request.times < 0 or len(self.calls) <= request.times:
            raise getattr(errors, request.error)(request.message)
        return Response(changed=True)


class SleepRequest(Request):
    seconds: float = 0.0
    value: Any = None


class Sleep(Plugin[SleepRequest, EchoResponse]):
    """Sleeps; tracks how many calls are in flight and whether any was cancelled."""

    Request = SleepRequest
    Response = EchoResponse

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0
        self.finished = 0
        self.started = asyncio.Event()

    async def run(self, request: SleepRequest, context: ActionContext) -> EchoResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.set()
        try:
            await asyncio.sleep(request.seconds)  # a slow plugin: the work takes this long
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        self.finished += 1
        return EchoResponse(value=request.value)


class ProbeRequest(Request):
    value: Any = None
    seconds: float = 0.0


class Probe(Plugin[ProbeRequest, EchoResponse]):
    """A read-only check: returns its value after ``seconds``; records cancellation."""

    check = True
    Request = ProbeRequest
    Response = EchoResponse

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0

    async def run(self, request: ProbeRequest, context: ActionContext) -> EchoResponse:
        self.calls += 1
        try:
            await asyncio.sleep(request.seconds)  # a slow probe: it takes this long to answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return EchoResponse(value=request.value)


class HealthRequest(Request):
    fail_after: int = -1
    """Healthy for this many calls, then unhealthy; -1 is always healthy."""


class Health(Plugin[HealthRequest, Response]):
    """A check plugin that turns unhealthy after ``fail_after`` calls."""

    check = True
    Request = HealthRequest
    Response = Response

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, request: HealthRequest, context: ActionContext) -> Response:
        self.calls += 1
        if request.fail_after >= 0 and self.calls > request.fail_after:
            raise errors.ConnectionFailed("health endpoint says down")
        return Response()


class MessagesRequest(Request):
    messages: list[dict[str, Any]] = []
    gap: float = 0.01


class Messages(SubscribePlugin[MessagesRequest, Response]):
    """Yields the given messages ``gap`` seconds apart, then waits forever."""

    check = True
    Request = MessagesRequest
    Response = Response

    def __init__(self) -> None:
        self.delivered = 0
        self.closed = 0
        self.cancelled = 0

    async def run(self, request: MessagesRequest, context: ActionContext) -> Response:
        return Response()

    async def subscribe(
        self, request: MessagesRequest, context: ActionContext
    ) -> AsyncIterator[Mapping[str, Any]]:
        try:
            for message in request.messages:
                await asyncio.sleep(request.gap)  # a slow source: messages come this far apart
                self.delivered += 1
                yield message
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.closed += 1


PLUGINS: dict[str, type[Plugin[Any, Any]]] = {
    "test.echo": Echo,
    "test.fail": Fail,
    "test.sleep": Sleep,
    "test.probe": Probe,
    "test.health": Health,
    "test.messages": Messages,
}


def make_registry() -> PluginRegistry:
    registry = PluginRegistry()
    for name, cls in PLUGINS.items():
        registry.register(name, cls)
    from reconciler_plugins.workflow import WorkflowRun

    registry.register("workflow.run", WorkflowRun)
    return registry


def workflow(
    states: dict[str, Any], *, start: str | None = None, name: str = "wf", **spec: Any
) -> Workflow:
    """A Workflow from plain dicts (camelCase keys, as in YAML)."""
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {"start": start or next(iter(states)), "states": states, **spec},
        }
    )


@pytest.fixture
def registry() -> PluginRegistry:
    return make_registry()


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def engine(registry: PluginRegistry, journal: MemoryJournal) -> Engine:
    return Engine(registry, journal=journal)


@pytest.fixture
def wf() -> Any:
    """The :func:`workflow` builder (conftest modules are not importable from tests)."""
    return workflow


@pytest.fixture
def entries(journal: MemoryJournal) -> Any:
    """``await entries(run_id)``: the journal entries of a run, in order."""

    async def get(run_id: str) -> list[JournalEntry]:
        return await journal.entries(run_id)

    return get
