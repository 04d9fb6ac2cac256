"""foreach states: bounded concurrency, per-item results in order, tolerate counts and percents."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.engine.journal import EventKind
from reconciler.engine.runner import Engine
from reconciler.errors import TooManyFailures
from reconciler.plugin import ActionContext, Plugin, PluginRegistry, Request, Response

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}


def each(items: Any, do: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "foreach": {"items": items, "do": do, **kw},
        "transitions": [
            {"to": "done", "on": "success"},
            {"to": "too_many", "on": "TooManyFailures"},
        ],
    }


async def test_concurrency_bounds_items_in_flight(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "hosts": each(
                list(range(9)),
                [{"plugin": "test.sleep", "with": {"seconds": 0.02, "value": "${{ host }}"}}],
                concurrency=3,
                **{"as": "host"},
            ),
            "too_many": {"end": "failure"},
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    sleep = registry.instance("test.sleep")
    assert result.ok and sleep.finished == 9
    assert sleep.max_in_flight == 3
    assert [r["output"]["value"] for r in result.outputs["hosts"]] == list(range(9))


async def test_items_from_cel_and_actions_in_order_per_item(
    engine: Engine, registry: PluginRegistry, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "each": each(
                "inputs.names",
                [
                    {"plugin": "test.echo", "with": {"value": "${{ item }}-1"}, "as": "first"},
                    {"plugin": "test.echo", "with": {"value": "${{ outputs.first.value }}-2"}},
                ],
            ),
            "too_many": {"end": "failure"},
            **END,
        },
        inputs={"names": ["a", "b"]},
    )
    result = await engine.run(w, run_id="r")
    assert result.ok
    assert result.outputs["each"] == [
        {"item": "a", "ok": True, "output": {"changed": False, "value": "a-1-2"}},
        {"item": "b", "ok": True, "output": {"changed": False, "value": "b-1-2"}},
    ]
    keys = sorted(c["key"] for c in registry.instance("test.echo").calls)
    assert keys == ["r/each/0/0", "r/each/0/1", "r/each/1/0", "r/each/1/1"]
    actions = [e for e in await entries("r") if e.kind is EventKind.ACTION]
    assert sorted(e.detail["item"] for e in actions) == [0, 0, 1, 1]


async def test_failures_within_tolerate_count_succeed_and_report_every_result(
    engine: Engine, wf: Any
) -> None:
    w = wf(
        {
            "each": each(
                [1, 2, 3, 4],
                [
                    {"plugin": "test.echo", "with": {"value": "${{ item }}"}},
                    {
                        "plugin": "test.fail",
                        "with": {
                            "error": "${{ item % 2 == 0 ? 'Conflict' : 'NotFound' }}",
                            "times": "${{ item <= 2 ? -1 : 0 }}",
                        },
                    },
                ],
                tolerate=2,
                concurrency=4,
            ),
            "too_many": {"end": "failure"},
            **END,
        }
    )
    result = await engine.run(w)
    assert result.ok, result.error
    res = result.outputs["each"]
    assert [r["ok"] for r in res] == [False, False, True, True]
    assert res[0]["error"] == {"name": "NotFound", "message": ""}
    assert res[1]["error"]["name"] == "Conflict"
    assert res[2] == {"item": 3, "ok": True, "output": {"changed": True}}


async def test_failures_beyond_tolerate_route_too_many_failures_but_keep_results(
    engine: Engine, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "each": each(
                [1, 2, 3],
                [{"plugin": "test.fail", "with": {"times": "${{ item == 3 ? 0 : -1 }}"}}],
                tolerate=1,
                concurrency=2,
            ),
            "too_many": {"end": "success"},
            **END,
        }
    )
    result = await engine.run(w)
    assert result.path == ["each", "too_many"]
    assert [r["ok"] for r in result.outputs["each"]] == [False, False, True]
    t = next(e for e in await entries(result.run.id) if e.kind is EventKind.TRANSITION)
    assert t.outcome == TooManyFailures.__name__
    assert len(t.detail["outputs"]["each"]) == 3


async def test_tolerate_as_a_percentage_of_the_items(engine: Engine, wf: Any) -> None:
    def run_with(tolerate: str) -> Any:
        return engine.run(
            wf(
                {
                    "each": each(
                        list(range(10)),
                        [{"plugin": "test.fail", "with": {"times": "${{ item < 2 ? -1 : 0 }}"}}],
                        tolerate=tolerate,
                        concurrency=10,
                    ),
                    "too_many": {"end": "failure"},
                    **END,
                }
            )
        )

    assert (await run_with("20%")).ok  # 2 of 10 failed, 20% of 10 = 2 tolerated
    assert (await run_with("19%")).path == ["each", "too_many"]  # only 1 tolerated


async def test_items_that_are_not_a_list_fail_with_evaluation_error(
    engine: Engine, wf: Any
) -> None:
    w = wf(
        {
            "each": each("inputs.n", [{"plugin": "test.echo"}]),
            "too_many": {"end": "failure"},
            **END,
        },
        inputs={"n": 3},
    )
    result = await engine.run(w)
    assert result.error is not None and result.error.name == "EvaluationError"


class TaskRequest(Request):
    pass


class Tasks(Plugin[TaskRequest, Response]):
    """Remembers which asyncio task each call ran on."""

    Request = TaskRequest
    Response = Response

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []

    async def run(self, request: TaskRequest, context: ActionContext) -> Response:
        self.tasks.append(asyncio.current_task())
        await asyncio.sleep(0)  # let the other items in
        return Response()


async def test_items_share_one_task_per_concurrency_slot_not_one_each(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    # a foreach of thousands of items must not hold thousands of tasks and coroutines at once
    registry.register("test.tasks", Tasks)
    many = {"items": list(range(40)), "do": [{"plugin": "test.tasks"}], "concurrency": 4}
    alone = {"items": list(range(5)), "do": [{"plugin": "test.tasks"}]}
    w = wf(
        {
            "many": {"foreach": many, "next": "alone"},
            "alone": {"foreach": alone, "next": "done"},
            **END,
        }
    )
    result = await engine.run(w)

    assert result.ok and len(result.outputs["many"]) == 40 and len(result.outputs["alone"]) == 5
    tasks = registry.instance("test.tasks").tasks
    assert len(set(tasks[:40])) == 4
    assert set(tasks[40:]) == {asyncio.current_task()}  # concurrency 1: the run's own task
