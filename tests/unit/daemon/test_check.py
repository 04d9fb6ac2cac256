"""check_workflow: the planner's questions in the daemon's order, observing only when needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.config.loader import load_text
from reconciler.config.snapshot import LoadedWorkflow
from reconciler.daemon.check import check_workflow
from reconciler.daemon.planner import Next, RunReason
from reconciler.engine.drift import FieldDiff
from reconciler.status import Health

NOW = datetime(2026, 12, 6, tzinfo=UTC)


@dataclass
class Seen:
    observed: Any = None
    in_sync: bool | None = None
    diff: list[FieldDiff] = field(default_factory=list)
    error: Any = None


def loaded(spec: str) -> LoadedWorkflow:
    text = f"""apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: w}}
spec:
{spec}  start: go
  states:
    go:
      action: {{plugin: file.write, with: {{path: out.txt, content: x}}}}
      next: done
    done: {{end: success}}
"""
    [lw] = load_text(text, path="w.yaml").workflows
    return lw


PROBE = """  observe: {plugin: file.read, with: {path: out.txt, missingOk: true}}
  desired: {content: x}
"""


async def test_a_suspended_workflow_is_decided_without_observing() -> None:
    calls: list[str] = []

    async def observe() -> Seen:
        calls.append("observe")
        return Seen(in_sync=True)

    decision, observation = await check_workflow(
        loaded("  suspend: true\n" + PROBE),
        None,
        revision="r1",
        statuses={},
        observe=observe,
        now=lambda: NOW,
    )

    assert decision.status.status is Health.SUSPENDED and decision.next is Next.DONE
    assert observation is None and calls == []


async def test_out_of_sync_runs_for_drift_with_the_observation_it_saw() -> None:
    seen = Seen(in_sync=False, diff=[FieldDiff(path="content", desired="x", observed="y")])

    async def observe() -> Seen:
        return seen

    decision, observation = await check_workflow(
        loaded(PROBE), None, revision="r1", statuses={}, observe=observe, now=lambda: NOW
    )

    assert decision.next is Next.RUN and decision.run_reason is RunReason.DRIFT
    assert observation is seen


async def test_without_a_probe_a_new_spec_runs_and_nothing_is_observed() -> None:
    async def observe() -> Seen:
        raise AssertionError("a workflow without a probe is never observed")

    decision, observation = await check_workflow(
        loaded(""), None, revision="r1", statuses={}, observe=observe, now=lambda: NOW
    )

    assert decision.next is Next.RUN and decision.run_reason is RunReason.SPEC_CHANGE
    assert observation is None
