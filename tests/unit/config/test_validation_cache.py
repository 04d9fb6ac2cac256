"""The validation cache: a long-lived caller re-validating each revision gets exactly what a
fresh validation of that snapshot gives, whatever changed since the last one."""

from __future__ import annotations

from reconciler.config.loader import load_text
from reconciler.config.snapshot import FileResult, Snapshot
from reconciler.config.validate import ValidationCache, validate_snapshot
from reconciler.plugin import PluginRegistry
from tests.support.workflows import file_workflow, to_yaml

REGISTRY = PluginRegistry.discover()


def result(name: str, *, depends_on: str = "", plugin: str = "file.write") -> FileResult:
    document = file_workflow(name, "out.txt", "x", interval=None)
    document["spec"]["states"]["write"]["action"]["plugin"] = plugin
    if depends_on:
        document["spec"]["dependsOn"] = [depends_on]
    return load_text(to_yaml(document), path=f"{name}.yaml")


def test_each_revision_validates_as_a_fresh_validation_would() -> None:
    files = {f"{n}.yaml": result(n) for n in ("a", "b", "c", "d")}
    revisions = [
        {"b.yaml": result("b", plugin="no.such")},  # b breaks
        {"c.yaml": result("c", depends_on="nobody")},  # c waits for an unknown workflow
        {"b.yaml": result("b")},  # b is fixed
        {"d.yaml": result("d", depends_on="a")},  # d waits for a (no problem)
        {"c.yaml": result("c")},  # c no longer waits
    ]
    cache = ValidationCache()
    previous = Snapshot.from_files("r0", files)
    assert validate_snapshot(previous, REGISTRY, cache=cache) == []
    for number, change in enumerate(revisions, start=1):
        files = {**files, **change}  # the unchanged files' results are reused
        snapshot = Snapshot.from_files(f"r{number}", files, previous=previous)
        cached = validate_snapshot(snapshot, REGISTRY, cache=cache)
        assert cached == validate_snapshot(snapshot, REGISTRY), f"revision {number}"
        previous = snapshot
    assert len(cache) == 4


def test_what_changed_is_found_at_each_revision() -> None:
    cache = ValidationCache()
    files = {f"{n}.yaml": result(n) for n in ("a", "b")}
    first = Snapshot.from_files("r1", files)
    validate_snapshot(first, REGISTRY, cache=cache)
    broken = {**files, "a.yaml": result("a", plugin="no.such")}
    second = Snapshot.from_files("r2", broken, previous=first)
    assert {p.workflow for p in validate_snapshot(second, REGISTRY, cache=cache)} == {"a"}
    fixed = {**broken, "a.yaml": result("a")}
    third = Snapshot.from_files("r3", fixed, previous=second)
    assert validate_snapshot(third, REGISTRY, cache=cache) == []
