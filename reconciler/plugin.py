"""The plugin contract: what a plugin author writes and what the engine gives it.

A plugin does one kind of work (``file.write``, ``sql.exec``, ...). It declares a pydantic
``Request`` (validated at load time, so a typo in ``with:`` fails ``reconciler validate``), a
``Response``, and an async :meth:`Plugin.run`. It knows nothing of the engine beyond its request,
its response and the :class:`ActionContext` it is handed.

Plugins are found through the entry-point group ``reconciler.plugins``; the built-in ones register
the same way a third-party package does::

    [project.entry-points."reconciler.plugins"]
    "acme.deploy" = "acme_reconciler:Deploy"

A *check* plugin (``check = True``) promises to be read-only; only check plugins may be used in
``observe``, ``poll`` and ``checks``. A plugin that can feed a ``subscribe`` condition implements
:class:`SubscribePlugin`.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from reconciler.errors import ActionError, PluginNotFound
from reconciler.grants import Grants
from reconciler.types import RetryPolicy

ENTRY_POINT_GROUP = "reconciler.plugins"


class Request(BaseModel):
    """Base of plugin requests: unknown fields are errors, so typos are caught at load time."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    shell_fields: ClassVar[frozenset[str]] = frozenset()
    """Top-level fields of ``with:`` (as written in YAML) that are shell text: the engine
    renders each ``${{ }}`` in them as one quoted shell word, or refuses it
    (:mod:`reconciler.config.shellquote`), and ``validate`` reports refusals."""


class Response(BaseModel):
    """Base of plugin responses. ``changed`` follows Ansible: did this call modify anything?"""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    changed: bool = False


@dataclass(frozen=True)
class LocalPath:
    """Marks a ``Request`` field that names a local file or directory::

        path: Annotated[str, LocalPath()] = Field(...)

    ``reconciler validate`` finds the marked fields and checks a literal value (no ``${{ }}``)
    against the operator's grants (:meth:`Grants.check_path`), so a path outside the file roots
    is reported as ``path:line:col`` before anything runs. The plugin still checks every path
    it touches at run time: the marker is for early reports, not the enforcement.
    ``paths`` extracts the local paths from a value that is not a plain path (a SQLite URL);
    it returns none when the value names no local file.
    """

    paths: Callable[[str], Iterable[str]] | None = None

    def paths_in(self, value: str) -> list[str]:
        """The local paths ``value`` names."""
        return list(self.paths(value)) if self.paths is not None else [value]


def local_path_fields(model: type[BaseModel]) -> dict[str, LocalPath]:
    """The fields of ``model`` marked :class:`LocalPath`, by the names ``with:`` may use
    (the alias and the field name)."""
    out: dict[str, LocalPath] = {}
    for name, info in model.model_fields.items():
        for marker in info.metadata:
            if isinstance(marker, LocalPath):
                out[name] = marker  # requests accept the field name too (populate_by_name)
                out[info.alias or name] = marker
    return out


RequestT = TypeVar("RequestT", bound=BaseModel)
ResponseT = TypeVar("ResponseT", bound=BaseModel)


@dataclass(frozen=True)
class RunInfo:
    """What a plugin may know about the run it serves (also the ``run`` CEL variable)."""

    id: str
    workflow: str
    revision: str = ""
    attempt: int = 1
    parent_id: str | None = None

    def as_scope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "revision": self.revision,
            "attempt": self.attempt,
        }


