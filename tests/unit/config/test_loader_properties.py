"""Properties of the loader: whatever it is fed, it answers with Problems, never an exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config.loader import load_text
from reconciler.config.snapshot import FileResult

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

YAML_BITS = st.sampled_from(
    [
        "apiVersion: reconciler/v1\n",
        "kind: Workflow\n",
        "metadata: {name: demo}\n",
        "metadata:\n  name: x\n",
        "spec:\n",
        "  start: a\n",
        "  states:\n    a: {end: success}\n",
        "    b: {transitions: [{to: a, on: error}]}\n",
        "  inputs: {x: &x [1, 2]}\n",
        "  copy: *x\n",
        "---\n",
        "...\n",
        "- item\n",
        "? complex\n: key\n",
        "a: [unclosed\n",
        "b: {x: 1\n",
        "'quoted: \"\n",
        "on: yes\n",
        "<<: *x\n",
        "!!python/object:os.system {}\n",
        "%YAML 1.1\n",
        "\t\x07\n",
        "0o777: 0x1f\n",
        "9" * 5000 + "\n",
        "[[[[[[[[[[[[\n",
        "  ",
        "#",
        ":",
        "&a [*a]\n",
    ]
)


def _assert_only_problems(result: FileResult) -> None:
    assert isinstance(result, FileResult)
    for problem in result.problems:
        assert problem.line >= 1 and problem.column >= 1
        assert problem.severity in ("error", "warning")
        assert problem.message


@SETTINGS
@given(st.lists(YAML_BITS, max_size=25).map("".join))
def test_yamlish_text_only_ever_produces_problems(text: str) -> None:
    _assert_only_problems(load_text(text, path="p.yaml"))


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_only_ever_produces_problems(text: str) -> None:
    _assert_only_problems(load_text(text, path="p.yaml"))


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_ever_produce_problems(data: bytes) -> None:
    _assert_only_problems(load_text(data, path="p.yaml"))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {"apiVersion": st.just("reconciler/v1"), "kind": st.just("Workflow")},
        optional={"metadata": JSONISH, "spec": JSONISH, "tests": JSONISH},
    )
)
def test_workflow_shaped_documents_only_ever_produce_problems(doc: dict[str, object]) -> None:
    result = load_text(yaml.safe_dump(doc), path="p.yaml")
    _assert_only_problems(result)
    assert result.workflows or result.problems
