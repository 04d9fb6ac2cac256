"""The cost estimate of a CEL expression: never below what its comprehensions visit."""

from __future__ import annotations

import pytest

from reconciler.config.cost import estimate, shape_of, static_problem
from reconciler.config.expressions import evaluate
from reconciler.errors import EvaluationError, ExpressionBudgetExceeded

SCOPE = {"inputs": {"l": list(range(60)), "name": "web"}}


def test_an_expression_without_comprehensions_has_no_shape_and_costs_nothing_to_check() -> None:
    assert shape_of("inputs.name == 'web' && size(inputs.l) > 0") is None
    assert shape_of("inputs.name == 'a+b'") is None


def test_nested_comprehensions_multiply_the_sizes_they_iterate() -> None:
    shape = shape_of("inputs.l.all(a, inputs.l.exists(b, a == b))")
    assert shape is not None and shape.depth == 2
    assert estimate(shape, SCOPE, 10**9) >= 60 * 60


def test_a_chain_of_comprehensions_adds_up_instead_of_nesting() -> None:
    shape = shape_of("inputs.l.map(x, x * 2).filter(x, x > 2).all(x, x > 0)")
    assert shape is not None and shape.depth == 1


def test_four_nested_comprehensions_are_refused_statically() -> None:
    problem = static_problem(
        "inputs.l.all(a, inputs.l.all(b, inputs.l.all(c, inputs.l.all(d, a+b+c+d >= 0))))"
    )
    assert problem is not None and "nested 4 deep" in problem


def test_the_budget_error_is_an_evaluation_error_raised_before_evaluating() -> None:
    with pytest.raises(ExpressionBudgetExceeded) as caught:
        evaluate("inputs.l.all(a, inputs.l.all(b, a + b >= 0))", SCOPE, cost_limit=100)
    assert isinstance(caught.value, EvaluationError)
    assert caught.value.details["limit"] == 100


def test_macro_names_inside_strings_are_not_comprehensions() -> None:
    assert shape_of("inputs.name == 'x.all(y, true)'") is None


def test_a_chain_of_concatenations_over_a_big_probed_file_is_over_the_budget() -> None:
    # each + copies what it has built so far: the time is quadratic in the number of + and
    # linear in the content, with no comprehension for the estimate to see
    scope = {"observed": {"content": "a" * (4 * 1024 * 1024)}}
    source = "size(" + " + ".join(["observed.content"] * 30) + ")"
    with pytest.raises(ExpressionBudgetExceeded):
        evaluate(source, scope)


def test_one_concatenation_of_small_values_stays_cheap() -> None:
    shape = shape_of("inputs.name + '-' + string(size(inputs.l))")
    assert shape is not None and shape.pluses == 2
    assert estimate(shape, SCOPE, 10**6) < 1000
    assert evaluate("inputs.name + '-' + string(size(inputs.l))", SCOPE) == "web-60"
