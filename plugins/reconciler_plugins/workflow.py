"""The ``workflow.run`` plugin: run another workflow as a child run, linked to its parent.

Composition for workflow authors. The plugin only forwards to ``ActionContext.run_child``, which
the engine (``reconciler/engine/runner.py``) provides: it runs the named workflow (``inputs``
merged over its ``spec.inputs``) with ``parent_id`` set to the calling run, and raises
``ChildRunFailed`` (naming the child run id) when the child fails, so a failing child fails its
parent unless an ``on:`` transition routes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from reconciler.errors import ChildRunFailed, NotFound, PluginError
from reconciler.plugin import ActionContext, Plugin, Request, Response


class WorkflowRunRequest(Request):
    workflow: str = Field(description="metadata.name of the workflow to run.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Merged over the child's spec.inputs."
    )


class WorkflowRunResponse(Response):
    run_id: str = Field(alias="runId", description="The child run's id.")
    outputs: dict[str, Any] = Field(default_factory=dict, description="The child's outputs.")


class WorkflowRun(Plugin[WorkflowRunRequest, WorkflowRunResponse]):
    """Run another workflow as a child run; fails with ChildRunFailed when the child fails."""

    Request = WorkflowRunRequest
    Response = WorkflowRunResponse
    errors = (ChildRunFailed, NotFound)

    async def run(self, request: WorkflowRunRequest, context: ActionContext) -> WorkflowRunResponse:
        if context.run_child is None:
            raise PluginError("workflow.run can only be used inside an engine run")
        result = await context.run_child(request.workflow, dict(request.inputs))
        return WorkflowRunResponse(
            run_id=result["runId"],
            outputs=result.get("outputs", {}),
            changed=bool(result.get("changed", False)),
        )
