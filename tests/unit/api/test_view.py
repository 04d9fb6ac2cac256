"""The API reads the daemon through :class:`reconciler.api.view.DaemonView` only: no API module
imports the controller, and the daemon's :class:`~reconciler.daemon.view.ControllerView` offers
every member of the protocol with the same parameters."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import reconciler.api
from reconciler.api.view import DaemonView
from reconciler.daemon.view import ControllerView

API = Path(reconciler.api.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_api_module_imports_the_controller() -> None:
    offenders = {
        str(path.relative_to(API)): sorted(
            m
            for m in _imports(path)
            if m.startswith(("reconciler.daemon.controller", "reconciler.daemon.view"))
        )
        for path in API.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _members(cls: type) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(cls).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def test_the_controller_view_implements_every_member_of_the_protocol() -> None:
    wanted = _members(DaemonView)
    offered = _members(ControllerView)
    assert set(wanted) <= set(offered)
    for name, member in wanted.items():
        if isinstance(member, property):
            assert isinstance(offered[name], property), name
            continue
        assert callable(member) and callable(offered[name])
        want = inspect.signature(member)
        got = inspect.signature(offered[name])  # type: ignore[arg-type]
        assert list(got.parameters) == list(want.parameters), name
        assert inspect.iscoroutinefunction(offered[name]) == inspect.iscoroutinefunction(member), (
            name
        )
