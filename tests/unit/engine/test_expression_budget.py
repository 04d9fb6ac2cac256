"""One cheap-to-write CEL expression must not stall the engine: the budget refuses it first."""

from __future__ import annotations

import time
from typing import Any

from reconciler.engine.runner import Engine

FOUR_DEEP = "inputs.l.all(a, inputs.l.all(b, inputs.l.all(c, inputs.l.all(d, a+b+c+d >= 0))))"
THREE_DEEP = "inputs.l.all(a, inputs.l.all(b, inputs.l.all(c, a+b+c >= 0)))"


def choosing(wf: Any, when: str, size: int) -> Any:
    return wf(
        {
            "decide": {
                "do": [{"plugin": "test.echo", "with": {"value": 1}}],
                "transitions": [
                    {"to": "done", "when": when},
                    {"on": ["ExpressionBudgetExceeded"], "to": "too_costly"},
                    {"to": "done"},
                ],
            },
            "done": {"end": "success"},
            "too_costly": {"end": "failure"},
        },
        inputs={"l": list(range(size))},
    )


async def test_four_nested_comprehensions_over_60_items_are_refused_at_once_and_routed_by_on(
    engine: Engine, wf: Any
) -> None:
    started = time.monotonic()
    result = await engine.run(choosing(wf, FOUR_DEEP, 60))
    elapsed = time.monotonic() - started

    assert result.path == ["decide", "too_costly"]
    assert "ExpressionBudgetExceeded" in str(result.error)
    assert elapsed < 1.0  # evaluated, it takes seconds


async def test_an_expression_within_the_budget_is_evaluated(engine: Engine, wf: Any) -> None:
    result = await engine.run(choosing(wf, THREE_DEEP, 30))

    assert result.ok, result.error
    assert result.path == ["decide", "done"]


async def test_the_operator_budget_is_what_the_engine_enforces(
    registry: Any, journal: Any, wf: Any
) -> None:
    strict = Engine(registry, journal=journal, expression_cost_limit=1_000)

    result = await strict.run(choosing(wf, THREE_DEEP, 30))

    assert result.path == ["decide", "too_costly"]


async def test_a_costly_foreach_items_expression_fails_the_run_quickly(
    engine: Engine, wf: Any
) -> None:
    workflow = wf(
        {
            "each": {
                "foreach": {
                    "items": "inputs.l.map(a, inputs.l.map(b, inputs.l.map(c, a + b + c)))",
                    "do": [{"plugin": "test.echo", "with": {"value": "${{ item }}"}}],
                },
                "transitions": [
                    {"on": ["EvaluationError"], "to": "failed"},
                    {"to": "done"},
                ],
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
        inputs={"l": list(range(200))},
    )

    result = await engine.run(workflow)

    assert result.path == ["each", "failed"]
    assert "ExpressionBudgetExceeded" in str(result.error)


async def test_a_costly_template_within_the_budget_is_rendered_by_the_worker_process(
    engine: Engine, wf: Any
) -> None:
    costly = "size(inputs.l.map(a, inputs.l.map(b, a * b)))"  # 150 x 150: over the inline cost
    workflow = wf(
        {
            "say": {
                "do": [
                    {
                        "plugin": "test.echo",
                        "as": "said",
                        "with": {"value": f"${{{{ {costly} }}}} of ${{{{ inputs.name }}}}"},
                    }
                ],
                "next": "done",
            },
            "done": {"end": "success"},
        },
        inputs={"l": list(range(150)), "name": "l"},
    )

    result = await engine.run(workflow)

    assert result.ok, result.error
    assert result.outputs["said"]["value"] == "150 of l"
