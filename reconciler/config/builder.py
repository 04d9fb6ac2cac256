"""A small fluent Python API that produces exactly the :class:`Workflow` a YAML file would.

Where it sits: beside the loader. :mod:`reconciler.config.loader` turns YAML files into
:class:`~reconciler.config.models.Workflow` models; this module turns Python calls into the same
models, for people who generate workflows, test them with :mod:`reconciler.testing`, or feed the
engine (:mod:`reconciler.engine`) directly. It writes nothing and runs nothing.

The builder assembles the YAML-shaped document (camelCase keys, ``with``/``as``/``on``) and
:meth:`WorkflowBuilder.build` validates it with :meth:`Workflow.model_validate`, so what callers
may rely on is:

* a built workflow is equal (``==``) to the model of the equivalent YAML file, shorthands included
  (``next=``/``on_error=`` are the YAML ``next``/``onError``);
* invalid input fails with the same pydantic ``ValidationError`` the YAML would get; only misuse
  that YAML cannot even express (a state defined twice, ``on()`` without a name) raises
  :class:`~reconciler.errors.ConfigError` at the call;
* :meth:`WorkflowBuilder.to_dict` / :meth:`WorkflowBuilder.to_yaml` give the document itself, to be
  committed to git and loaded by the daemon.

Example::

    wf = (WorkflowBuilder("nightly-report", labels={"team": "sre"})
          .inputs(day="mon").interval("5m")
          .state("render",
                 do=[action("file.write", path="out.txt", content="${{ inputs.day }}",
                            as_="written")],
                 next="done", on_error="failed")
          .end("done").end("failed", "failure")
          .build())

The helpers return plain dicts in the YAML shape (``action(...)`` is ``{"plugin": ..., "with":
{...}}``), so they can be mixed with hand-written dicts or existing models.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel

from reconciler.config.models import Workflow
from reconciler.errors import ConfigError
from reconciler.types import format_duration

Spec = dict[str, Any]
"""A piece of the workflow document in its YAML shape (camelCase keys)."""

DurationLike = str | timedelta | int | float
"""``"30s"``, ``"1h30m"``, a :class:`timedelta` or a number of seconds."""

Item = Mapping[str, Any] | BaseModel
"""A helper's dict, a hand-written dict in YAML shape, or a model from :mod:`.models`."""


def _duration(value: DurationLike) -> str | int | float:
    return format_duration(value) if isinstance(value, timedelta) else value


def _doc(item: Item) -> Spec:
    """A YAML-shaped dict from a helper's dict or a model (copied: builders never share state)."""
    if isinstance(item, BaseModel):
        return item.model_dump(by_alias=True, exclude_none=True, mode="json")
    return copy.deepcopy(dict(item))


def _request(request: Mapping[str, Any] | None, with_: Mapping[str, Any]) -> Spec:
    merged = dict(request or {})
    merged.update(with_)
    return merged


# --- helpers: actions and transitions ---------------------------------------------------------


def action(
    plugin: str,
    *,
    as_: str | None = None,
    timeout: DurationLike | None = None,
    request: Mapping[str, Any] | None = None,
    **with_: Any,
) -> Spec:
    """One plugin call: ``action("file.read", path="motd")`` is ``{plugin, with: {path}}``.

    Request fields are keyword arguments, written as the plugin spells them (``makeDirs=True``).
    A field whose name is not a Python identifier or collides with ``as_``/``timeout``/``request``
    goes in ``request={...}`` (e.g. ``http.check``'s own ``timeout``).
    """
    doc: Spec = {"plugin": plugin, "with": _request(request, with_)}
    if as_ is not None:
        doc["as"] = as_
    if timeout is not None:
        doc["timeout"] = _duration(timeout)
    return doc


def on(to: str, *names: str) -> Spec:
    """Leave for ``to`` when the actions ended with one of ``names`` (``success``, ``error``,
    or error names such as ``Conflict``; an ancestor's name catches its descendants)."""
    if not names:
        raise ConfigError(f"on({to!r}) needs at least one name: 'success', 'error' or an error")
    return {"to": to, "on": list(names)}


def when(to: str, expr: str) -> Spec:
    """A choice: after the actions succeeded, go to ``to`` if the CEL ``expr`` is true."""
    return {"to": to, "when": expr}


def after(to: str, duration: DurationLike) -> Spec:
    """Go to ``to`` once ``duration`` has passed in the state (races other conditions)."""
    return {"to": to, "after": _duration(duration)}


def poll(
    to: str,
    plugin: str,
    *,
    until: str,
    every: DurationLike | None = None,
    request: Mapping[str, Any] | None = None,
    **with_: Any,
) -> Spec:
    """Call the check ``plugin`` every ``every`` until the CEL ``until`` (over ``result``) holds."""
    body: Spec = {"plugin": plugin, "with": _request(request, with_), "until": until}
    if every is not None:
        body["every"] = _duration(every)
    return {"to": to, "poll": body}


