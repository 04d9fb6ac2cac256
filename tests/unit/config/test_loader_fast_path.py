"""The loader's LibYAML fast path reads every file exactly as the pure-Python path does.

``load_text`` composes with LibYAML when it can and falls back to the pure-Python
:class:`~reconciler.config.loader.YamlLoader` for anything unusual; these tests load the same
texts both ways and require identical workflows, digests, problems and positions. They also pin
the other speed-ups the daemon benchmark relies on: lazily rebuilt positions, the per-workflow
validation cache and the garbage-collector pause around bulk loads.
"""

from __future__ import annotations

import gc
import textwrap

import pytest

from reconciler.config import loader
from reconciler.config.loader import bulk_loading, load_text
from reconciler.config.snapshot import FileResult, Snapshot
from reconciler.config.validate import ValidationCache, validate_snapshot
from reconciler.plugin import PluginRegistry

pytestmark = pytest.mark.skipif(loader._FAST_LOADER is None, reason="PyYAML without LibYAML")

VALID = textwrap.dedent(
    """\
    apiVersion: reconciler/v1
    kind: Workflow
    metadata:
      name: motd
      labels: {team: ops, tier: "1"}
    spec:
      interval: 5m
      inputs:
        path: /tmp/motd
        content: "hi"
        numbers: [1, -2, 0x1F, 0o17, 1.5, -.inf, .nan, 2e3]
        flags: [true, false, yes, no, on, off, null, ~, ""]
        date: 2024-01-01
      observe:
        plugin: file.read
        with: {path: "${{ inputs.path }}", missingOk: true}
      desired: {content: hi}
      start: write
      states:
        write:
          action:
            plugin: file.write
            with: {path: "${{ inputs.path }}", content: "${{ inputs.content }}"}
          retry: {attempts: 3, delay: 1s, backoff: 2.0}
          transitions:
            - {to: done, on: success}
            - {to: failed, on: error}
        done: {end: success}
        failed: {end: failure}
    """
)

TEXTS: dict[str, str] = {
    "valid": VALID,
    "two documents": VALID + "---\n" + VALID.replace("name: motd", "name: motd-2"),
    "duplicate keys": VALID.replace("  interval: 5m\n", "  interval: 5m\n  interval: 6m\n"),
    "anchors and merge keys": VALID.replace(
        "  desired: {content: hi}\n",
        "  desired: &d {content: hi}\n  inputs2: {<<: *d, more: 1}\n",
    ),
    "schema error": VALID.replace("start: write", "start: 12").replace(
        "interval: 5m", "intervl: 5m"
    ),
    "syntax error after a good document": VALID + "---\nkind: [unclosed\n",
    "foreign document": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    "not a mapping": "- just\n- a list\n",
    "explicit tags": VALID.replace('content: "hi"', "content: !!str 123"),
    "custom tag": VALID.replace('content: "hi"', "content: !secret hi"),
    "non-string key": VALID.replace("  desired: {content: hi}\n", "  desired: {1: hi}\n"),
    "too deep": "a: " + "[" * 70 + "]" * 70 + "\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 10)}]\n" for p, k in zip("abcde", "bcdef", strict=True)
    ),
    "recursive alias": "a: &a [*a]\n",
    "control character": VALID.replace("hi", "h\x07i", 1),
    "empty": "",
    "only a comment": "# nothing here\n",
    "trailing separator": VALID + "---\n",
}


def _summary(result: FileResult) -> dict[str, object]:
    return {
        "workflows": [
            (lw.name, lw.line, lw.digest, lw.workflow.model_dump(mode="json"), dict(lw.positions))
            for lw in result.workflows
        ],
        "problems": [p.as_dict() for p in result.problems],
        "invalid": sorted(result.invalid_names),
        "digest": result.digest,
    }


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_fast_and_pure_paths_load_the_same_workflows_problems_and_positions(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = TEXTS[name]
    fast = _summary(load_text(text, path="wf.yaml"))
    monkeypatch.setattr(loader, "_FAST_LOADER", None)
    pure = _summary(load_text(text, path="wf.yaml"))
    assert fast == pure


def test_yaml_12_scalars_survive_the_fast_path() -> None:
    (lw,) = load_text(VALID, path="wf.yaml").workflows
    inputs = lw.workflow.spec.inputs
    assert inputs["numbers"][:6] == [1, -2, 31, 15, 1.5, float("-inf")]
    assert inputs["flags"] == [True, False, "yes", "no", "on", "off", None, None, ""]
    assert inputs["date"] == "2024-01-01"


def test_positions_of_a_valid_workflow_are_rebuilt_on_first_use() -> None:
    (lw,) = load_text(VALID, path="wf.yaml").workflows
    assert lw.locate(("spec", "start")) == (18, 10)
    assert lw.locate(("spec", "states", "write", "do", 0)) == (21, 7)  # written as `action:`
    assert ("spec", "interval") in lw.positions
    assert len(lw.positions) == len(list(lw.positions))


def test_validation_cache_reuses_unchanged_workflows_and_sees_changed_ones() -> None:
    registry = PluginRegistry.discover()
    good = load_text(VALID, path="a.yaml")
    other = load_text(VALID.replace("name: motd", "name: other"), path="b.yaml")
    cache = ValidationCache()
    first = Snapshot.from_files("r1", {"a.yaml": good, "b.yaml": other})
    assert validate_snapshot(first, registry, cache=cache) == []
    assert len(cache) == 2

    broken = load_text(
        VALID.replace("name: motd", "name: other").replace("to: done", "to: nowhere"),
        path="b.yaml",
    )
    second = Snapshot.from_files("r2", {"a.yaml": good, "b.yaml": broken})
    cached = validate_snapshot(second, registry, cache=cache)
    assert cached == validate_snapshot(second, registry)
    assert {p.workflow for p in cached} == {"other"}
    assert any("unknown state 'nowhere'" in p.message for p in cached)
    assert validate_snapshot(second, registry, cache=cache, strict=True) == validate_snapshot(
        second, registry, strict=True
    )


def test_bulk_loading_pauses_the_collector_and_restores_its_state() -> None:
    assert gc.isenabled()
    with bulk_loading():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk_loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_lazy_positions_are_rebuilt_even_without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    _first, second = load_text(TEXTS["two documents"], path="wf.yaml").workflows
    monkeypatch.setattr(loader, "_FAST_LOADER", None)
    assert second.name == "motd-2"
    assert second.locate(("metadata", "name")) == (VALID.count("\n") + 5, 9)