ChildRunner = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Starts workflow ``name`` with ``inputs`` as a child run; returns ``{"runId", "outputs",
"changed"}`` of the finished child, or raises ``ChildRunFailed``."""


def _identity(text: str) -> str:
    return text


@dataclass
class ActionContext:
    """Everything the engine hands a plugin for one call.

    ``idempotency_key`` is stable across re-executions of the same action in the same run (after
    a retry or a crash), so a plugin talking to a system that supports it can deduplicate.
    ``redact`` replaces every secret value known to the run with ``***``: plugins that return
    free text (command output, response bodies) pass it through ``redact`` first.
    ``grants`` is what the operator allows workflows to reach: a plugin that touches the
    filesystem resolves every path with ``grants.check_path(path, base=workdir)`` and reads with
    ``grants.read_bytes`` (see :mod:`reconciler.grants`).
    Cancellation arrives as :class:`asyncio.CancelledError`; a plugin that must clean up
    catches it, cleans up, and re-raises.
    """

    run: RunInfo
    idempotency_key: str
    logger: logging.LoggerAdapter[logging.Logger] | Any
    workdir: Path = field(default_factory=Path.cwd)
    redact: Callable[[str], str] = _identity
    run_child: ChildRunner | None = None
    deadline: float | None = None
    """Event-loop time by which the action must finish, if any."""
    grants: Grants | None = None
    """The operator's grants; ``None`` means the defaults for ``workdir``
    (:meth:`Grants.local`). Read it through :meth:`granted`."""

    def granted(self) -> Grants:
        """The grants in force for this call (never ``None``)."""
        if self.grants is None:
            self.grants = Grants.local(Path(self.workdir))
        return self.grants

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


class Plugin(ABC, Generic[RequestT, ResponseT]):
    """Base class of every plugin.

    Subclasses set ``Request`` and ``Response`` (pydantic models), optionally ``check``,
    ``retry`` (the default policy when a state sets none) and ``errors`` (the named errors it
    may raise, so ``validate`` can accept them in ``on:``), and implement :meth:`run`.
    The docstring of the subclass is its description in ``reconciler plugins``.
    """

    name: ClassVar[str] = ""
    check: ClassVar[bool] = False
    Request: ClassVar[type[BaseModel]]
    Response: ClassVar[type[BaseModel]]
    retry: ClassVar[RetryPolicy | None] = None
    errors: ClassVar[tuple[type[ActionError], ...]] = ()

    async def init(self) -> None:
        """Get ready (connect, check reachability). Raise an :class:`ActionError` if not ready."""

    async def close(self) -> None:
        """Release what :meth:`init` or :meth:`run` acquired."""

    @abstractmethod
    async def run(self, request: RequestT, context: ActionContext) -> ResponseT:
        """Do the work once. Raise a named :class:`ActionError` on failure."""

    @classmethod
    def description(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class SubscribePlugin(Plugin[RequestT, ResponseT]):
    """A plugin that can feed a ``subscribe`` condition with a stream of messages.

    ``subscribe`` yields each message as a JSON-able mapping (it becomes ``message`` in the
    condition's ``match`` expression). The engine closes the iterator when the condition loses
    the race, so a plugin releases its subscription in a ``finally``.
    """

    @abstractmethod
    def subscribe(
        self, request: RequestT, context: ActionContext
    ) -> AsyncIterator[Mapping[str, Any]]: ...


def _origin(ep: EntryPoint) -> str:
    """The distribution that declares ``ep`` (its ``value`` when none is known)."""
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else ep.value


class PluginRegistry:
    """Plugins by name. Instances are created once and shared by every run.

    A discovered registry knows every plugin by its entry point and imports a plugin's module
    the first time the plugin is asked for (:meth:`get`, ``in``, :meth:`instance`): a command
    that validates a workflow using ``file.write`` does not import the NATS, Redis, SQL and
    Vault clients of the other built-in plugins. :meth:`load_all` imports every one (the daemon
    does at start, so a broken plugin is known before any run; ``reconciler plugins`` and
    ``schema`` list them all). A plugin whose import fails is known by that failure from then
    on: :attr:`load_errors` names it with the reason, and :meth:`names` leaves it out.
    """

    def __init__(self, plugins: Mapping[str, type[Plugin[Any, Any]]] | None = None) -> None:
        self._classes: dict[str, type[Plugin[Any, Any]]] = dict(plugins or {})
        self._pending: dict[str, EntryPoint] = {}
        """Entry points found but not imported yet, by plugin name."""
        self._instances: dict[str, Plugin[Any, Any]] = {}
        self.load_errors: dict[str, str] = {}
        """Entry points that failed to import (or clash), by plugin name, with the reason."""

    @classmethod
    def discover(cls) -> PluginRegistry:
        """Every plugin registered in the ``reconciler.plugins`` entry-point group, each
        imported on first use (see the class).

        Every one, allowed or not: the operator's allow-list is applied afterwards by
        ``restrict_registry`` in the daemon's plugin policy. A name that installed
        distributions register for two different objects is refused, whichever would have won:
        it is left out, with a load error naming both, so that a workflow using it fails with
        that message instead of silently calling the wrong package's code.
        """
        return cls.from_entry_points(entry_points(group=ENTRY_POINT_GROUP))

    @classmethod
    def from_entry_points(cls, eps: Iterable[EntryPoint]) -> PluginRegistry:
        """A registry of the plugins ``eps`` name, none imported yet (:meth:`discover` with
        the installed ones; name clashes are refused the same way)."""
        registry = cls()
        found: dict[str, list[EntryPoint]] = {}
        for ep in eps:
            same_name = found.setdefault(ep.name, [])
            # the same object twice (one package installed under two names, or found twice on
            # the path) is the same code: only different objects clash
            if not any(e.value == ep.value for e in same_name):
                same_name.append(ep)
        for name, eps in found.items():
            if len(eps) > 1:
                origins = " and ".join(
                    f"{_origin(e)} ({e.value})" for e in sorted(eps, key=_origin)
                )
                registry.load_errors[name] = (
                    f"registered by {len(eps)} installed distributions, {origins}: uninstall "
                    "one, or rename its entry point"
                )
                continue
            registry._pending[name] = eps[0]
        return registry

    def _load(self, name: str) -> type[Plugin[Any, Any]] | None:
        """Plugin ``name``'s class, importing its entry point if it is not imported yet;
        ``None`` when no plugin has that name or its import fails (then in load_errors)."""
        plugin_cls = self._classes.get(name)
        if plugin_cls is not None:
            return plugin_cls
        ep = self._pending.pop(name, None)
        if ep is None:
            return None
        try:
            loaded: type[Plugin[Any, Any]] = ep.load()
        except Exception as exc:  # a broken third-party package must not stop the rest
            self.load_errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        self.register(name, loaded)
        return loaded

    def load_all(self) -> PluginRegistry:
        """Import every plugin not imported yet (failures go to :attr:`load_errors`); returns
        the registry, for ``PluginRegistry.discover().load_all()``."""
        for name in list(self._pending):
            self._load(name)
        return self

    def register(self, name: str, plugin_cls: type[Plugin[Any, Any]]) -> None:
        if not plugin_cls.name:
            plugin_cls.name = name
        self._pending.pop(name, None)
        self._classes[name] = plugin_cls
        self._instances.pop(name, None)

    def names(self) -> list[str]:
        """Every plugin name, imported or not (without a name whose import failed)."""
        return sorted({*self._classes, *self._pending})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._load(name) is not None

    def get(self, name: str) -> type[Plugin[Any, Any]]:
        plugin_cls = self._load(name)
        if plugin_cls is None:
            raise PluginNotFound(self.unknown_message(name))
        return plugin_cls

    def unknown_message(self, name: str) -> str:
        msg = f"unknown plugin {name!r}"
        if name in self.load_errors:
            return f"{msg}: it failed to load ({self.load_errors[name]})"
        close = difflib.get_close_matches(name, self.names(), n=1)
        return f"{msg}; did you mean {close[0]!r}?" if close else msg

    def instance(self, name: str) -> Plugin[Any, Any]:
        """The shared instance of plugin ``name`` (created on first use)."""
        inst = self._instances.get(name)
        if inst is None:
            inst = self.get(name)()
            self._instances[name] = inst
        return inst

    def error_names(self) -> set[str]:
        """Every error name some plugin declares, for checking ``on:`` lists (imports every
        plugin: see :meth:`declares_error` to ask about one name)."""
        self.load_all()
        return self._declared_errors()

    def declares_error(self, name: str) -> bool:
        """Whether some plugin declares the error ``name``. Asks the plugins imported so far
        first, and imports the others only when none of those declares it."""
        return name in self._declared_errors() or name in self.error_names()

    def _declared_errors(self) -> set[str]:
        return {err.__name__ for cls in self._classes.values() for err in cls.errors}

    async def close(self) -> None:
        for inst in self._instances.values():
            await inst.close()
