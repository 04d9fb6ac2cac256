"""The daemon's plugin policy (``--allow-plugins``): glob patterns chosen by whoever runs the
daemon; a workflow using anything else is invalid with a message saying why."""

from __future__ import annotations

from importlib.metadata import EntryPoint

from reconciler.config.loader import load_text
from reconciler.config.validate import validate_workflow
from reconciler.daemon.policy import restrict_registry
from reconciler.plugin import ENTRY_POINT_GROUP, PluginRegistry

WORKFLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: cleanup}
spec:
  start: clean
  states:
    clean:
      action:
        plugin: shell.run
        with: {argv: [rm, -rf, /tmp/cache]}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


def test_glob_patterns_allow_every_matching_plugin_and_nothing_else() -> None:
    registry = restrict_registry(PluginRegistry.discover(), ["http.*", "file.read"])
    assert set(registry.names()) == {"http.check", "http.request", "file.read"}


def test_no_policy_allows_every_installed_plugin() -> None:
    everything = PluginRegistry.discover()
    assert restrict_registry(everything, None) is everything


def test_workflow_using_a_plugin_outside_the_policy_is_invalid_saying_why() -> None:
    [loaded] = load_text(WORKFLOW, path="cleanup.yaml").workflows
    registry = restrict_registry(PluginRegistry.discover(), ["file.*", "http.*"])
    problems = [p for p in validate_workflow(loaded, registry) if p.is_error]
    assert [p.message for p in problems] == [
        "plugin 'shell.run' is not allowed here (the daemon's --allow-plugins does not list it)"
    ]
    allowed = restrict_registry(PluginRegistry.discover(), ["shell.*"])
    assert [p for p in validate_workflow(loaded, allowed) if p.is_error] == []


def test_an_empty_policy_allows_no_plugin_and_the_message_names_the_setting() -> None:
    [loaded] = load_text(WORKFLOW, path="cleanup.yaml").workflows
    registry = restrict_registry(PluginRegistry.discover(), [])
    assert registry.names() == []
    problems = [p for p in validate_workflow(loaded, registry) if p.is_error]
    assert [p.message for p in problems] == [
        "plugin 'shell.run' is not allowed here (the daemon's --allow-plugins / "
        "RECONCILER_ALLOW_PLUGINS is set but empty, which allows no plugin)"
    ]


def test_an_allowed_plugin_that_fails_to_import_is_a_load_error_not_a_crash() -> None:
    registry = PluginRegistry.from_entry_points(
        [
            EntryPoint(name="acme.gone", value="no_such_module_here:Gone", group=ENTRY_POINT_GROUP),
            EntryPoint(
                name="file.read", value="reconciler_plugins.files:FileRead", group=ENTRY_POINT_GROUP
            ),
        ]
    )
    restricted = restrict_registry(registry, ["acme.*", "file.*"])
    assert restricted.names() == ["file.read"]
    assert "ModuleNotFoundError" in restricted.load_errors["acme.gone"]
    assert "it failed to load" in restricted.unknown_message("acme.gone")
