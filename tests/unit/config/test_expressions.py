from __future__ import annotations

import pytest

from reconciler.config.expressions import (
    compile_expr,
    evaluate,
    evaluate_bool,
    iter_templates,
    plain_path,
    render,
)
from reconciler.errors import EvaluationError, ExpressionError

SCOPE = {"inputs": {"n": 2, "names": ["a", "b"], "db": "app"}}


def test_whole_string_template_keeps_type() -> None:
    assert render("${{ inputs.n }}", SCOPE) == 2
    assert render("${{ inputs.names }}", SCOPE) == ["a", "b"]


def test_embedded_templates_become_text() -> None:
    assert render("db=${{ inputs.db }} n=${{ inputs.n + 1 }}", SCOPE) == "db=app n=3"


def test_render_walks_nested_structures() -> None:
    assert render({"a": ["${{ inputs.db }}", {"b": "${{ inputs.n * 2 }}"}], "c": 1}, SCOPE) == {
        "a": ["app", {"b": 4}],
        "c": 1,
    }


def test_invalid_cel_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="invalid CEL"):
        compile_expr("1 +")


def test_runtime_failure_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="missing"):
        render("${{ missing.x }}", SCOPE)


def test_evaluate_bool_rejects_non_bool() -> None:
    with pytest.raises(EvaluationError, match="true or false"):
        evaluate_bool("inputs.n", SCOPE)


def test_iter_templates_finds_every_expression() -> None:
    assert sorted(iter_templates({"a": "${{ x }} and ${{ y }}", "b": ["${{ z }}"]})) == [
        "x",
        "y",
        "z",
    ]


def test_lists_and_maps_embedded_in_text_read_as_json() -> None:
    scope = {"inputs": {"names": ["a", "b"], "opts": {"x": True}}}
    assert (
        render("n=${{ inputs.names }} o=${{ inputs.opts }}", scope) == 'n=["a", "b"] o={"x": true}'
    )


FIELDS = {
    "inputs": {
        "path": "/srv/motd",
        "count": 3,
        "big": 2**70,
        "ratio": 0.5,
        "on": True,
        "off": False,
        "none": None,
        "tags": ["a", "b"],
        "nested": {"deeper": {"name": "x"}},
        "empty": "",
    },
    "run": {"id": "abc"},
}


@pytest.mark.parametrize(
    "source",
    [
        "inputs.path",
        " inputs.count ",
        "inputs.ratio",
        "inputs.on",
        "inputs.off",
        "inputs.none",
        "inputs.tags",
        "inputs.nested",
        "inputs.nested.deeper.name",
        "inputs.empty",
        "run.id",
    ],
)
def test_a_field_read_gives_exactly_what_cel_gives(source: str) -> None:
    fast = evaluate(source, FIELDS)
    by_cel = compile_expr(source).execute(dict(FIELDS))
    assert fast == by_cel and type(fast) is type(by_cel)


def test_a_missing_field_fails_as_cel_does() -> None:
    with pytest.raises(EvaluationError, match=r"inputs\.missing.*no such key"):
        evaluate("inputs.missing", FIELDS)
    with pytest.raises(EvaluationError):
        evaluate("nothing.here", FIELDS)


def test_what_is_not_a_plain_field_read_goes_to_cel() -> None:
    assert plain_path("inputs.count + 1") is None
    assert plain_path("true") is None
    assert plain_path("size(inputs.tags)") is None
    assert plain_path("inputs.nested.deeper") == ("inputs", "nested", "deeper")
    assert evaluate("true", FIELDS) is True
    assert evaluate("inputs.count + 1", FIELDS) == 4
