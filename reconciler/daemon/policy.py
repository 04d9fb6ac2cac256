"""The operator's plugin policy: which installed plugins workflows may use (``--allow-plugins``).

Called by: ``reconciler run`` (:mod:`reconciler.cli.run`) and the test harnesses, before the
controller is built; the controller logs :data:`UNRESTRICTED_PLUGINS_WARNING` at start when no
policy is set. Calls: nothing but the :class:`~reconciler.plugin.PluginRegistry` it narrows.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from reconciler.plugin import PluginRegistry

UNRESTRICTED_PLUGINS_WARNING = (
    "no plugin policy: every installed plugin is allowed, shell.run included, so anyone who can "
    "commit to the repository can run commands as the daemon; set --allow-plugins "
    "(RECONCILER_ALLOW_PLUGINS) in production"
)
"""Logged at start when ``allow_plugins`` is unset (the quickstart's bare ``reconciler run``)."""


class PolicyRegistry(PluginRegistry):
    """The installed plugins minus those the daemon's ``--allow-plugins`` leaves out.

    Validation then reports a left-out plugin as "not allowed" (and the workflow is ``Invalid``),
    rather than as unknown. An empty ``allow`` allows no plugin at all.
    """

    def __init__(self, registry: PluginRegistry, allow: list[str]) -> None:
        def allowed(name: str) -> bool:  # glob patterns: "http.*" allows http.check, http.request
            return any(fnmatchcase(name, pattern) for pattern in allow)

        super().__init__(
            {
                name: registry.get(name)
                for name in registry.names()
                if allowed(name) and name in registry  # `in` imports it; False if that fails
            }
        )
        self.allow = tuple(allow)
        self.load_errors = {k: v for k, v in registry.load_errors.items() if allowed(k)}
        self.refused = frozenset(name for name in registry.names() if not allowed(name))

    def unknown_message(self, name: str) -> str:
        if name in self.refused and not self.allow:
            return (
                f"plugin {name!r} is not allowed here (the daemon's --allow-plugins / "
                "RECONCILER_ALLOW_PLUGINS is set but empty, which allows no plugin)"
            )
        if name in self.refused:
            return f"plugin {name!r} is not allowed here (the daemon's --allow-plugins does not list it)"
        return super().unknown_message(name)


def restrict_registry(registry: PluginRegistry, allow: list[str] | None) -> PluginRegistry:
    """Only the plugins ``--allow-plugins`` matches (glob patterns).

    ``None`` (the setting unset) allows every installed plugin, so the quickstart converges with
    a bare ``reconciler run``; the controller then logs :data:`UNRESTRICTED_PLUGINS_WARNING`. An
    empty list (the setting given as ``""``) allows none. A workflow using a plugin left out
    fails validation and is marked ``Invalid``: a commit cannot grant itself ``shell.run``.
    """
    if allow is None:
        return registry
    return PolicyRegistry(registry, allow)
