"""The comparison behind previews: new, changed, removed, unchanged by spec digest, and what
the planner says each new or changed workflow would do, from the observation and the stored
status (the probe is the callable the daemon hands in; here it returns observations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from reconciler.config.loader import load_text
from reconciler.config.snapshot import LoadedWorkflow, Snapshot
from reconciler.daemon.preview import PreviewContext, compare, digests, preview_target
from reconciler.daemon.target import Target, select_target
from reconciler.engine.drift import FieldDiff
from reconciler.engine.runner import Observation
from reconciler.plugin import PluginRegistry
from reconciler.previews import Change
from reconciler.status import Health, WorkflowStatusRecord
from tests.support.workflows import file_workflow

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = PluginRegistry.discover()


def target(
    *documents: dict[str, Any], raw: dict[str, str] | None = None, previous: Target | None = None
) -> Target:
    files = {f"{d['metadata']['name']}.yaml": yaml.safe_dump(d) for d in documents}
    files.update(raw or {})
    snapshot = Snapshot.from_files(
        "r1", {path: load_text(text.encode(), path=path) for path, text in files.items()}
    )
    return select_target(snapshot, REGISTRY, previous=previous)


def test_compare_names_new_changed_removed_and_unchanged() -> None:
    changes = compare(
        {"kept": "a", "edited": "b", "gone": "c", "broken": None},
        {"kept": "a", "edited": "B", "added": "d", "broken": None},
    )
    assert changes == {
        "added": Change.NEW,
        "broken": Change.CHANGED,
        "edited": Change.CHANGED,
        "gone": Change.REMOVED,
        "kept": Change.UNCHANGED,
    }


def test_formatting_alone_is_no_change() -> None:
    doc = file_workflow("motd", "/tmp/motd", "hello", keep=True)
    flow = target(doc)
    block = target(raw={"motd.yaml": yaml.safe_dump(doc, default_flow_style=True)})
    assert compare(digests(flow.snapshot), digests(block.snapshot)) == {"motd": Change.UNCHANGED}


def _observed(in_sync: bool, **diff: Any) -> Observation:
    fields = [FieldDiff(path, desired, observed) for path, (desired, observed) in diff.items()]
    return Observation({"content": "live"}, in_sync, fields)


async def _preview(
    base: Target,
    head: Target,
    observations: dict[str, Observation],
    statuses: dict[str, WorkflowStatusRecord] | None = None,
    **options: Any,
) -> Any:
    seen: list[str] = []

    async def observe(lw: LoadedWorkflow) -> Observation:
        seen.append(lw.name)
        return observations[lw.name]

    context = PreviewContext(statuses=statuses or {}, observe=observe, now=lambda: NOW, **options)
    changes = compare(digests(base.snapshot), digests(head.snapshot, head.invalid))
    removed = {n: base.valid.get(n) for n, c in changes.items() if c is Change.REMOVED}
    report = await preview_target(head, changes, context, ref="feature", base="r0", removed=removed)
    return report, seen


async def test_changed_inputs_out_of_sync_would_run_with_the_field_diff() -> None:
    base = target(file_workflow("motd", "/tmp/motd", "hello", keep=True))
    head = target(file_workflow("motd", "/tmp/motd", "bonjour", keep=True))
    obs = {"motd": _observed(False, content=("bonjour", "hello"))}
    report, seen = await _preview(base, head, obs)
    (item,) = report.workflows
    assert (item.change, item.would_run, item.sync) == (Change.CHANGED, True, "OutOfSync")
    assert "out of sync" in item.reason
    assert item.diff == [{"path": "content", "desired": "bonjour", "observed": "hello"}]
    assert seen == ["motd"] and not report.failed


async def test_new_workflow_already_in_sync_would_not_run() -> None:
    base = target(file_workflow("motd", "/tmp/motd", "hello", keep=True))
    head = target(
        file_workflow("motd", "/tmp/motd", "hello", keep=True),
        file_workflow("extra", "/tmp/extra", "x", keep=True),
    )
    report, seen = await _preview(base, head, {"extra": _observed(True)})
    by_name = {w.name: w for w in report.workflows}
    assert by_name["extra"].change is Change.NEW and by_name["extra"].would_run is False
    assert by_name["motd"].change is Change.UNCHANGED and by_name["motd"].would_run is None
    assert seen == ["extra"], "the daemon does not probe what the ref leaves unchanged"


async def test_changed_spec_without_probe_would_run_because_the_spec_changed() -> None:
    base = target(file_workflow("once", "/tmp/once", "v1"))
    head = target(file_workflow("once", "/tmp/once", "v2"))
    ran = base.valid["once"]
    stored = WorkflowStatusRecord(name="once", status=Health.CONVERGED, spec_digest=ran.digest)
    report, seen = await _preview(base, head, {}, {"once": stored})
    (item,) = report.workflows
    assert item.would_run is True and item.sync == "Unknown" and seen == []


async def test_removed_workflow_is_listed_with_what_would_happen() -> None:
    base = target(file_workflow("motd", "/tmp/motd", "hello"), file_workflow("old", "/x", "y"))
    head = target(file_workflow("motd", "/tmp/motd", "hello"))
    report, _ = await _preview(base, head, {})
    old = next(w for w in report.workflows if w.name == "old")
    assert old.change is Change.REMOVED and old.would_run is False
    assert "retired" in old.reason


async def test_invalid_workflow_at_the_ref_is_reported_with_path_line_col_and_fails() -> None:
    base = target(file_workflow("motd", "/tmp/motd", "hello", keep=True))
    broken = {"motd.yaml": "apiVersion: reconciler/v1\nkind: Workflow\nmetadata: [\n"}
    head = target(raw=broken, previous=base)
    report, seen = await _preview(base, head, {})
    assert report.failed and seen == []
    (item,) = report.workflows
    assert item.change is Change.CHANGED and not item.valid and item.would_run is None
    assert any(p.startswith("motd.yaml:") and p.split(":")[1].isdigit() for p in report.problems)


async def test_failing_probe_makes_the_preview_fail() -> None:
    from reconciler.errors import NotFound

    base = target(file_workflow("motd", "/tmp/motd", "hello", keep=True))
    head = target(file_workflow("motd", "/tmp/motd", "hola", keep=True))
    obs = {"motd": Observation(None, None, [], NotFound("no such file"))}
    report, _ = await _preview(base, head, obs)
    (item,) = report.workflows
    assert item.sync == "Error" and "no such file" in item.probe_error and report.failed


async def test_probes_over_the_limit_are_listed_not_run() -> None:
    base = target()
    head = target(*(file_workflow(f"w{i}", f"/tmp/w{i}", "x", keep=True) for i in range(3)))
    obs = {f"w{i}": _observed(True) for i in range(3)}
    report, seen = await _preview(base, head, obs, limit=2)
    assert len(seen) == 2 and report.limited == ["w2"]
    assert "limit" in next(w for w in report.workflows if w.name == "w2").reason


async def test_an_error_the_base_already_has_does_not_fail_the_preview() -> None:
    broken = {"old.yaml": "apiVersion: reconciler/v1\nkind: Workflow\nmetadata: [\n"}
    base = target(file_workflow("motd", "/tmp/motd", "hello", keep=True), raw=broken)
    head = target(file_workflow("motd", "/tmp/motd", "hola", keep=True), raw=broken, previous=base)
    seen: list[str] = []

    async def observe(lw: LoadedWorkflow) -> Observation:
        seen.append(lw.name)
        return _observed(True)

    changes = compare(digests(base.snapshot), digests(head.snapshot, head.invalid))
    report = await preview_target(
        head,
        changes,
        PreviewContext(statuses={}, observe=observe, now=lambda: NOW),
        ref="feature",
        base="r0",
        base_problems={str(p) for p in base.problems if p.is_error},
    )
    assert report.problems and not report.introduced and not report.failed
