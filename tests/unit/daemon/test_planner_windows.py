"""The planner under change windows: a due run a window blocks does not start."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.config.loader import load_text
from reconciler.config.models import OperatorWindow, Workflow
from reconciler.config.snapshot import LoadedWorkflow
from reconciler.daemon.check import check_workflow
from reconciler.daemon.planner import Decision, Next, Reason, RunReason, plan_observed
from reconciler.daemon.windows import WindowVerdict, verdict_for
from reconciler.engine.drift import FieldDiff, diff_subset
from reconciler.status import Health, Sync, WorkflowStatusRecord

NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
"""A Monday, half past noon UTC: inside the lunch freeze below."""
FREEZE = """  windows:
    - {kind: deny, schedule: "0 12 * * *", duration: 1h, description: lunch freeze%s}
"""


@dataclass(frozen=True)
class Seen:
    observed: Any
    in_sync: bool | None
    diff: list[FieldDiff] = field(default_factory=list)
    error: str | None = None


def drifted() -> Seen:
    observed = {"content": "tampered"}
    return Seen(observed, False, diff_subset({"content": "hi"}, observed))


def loaded(windows: str = FREEZE % "", *, probe: bool = True, labels: str = "{}") -> LoadedWorkflow:
    probe_text = (
        "  observe: {plugin: file.read, with: {path: out.txt}}\n  desired: {content: hi}\n"
        if probe
        else ""
    )
    text = f"""apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: motd, labels: {labels}}}
spec:
{windows}{probe_text}  start: go
  states:
    go:
      action: {{plugin: file.write, with: {{path: out.txt, content: hi}}}}
      next: done
    done: {{end: success}}
"""
    [lw] = load_text(text, path="motd.yaml").workflows
    return lw


def converged() -> WorkflowStatusRecord:
    return WorkflowStatusRecord(
        name="motd",
        sync=Sync.SYNCED,
        status=Health.CONVERGED,
        last_applied_revision="r1",
        last_attempted_revision="r1",
        spec_digest="d1",
        last_run_id="run-1",
    )


def verdict(workflow: Workflow, operator: list[OperatorWindow] | None = None) -> WindowVerdict:
    found = verdict_for(workflow, operator or [], NOW)
    assert found is not None
    return found


def decide(
    lw: LoadedWorkflow,
    observation: Seen | None,
    *,
    manual: bool = False,
    digest: str = "d1",
    operator: list[OperatorWindow] | None = None,
) -> Decision:
    return plan_observed(
        lw.workflow,
        converged(),
        revision="r2",
        digest=digest,
        observation=observation,
        manual=manual,
        now=NOW,
        window=verdict_for(lw.workflow, operator or [], NOW),
    )


def test_deny_window_keeps_a_drifted_workflow_out_of_sync_without_a_run() -> None:
    decision = decide(loaded(), drifted())
    assert decision.next is Next.DONE
    assert decision.run_reason is None
    assert decision.status.status is Health.PENDING
    assert decision.status.sync is Sync.OUT_OF_SYNC
    assert decision.status.reason == Reason.WINDOW_CLOSED
    assert "deny window spec.windows[0]" in decision.status.message
    assert "lunch freeze" in decision.status.message
    assert "content differs" in decision.status.message
    assert decision.status.diff  # what differs is still shown
    assert not decision.failed
    # checked again when the window closes, at 13:00
    assert decision.retry_at == datetime(2026, 5, 4, 13, tzinfo=UTC)
    # nothing the next run decides from changes
    assert decision.status.last_applied_revision == "r1"
    assert decision.status.last_attempted_revision == "r1"
    assert decision.status.spec_digest == "d1"


def test_a_window_does_not_stop_an_in_sync_workflow_from_converging() -> None:
    decision = decide(loaded(), Seen({"content": "hi"}, True))
    assert decision.converged
    assert decision.status.status is Health.CONVERGED


def test_a_spec_change_without_a_probe_waits_for_the_window() -> None:
    decision = decide(loaded(probe=False), None, digest="d2")
    assert decision.next is Next.DONE
    assert decision.status.reason == Reason.WINDOW_CLOSED
    assert decision.status.spec_digest == "d1"


def test_a_manual_sync_a_window_refuses_counts_for_nothing() -> None:
    # in sync: recorded converged, no run
    in_sync = decide(loaded(), Seen({"content": "hi"}, True), manual=True)
    assert in_sync.next is Next.DONE
    assert in_sync.status.status is Health.CONVERGED
    # drifted: waits for the window like an automatic run
    out_of_sync = decide(loaded(), drifted(), manual=True)
    assert out_of_sync.next is Next.DONE
    assert out_of_sync.status.reason == Reason.WINDOW_CLOSED
    assert "manual sync" not in out_of_sync.status.message


def test_a_manual_sync_runs_when_every_blocking_window_allows_it() -> None:
    decision = decide(loaded(FREEZE % ", manualSync: true"), drifted(), manual=True)
    assert decision.next is Next.RUN
    assert decision.run_reason is RunReason.MANUAL
    # but an automatic run still waits
    automatic = decide(loaded(FREEZE % ", manualSync: true"), drifted())
    assert automatic.status.reason == Reason.WINDOW_CLOSED


def test_outside_its_windows_a_workflow_runs_as_without_them() -> None:
    lw = loaded("""  windows:
    - {kind: deny, schedule: "0 3 * * *", duration: 1h}
""")
    decision = decide(lw, drifted())
    assert decision.next is Next.RUN
    assert decision.run_reason is RunReason.DRIFT
    assert decision.retry_at is None


def test_an_operator_window_selected_by_label_blocks_the_run() -> None:
    lw = loaded("", labels="{tier: prod}")
    operator = [
        OperatorWindow.model_validate(
            {
                "kind": "deny",
                "schedule": "0 12 * * *",
                "duration": "1h",
                "selector": {"matchLabels": {"tier": "prod"}},
            }
        )
    ]
    decision = decide(lw, drifted(), operator=operator)
    assert decision.status.reason == Reason.WINDOW_CLOSED
    assert "deny window windows-file[0]" in decision.status.message
    dev = decide(loaded("", labels="{tier: dev}"), drifted(), operator=operator)
    assert dev.next is Next.RUN


def test_an_allow_window_holds_the_run_until_it_opens() -> None:
    lw = loaded("""  windows:
    - {kind: allow, schedule: "0 22 * * 1-5", duration: 2h}
""")
    decision = decide(lw, drifted())
    assert decision.status.reason == Reason.WINDOW_CLOSED
    assert decision.retry_at == datetime(2026, 5, 4, 22, tzinfo=UTC)
    assert verdict(lw.workflow).blocked


async def test_check_workflow_hands_the_window_of_the_instant_it_decides_at() -> None:
    lw = loaded()
    asked: list[datetime] = []

    def window(at: datetime) -> WindowVerdict | None:
        asked.append(at)
        return verdict_for(lw.workflow, [], at)

    async def observe() -> Seen:
        return drifted()

    decision, _ = await check_workflow(
        lw,
        converged(),
        revision="r2",
        statuses={},
        observe=observe,
        now=lambda: NOW,
        window=window,
    )
    assert asked == [NOW]
    assert decision.status.reason == Reason.WINDOW_CLOSED