def subscribe(
    to: str,
    plugin: str,
    *,
    match: str | None = None,
    request: Mapping[str, Any] | None = None,
    **with_: Any,
) -> Spec:
    """Wait for a message from ``plugin`` satisfying the CEL ``match`` (over ``message``)."""
    body: Spec = {"plugin": plugin, "with": _request(request, with_)}
    if match is not None:
        body["match"] = match
    return {"to": to, "subscribe": body}


def approval(
    to: str,
    *,
    message: str = "",
    approvers: Sequence[str] = (),
    separate_requester: bool = False,
) -> Spec:
    """Go to ``to`` once a person approves the run (a rejection fails the state with
    ``ApprovalRejected`` instead); races the state's other conditions."""
    body: Spec = {}
    if message:
        body["message"] = message
    if approvers:
        body["approvers"] = list(approvers)
    if separate_requester:
        body["separateRequester"] = True
    return {"to": to, "approval": body}


def default(to: str) -> Spec:
    """The default branch: taken when no other transition fired."""
    return {"to": to}


def foreach(
    items: str | list[Any],
    *do: Item,
    as_: str | None = None,
    concurrency: int | None = None,
    tolerate: int | str | None = None,
) -> Spec:
    """Run ``do`` once per item (CEL string or list), ``concurrency`` at a time; ``tolerate`` is a
    count or a percentage such as ``"10%"``. Pass the result as ``state(..., foreach=...)``."""
    doc: Spec = {"items": copy.deepcopy(items), "do": [_doc(a) for a in do]}
    if as_ is not None:
        doc["as"] = as_
    if concurrency is not None:
        doc["concurrency"] = concurrency
    if tolerate is not None:
        doc["tolerate"] = tolerate
    return doc


def retry(
    attempts: int,
    *,
    delay: DurationLike | None = None,
    backoff: float | None = None,
    max_delay: DurationLike | None = None,
    jitter: Literal["none", "full", "equal"] | None = None,
) -> Spec:
    """A retry policy for ``state(..., retry=...)``; omitted fields keep the format's defaults."""
    doc: Spec = {"attempts": attempts}
    if delay is not None:
        doc["delay"] = _duration(delay)
    if backoff is not None:
        doc["backoff"] = backoff
    if max_delay is not None:
        doc["maxDelay"] = _duration(max_delay)
    if jitter is not None:
        doc["jitter"] = jitter
    return doc


def mock_error(name: str, message: str = "", *, retryable: bool | None = None) -> Spec:
    """A mocked plugin call that raises the error ``name`` (for :meth:`WorkflowBuilder.test`)."""
    doc: Spec = {"error": name}
    if message:
        doc["message"] = message
    if retryable is not None:
        doc["retryable"] = retryable
    return doc


# --- the builder ------------------------------------------------------------------------------


