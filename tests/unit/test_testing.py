"""The workflow test harness: scripted mocks, inline tests and run_workflow for pytest users."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from reconciler_plugins.workflow import WorkflowRun

from reconciler.config.models import Workflow, WorkflowTest
from reconciler.engine.runner import RunResult
from reconciler.errors import Conflict, PluginError
from reconciler.plugin import ActionContext, Plugin, PluginRegistry, Request, Response
from reconciler.testing import (
    MockRegistry,
    arun_workflow,
    error_class,
    mock_registry,
    run_inline_test,
    run_workflow,
)


class QueryRequest(Request):
    sql: str


class QueryResponse(Response):
    rows: list[dict[str, Any]]


class Query(Plugin[QueryRequest, QueryResponse]):
    """A read-only query (a real plugin the tests mock)."""

    check = True
    Request = QueryRequest
    Response = QueryResponse

    async def run(self, request: QueryRequest, context: ActionContext) -> QueryResponse:
        return QueryResponse(rows=[{"real": True}])


class ExecRequest(Request):
    sql: str


class Exec(Plugin[ExecRequest, Response]):
    """A statement with side effects."""

    Request = ExecRequest
    Response = Response

    async def run(self, request: ExecRequest, context: ActionContext) -> Response:
        return Response(changed=True)


def base_registry() -> PluginRegistry:
    return PluginRegistry({"sql.query": Query, "sql.exec": Exec, "workflow.run": WorkflowRun})


def database_workflow(**extra: Any) -> Workflow:
    """The database example of ``docs/python-api.md``, trimmed to what these tests need."""
    doc: dict[str, Any] = {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "app-database"},
        "spec": {
            "inputs": {"database": "app", "owner": "app_user"},
            "secrets": {"admin_dsn": "vault:secret/data/payments/admin#dsn"},
            "observe": {"plugin": "sql.query", "with": {"sql": "${{ secrets.admin_dsn }}"}},
            "desired": {"rows": [{"datname": "app", "owner": "app_user"}]},
            "start": "create",
            "states": {
                "create": {
                    "do": [
                        {
                            "plugin": "sql.exec",
                            "with": {"sql": "create database ${{ inputs.database }}"},
                            "as": "created",
                        }
                    ],
                    "retry": {"attempts": 5, "delay": "2s"},
                    "transitions": [
                        {"to": "wait_ready", "on": "success"},
                        {"to": "cleanup", "on": ["Conflict", "Timeout"]},
                        {"to": "failed", "on": "error"},
                    ],
                },
                "wait_ready": {
                    "transitions": [
                        {
                            "to": "done",
                            "poll": {
                                "plugin": "sql.query",
                                "with": {"sql": "select"},
                                "every": "5ms",
                                "until": "size(result.rows) == 1",
                            },
                        },
                        {"to": "failed", "after": "2s"},
                    ]
                },
                "cleanup": {
                    "do": [{"plugin": "sql.exec", "with": {"sql": "drop"}}],
                    "next": "failed",
                },
                "done": {"end": "success"},
                "failed": {"end": "failure"},
            },
        },
        **extra,
    }
    return Workflow.model_validate(doc)


def inline(**kw: Any) -> WorkflowTest:
    return WorkflowTest.model_validate({"name": "t", **kw})


READY = {"rows": [{"datname": "app", "owner": "app_user"}]}


async def test_design_example_inline_test_passes() -> None:
    test = inline(
        mocks={"sql.query": [{"rows": []}, READY], "sql.exec": [{"changed": True}]},
        expect={
            "path": ["create", "wait_ready", "done"],
            "end": "success",
            "outputs": {"created": {"changed": True}},
        },
    )
    outcome = await asyncio.wait_for(
        run_inline_test(database_workflow(), test, registry=base_registry()), 5
    )
    assert outcome.passed, outcome.failures
    assert outcome.path == ["create", "wait_ready", "done"] and outcome.end == "success"
    assert outcome.run is not None and outcome.run.changed


async def test_in_sync_means_no_run_and_an_empty_path() -> None:
    test = inline(mocks={"sql.query": [READY]}, expect={"path": []})
    outcome = await run_inline_test(database_workflow(), test, registry=base_registry())
    assert outcome.passed and outcome.run is None and outcome.path == []


async def test_failed_expectations_are_reported_readably() -> None:
    test = inline(
        mocks={
            "sql.query": [{"rows": []}],
            "sql.exec": [{"error": "Conflict", "message": "exists"}, {}],
        },
        expect={
            "path": ["create", "wait_ready", "done"],
            "end": "success",
            "outputs": {"created": {"changed": True}},
        },
    )
    outcome = await run_inline_test(database_workflow(), test, registry=base_registry())
    assert not outcome.passed and outcome.path == ["create", "cleanup", "failed"]
    assert outcome.failures[0].startswith(
        "path: expected ['create', 'wait_ready', 'done'], got ['create', 'cleanup', 'failed']"
    )
    assert outcome.failures[1].startswith("end: expected success, got failure")
    assert outcome.failures[2] == "outputs.created: expected {'changed': True}, got <missing>"


async def test_mock_responses_are_returned_in_order_and_the_last_repeats() -> None:
    registry = mock_registry(base_registry(), {"sql.exec": [{"changed": True}, {"changed": False}]})
    plugin = registry.instance("sql.exec")
    ctx = ActionContext(run=_run_info(), idempotency_key="k", logger=None)
    request = registry.get("sql.exec").Request.model_validate({"sql": "x"})
    answers = [await plugin.run(request, ctx) for _ in range(3)]
    assert answers == [{"changed": True}, {"changed": False}, {"changed": False}]
    assert registry.calls["sql.exec"] == [{"sql": "x"}] * 3


async def test_a_mocked_plugin_keeps_check_flag_and_response_validation() -> None:
    registry = mock_registry(base_registry(), {"sql.query": [{"rowz": []}]})
    assert registry.get("sql.query").check is True
    assert registry.get("sql.query").Response is QueryResponse
    wf = database_workflow()
    outcome = await run_inline_test(
        wf, inline(mocks={"sql.query": [{"rowz": []}], "sql.exec": [{}]}), registry=base_registry()
    )
    # the observe probe's mocked response does not fit QueryResponse: a PluginError, reported
    assert outcome.observation is not None and outcome.observation.error is not None
    assert "invalid response" in outcome.observation.error.message


async def test_unmocked_plugins_fail_with_a_clear_message() -> None:
    test = inline(
        name="forgot exec", mocks={"sql.query": [{"rows": []}]}, expect={"end": "failure"}
    )
    outcome = await run_inline_test(database_workflow(), test, registry=base_registry())
    assert outcome.passed
    assert outcome.run is not None and outcome.run.error is not None
    assert "plugin 'sql.exec' is not mocked in test 'forgot exec'" in outcome.run.error.message


def test_error_names_resolve_to_builtin_declared_or_new_plugin_errors() -> None:
    assert error_class("Conflict") is Conflict

    class QuotaExceeded(PluginError):
        retryable = True

    assert error_class("QuotaExceeded", [QuotaExceeded]) is QuotaExceeded
    made = error_class("DiskFull")
    assert issubclass(made, PluginError) and made.__name__ == "DiskFull"
    assert error_class("DiskFull") is made


async def test_custom_mock_errors_route_by_name_or_ancestor_and_respect_retryable() -> None:
    wf = database_workflow()
    # retryable: the state's retry policy (5 attempts, 2s apart, waits skipped under test)
    # tries again and the second call succeeds
    routed = inline(
        mocks={
            "sql.query": [{"rows": []}, READY],
            "sql.exec": [{"error": "DiskFull", "retryable": True}, {"changed": True}],
        },
        expect={"path": ["create", "wait_ready", "done"]},
    )
    outcome = await asyncio.wait_for(run_inline_test(wf, routed, registry=base_registry()), 5)
    assert outcome.passed, outcome.failures
    # not retryable (the default for a new name): `on: error` routes it at once
    fatal = inline(
        mocks={"sql.query": [{"rows": []}], "sql.exec": [{"error": "DiskFull"}, {}]},
        expect={"path": ["create", "failed"]},
    )
    outcome = await run_inline_test(wf, fatal, registry=base_registry())
    assert outcome.passed, outcome.failures


async def test_inline_test_inputs_override_spec_inputs() -> None:
    test = inline(
        inputs={"database": "other"}, mocks={"sql.query": [{"rows": []}, READY], "sql.exec": [{}]}
    )
    registry = base_registry()
    outcome = await run_inline_test(database_workflow(), test, registry=registry)
    assert outcome.passed, outcome.failures


async def test_child_workflows_run_with_the_same_mocks() -> None:
    child = Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "child"},
            "spec": {
                "start": "a",
                "states": {
                    "a": {"action": {"plugin": "sql.exec", "with": {"sql": "x"}}, "next": "done"},
                    "done": {"end": "success"},
                },
            },
        }
    )
    parent = Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "parent"},
            "spec": {
                "start": "a",
                "states": {
                    "a": {
                        "action": {"plugin": "workflow.run", "with": {"workflow": "child"}},
                        "next": "done",
                    },
                    "done": {"end": "success"},
                },
            },
        }
    )
    test = inline(mocks={"sql.exec": [{"changed": True}]}, expect={"end": "success"})
    outcome = await run_inline_test(
        parent, test, registry=base_registry(), workflows={"child": child}
    )
    assert outcome.passed and outcome.run is not None and outcome.run.changed


def test_run_workflow_runs_to_completion_in_a_plain_test() -> None:
    result = run_workflow(
        database_workflow(),
        mocks={"sql.query": [{"rows": []}, READY], "sql.exec": [{"changed": True}]},
        registry=base_registry(),
    )
    assert isinstance(result, RunResult)
    assert result.path == ["create", "wait_ready", "done"] and result.ok


async def test_run_workflow_inside_a_loop_points_to_arun_workflow() -> None:
    with pytest.raises(RuntimeError, match="arun_workflow"):
        run_workflow(database_workflow(), registry=base_registry())


async def test_arun_workflow_runs_inside_a_loop() -> None:
    result = await arun_workflow(
        database_workflow(),
        mocks={"sql.query": [READY], "sql.exec": [{}]},
        registry=base_registry(),
    )
    # observe said in sync, but arun_workflow always runs: the poll reads READY at once
    assert result.path == ["create", "wait_ready", "done"]


async def test_run_workflow_without_mocks_uses_the_real_plugins() -> None:
    wf = database_workflow()
    result = await arun_workflow(wf, registry=base_registry())
    # real Query returns [{"real": True}]: one row, so the poll fires immediately
    assert result.path == ["create", "wait_ready", "done"] and result.changed


def test_mock_registry_is_a_plugin_registry() -> None:
    registry = mock_registry(base_registry(), {})
    assert isinstance(registry, MockRegistry) and "workflow.run" in registry
    with pytest.raises(PluginError):
        asyncio.run(
            registry.instance("sql.exec").run(
                registry.get("sql.exec").Request.model_validate({}),
                ActionContext(run=_run_info(), idempotency_key="k", logger=None),
            )
        )


def _run_info() -> Any:
    from reconciler.plugin import RunInfo

    return RunInfo(id="r", workflow="w")
