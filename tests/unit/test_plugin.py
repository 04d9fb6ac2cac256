"""The plugin registry imports a plugin's module the first time the plugin is used.

Plugins come from entry points; importing every plugin module would import every client
library (NATS, Redis, SQLAlchemy, hvac) into a command that only reads files. These tests write
real plugin modules into a temporary directory on ``sys.path`` and watch ``sys.modules``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from textwrap import dedent

import pytest

from reconciler.config.loader import load_text
from reconciler.config.snapshot import LoadedWorkflow
from reconciler.config.validate import validate_workflow
from reconciler.errors import PluginNotFound
from reconciler.plugin import ENTRY_POINT_GROUP, PluginRegistry

PLUGIN_MODULE = '''
from reconciler.errors import PluginError
from reconciler.plugin import Plugin, Request, Response


class {error}(PluginError):
    """Declared by this plugin only."""


class Hello(Plugin[Request, Response]):
    """Says hello."""

    check = True
    Request = Request
    Response = Response
    errors = ({error},)

    async def run(self, request, context):
        return Response()
'''


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Three plugin modules of fresh names (never imported before): ``a`` and ``b`` work and
    declare the errors ``ErrorOfA``/``ErrorOfB``, ``broken`` raises when imported."""
    suffix = uuid.uuid4().hex[:8]
    names = {key: f"plugin_{key}_{suffix}" for key in ("a", "b", "broken")}
    for key in ("a", "b"):
        (tmp_path / f"{names[key]}.py").write_text(
            PLUGIN_MODULE.format(error=f"ErrorOf{key.upper()}")
        )
    (tmp_path / f"{names['broken']}.py").write_text("raise RuntimeError('no client library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for module in names.values():
        sys.modules.pop(module, None)


def entry(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:Hello", group=ENTRY_POINT_GROUP)


def registry_of(modules: dict[str, str]) -> PluginRegistry:
    return PluginRegistry.from_entry_points(
        [
            entry("acme.a", modules["a"]),
            entry("acme.b", modules["b"]),
            entry("acme.broken", modules["broken"]),
        ]
    )


def test_discovering_imports_no_plugin_module(modules: dict[str, str]) -> None:
    registry = registry_of(modules)
    assert registry.names() == ["acme.a", "acme.b", "acme.broken"]
    assert not set(modules.values()) & set(sys.modules)


def test_using_a_plugin_imports_its_module_and_no_other(modules: dict[str, str]) -> None:
    registry = registry_of(modules)
    plugin = registry.get("acme.a")
    assert plugin.name == "acme.a" and plugin.description() == "Says hello."
    assert modules["a"] in sys.modules
    assert modules["b"] not in sys.modules and modules["broken"] not in sys.modules


def test_a_plugin_that_fails_to_import_is_unknown_with_the_reason(modules: dict[str, str]) -> None:
    registry = registry_of(modules)
    assert "acme.broken" not in registry
    assert registry.load_errors == {"acme.broken": "RuntimeError: no client library"}
    assert registry.names() == ["acme.a", "acme.b"]
    with pytest.raises(PluginNotFound, match=r"'acme.broken': it failed to load \(RuntimeError"):
        registry.get("acme.broken")


def test_load_all_imports_every_plugin_and_records_the_failures(modules: dict[str, str]) -> None:
    registry = registry_of(modules).load_all()
    assert {modules["a"], modules["b"]} <= set(sys.modules)
    assert registry.names() == ["acme.a", "acme.b"]
    assert set(registry.load_errors) == {"acme.broken"}


def test_a_name_registered_for_two_objects_is_refused_without_importing_either(
    modules: dict[str, str],
) -> None:
    registry = PluginRegistry.from_entry_points(
        [entry("acme.a", modules["a"]), entry("acme.a", modules["b"])]
    )
    assert "acme.a" not in registry
    assert "registered by 2 installed distributions" in registry.load_errors["acme.a"]
    assert not {modules["a"], modules["b"]} & set(sys.modules)


def test_the_same_object_registered_twice_is_one_plugin(modules: dict[str, str]) -> None:
    registry = PluginRegistry.from_entry_points(
        [entry("acme.a", modules["a"]), entry("acme.a", modules["a"])]
    )
    assert registry.names() == ["acme.a"] and registry.load_errors == {}


def test_an_error_name_is_looked_for_in_other_plugins_only_when_the_used_ones_lack_it(
    modules: dict[str, str],
) -> None:
    registry = registry_of(modules)
    registry.get("acme.a")
    assert registry.declares_error("ErrorOfA")
    assert modules["b"] not in sys.modules
    assert registry.declares_error("ErrorOfB")  # declared by a plugin not used yet: found
    assert modules["b"] in sys.modules
    assert not registry.declares_error("ErrorOfNobody")


def workflow(on: str) -> str:
    return dedent(
        f"""\
        apiVersion: reconciler/v1
        kind: Workflow
        metadata: {{name: hello}}
        spec:
          start: greet
          states:
            greet:
              action: {{plugin: acme.a}}
              transitions:
                - {{to: failed, on: [{on}]}}
                - {{to: done, on: success}}
                - {{to: failed, on: error}}
            done: {{end: success}}
            failed: {{end: failure}}
        """
    )


def loaded(text: str) -> LoadedWorkflow:
    result = load_text(text, path="hello.yaml")
    assert result.problems == [], [str(p) for p in result.problems]
    [found] = result.workflows
    return found


def test_validating_a_workflow_imports_only_the_plugins_it_names(modules: dict[str, str]) -> None:
    registry = registry_of(modules)
    assert validate_workflow(loaded(workflow("ErrorOfA")), registry) == []
    assert modules["a"] in sys.modules and modules["b"] not in sys.modules


def test_an_on_name_only_another_plugin_declares_is_still_accepted(
    modules: dict[str, str],
) -> None:
    registry = registry_of(modules)
    problems = validate_workflow(loaded(workflow("ErrorOfB")), registry)
    assert problems == []
    misspelt = validate_workflow(loaded(workflow("ErrorOfBee")), registry)
    [problem] = misspelt
    assert "unknown outcome 'ErrorOfBee'" in problem.message
    assert problem.message.endswith("did you mean 'ErrorOfB'?")