class WorkflowBuilder:
    """Collects a workflow call by call; every method returns the builder itself.

    The first state added is ``start`` unless :meth:`start` names another. The builder can be
    built several times and keeps no reference to the dicts passed in.
    """

    def __init__(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self._metadata: Spec = {"name": name}
        if labels:
            self._metadata["labels"] = dict(labels)
        if annotations:
            self._metadata["annotations"] = dict(annotations)
        self._spec: Spec = {}
        self._start: str | None = None
        self._states: dict[str, Spec] = {}
        self._tests: list[Spec] = []

    # schedule and run settings

    def interval(self, every: DurationLike) -> Self:
        """Drift re-check cadence (``spec.interval``)."""
        self._spec["interval"] = _duration(every)
        return self

    def cron(self, expr: str) -> Self:
        """Drift re-check as a 5-field cron expression (``spec.cron``)."""
        self._spec["cron"] = expr
        return self

    def timeout(self, deadline: DurationLike) -> Self:
        """Deadline of a whole run (``spec.timeout``)."""
        self._spec["timeout"] = _duration(deadline)
        return self

    def depends_on(self, *names: str) -> Self:
        """Converge only after these workflows (``spec.dependsOn``); adds to earlier calls."""
        self._spec.setdefault("dependsOn", []).extend(names)
        return self

    def suspend(self, value: bool = True) -> Self:
        self._spec["suspend"] = value
        return self

    def on_delete(self, state: str) -> Self:
        """State to run when the workflow is removed from git (``spec.onDelete``)."""
        self._spec["onDelete"] = state
        return self

    # desired and observed state

    def inputs(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> Self:
        """The desired state (``spec.inputs``); merged over earlier calls."""
        merged = self._spec.setdefault("inputs", {})
        merged.update(copy.deepcopy(dict(values or {})))
        merged.update(copy.deepcopy(more))
        return self

    def secrets(self, refs: Mapping[str, str] | None = None, /, **more: str) -> Self:
        """Secret references such as ``env:NAME`` or ``vault:path#key`` (``spec.secrets``)."""
        merged = self._spec.setdefault("secrets", {})
        merged.update(dict(refs or {}))
        merged.update(more)
        return self

    def observe(
        self,
        plugin: str | Item,
        /,
        *,
        request: Mapping[str, Any] | None = None,
        **with_: Any,
    ) -> Self:
        """The read-only probe: ``observe("file.read", path="x")`` or ``observe(action(...))``."""
        if isinstance(plugin, str):
            self._spec["observe"] = action(plugin, request=request, **with_)
        else:
            self._spec["observe"] = _doc(plugin)
        return self

    def desired(self, value: Any) -> Self:
        """What ``observe`` must return (a subset of it)."""
        self._spec["desired"] = copy.deepcopy(value)
        return self

    def in_sync(self, expr: str) -> Self:
        """CEL over ``observed`` deciding "in sync", instead of :meth:`desired`."""
        self._spec["inSync"] = expr
        return self

    def checks(
        self,
        *,
        pre: Iterable[Item] = (),
        during: Iterable[Item] = (),
        during_every: DurationLike | None = None,
        post: Iterable[Item] = (),
    ) -> Self:
        """Health gates: ``pre`` blocks a run, ``during`` aborts it, ``post`` fails it."""
        doc: Spec = {}
        if pre:
            doc["pre"] = [_doc(a) for a in pre]
        during_list = [_doc(a) for a in during]
        if during_list or during_every is not None:
            body: Spec = {"checks": during_list}
            if during_every is not None:
                body["every"] = _duration(during_every)
            doc["during"] = body
        if post:
            doc["post"] = [_doc(a) for a in post]
        self._spec["checks"] = doc
        return self

    # the machine

    def start(self, state: str) -> Self:
        """The first state of a run (default: the first state added)."""
        self._start = state
        return self

    def state(
        self,
        name: str,
        /,
        *transitions: Item,
        do: Iterable[Item] | None = None,
        action: Item | None = None,
        foreach: Item | None = None,
        retry: Item | None = None,
        timeout: DurationLike | None = None,
        next: str | None = None,
        on_error: str | None = None,
    ) -> Self:
        """A state: actions (``do``, ``action`` or ``foreach``), then transitions in priority
        order; ``next``/``on_error`` are the YAML shorthands and come after ``transitions``."""
        doc: Spec = {}
        if do is not None:
            doc["do"] = [_doc(a) for a in do]
        if action is not None:
            doc["action"] = _doc(action)
        if foreach is not None:
            doc["foreach"] = _doc(foreach)
        if retry is not None:
            doc["retry"] = _doc(retry)
        if timeout is not None:
            doc["timeout"] = _duration(timeout)
        if transitions:
            doc["transitions"] = [_doc(t) for t in transitions]
        if next is not None:
            doc["next"] = next
        if on_error is not None:
            doc["onError"] = on_error
        return self._add_state(name, doc)

    def end(self, name: str, outcome: Literal["success", "failure"] = "success") -> Self:
        """An end state: the run finishes with ``outcome``."""
        return self._add_state(name, {"end": outcome})

    def _add_state(self, name: str, doc: Spec) -> Self:
        if name in self._states:
            raise ConfigError(f"state {name!r} is defined twice in workflow {self.name!r}")
        self._states[name] = doc
        return self

    # inline tests

    def test(
        self,
        name: str,
        *,
        mocks: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
        inputs: Mapping[str, Any] | None = None,
        path: Iterable[str] | None = None,
        end: Literal["success", "failure"] | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> Self:
        """An inline test (``tests:``): per plugin, the responses its calls return in order
        (:func:`mock_error` for a raised error); then the expected path, end and outputs."""
        doc: Spec = {"name": name}
        if inputs:
            doc["inputs"] = copy.deepcopy(dict(inputs))
        if mocks:
            doc["mocks"] = {p: [copy.deepcopy(dict(r)) for r in rs] for p, rs in mocks.items()}
        expect: Spec = {}
        if path is not None:
            expect["path"] = list(path)
        if end is not None:
            expect["end"] = end
        if outputs is not None:
            expect["outputs"] = copy.deepcopy(dict(outputs))
        if expect:
            doc["expect"] = expect
        self._tests.append(doc)
        return self

    # results

    @property
    def name(self) -> str:
        return str(self._metadata["name"])

    def to_dict(self) -> Spec:
        """The workflow document in its YAML shape (a fresh copy on every call)."""
        spec: Spec = copy.deepcopy(self._spec)
        start = self._start if self._start is not None else next(iter(self._states), None)
        if start is not None:
            spec["start"] = start
        spec["states"] = copy.deepcopy(self._states)
        doc: Spec = {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": copy.deepcopy(self._metadata),
            "spec": spec,
        }
        if self._tests:
            doc["tests"] = copy.deepcopy(self._tests)
        return doc

    def to_yaml(self) -> str:
        """The document as YAML, ready to commit (``on`` keys are quoted for YAML 1.1 readers)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def build(self) -> Workflow:
        """Validate and return the model; raises pydantic's ``ValidationError`` like YAML would."""
        return Workflow.model_validate(self.to_dict())


__all__ = [
    "WorkflowBuilder",
    "action",
    "after",
    "approval",
    "default",
    "foreach",
    "mock_error",
    "on",
    "poll",
    "retry",
    "subscribe",
    "when",
]
