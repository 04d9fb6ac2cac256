"""The planner's decision rules, one rule per test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.config.models import Workflow
from reconciler.config.snapshot import Problem
from reconciler.daemon.planner import (
    Decision,
    Next,
    Reason,
    RunReason,
    plan_finished,
    plan_invalid,
    plan_observed,
    plan_static,
)
from reconciler.engine.drift import FieldDiff, diff_subset
from reconciler.status import SUSPENDED_MANUALLY, Health, Sync, WorkflowStatusRecord
from reconciler.store.commands import SYNC_RUN_REASON

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Seen:
    """An observation value as the engine reports it."""

    observed: Any
    in_sync: bool | None
    diff: list[FieldDiff] = field(default_factory=list)
    error: str | None = None


def seen(desired: Any, observed: Any) -> Seen:
    diff = diff_subset(desired, observed)
    return Seen(observed, not diff, diff)


def workflow(name: str = "motd", *, probe: bool = True, **spec: Any) -> Workflow:
    body: dict[str, Any] = {
        "start": "write",
        "states": {
            "write": {
                "action": {"plugin": "file.write", "with": {"path": "/tmp/x", "content": "hi"}},
                "next": "done",
                "onError": "failed",
            },
            "done": {"end": "success"},
            "failed": {"end": "failure"},
        },
        **spec,
    }
    if probe:
        body["observe"] = {"plugin": "file.read", "with": {"path": "/tmp/x"}}
        body["desired"] = {"content": "hi"}
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def converged(
    name: str = "motd", *, revision: str = "r1", digest: str = "d1"
) -> WorkflowStatusRecord:
    return WorkflowStatusRecord(
        name=name,
        sync=Sync.SYNCED,
        status=Health.CONVERGED,
        last_applied_revision=revision,
        last_attempted_revision=revision,
        spec_digest=digest,
        last_run_id="run-1",
    )


def test_invalid_file_marks_invalid_with_position_and_keeps_last_good_facts() -> None:
    problem = Problem("motd.yaml", 7, 3, "unknown state 'dne'", workflow="motd")
    decision = plan_invalid("motd", converged(), problems=[problem], now=NOW)
    assert decision.next is Next.DONE
    assert decision.status.status is Health.INVALID
    assert decision.status.reason == Reason.INVALID_SPEC
    assert decision.status.message == "motd.yaml:7:3: unknown state 'dne'"
    assert decision.status.last_applied_revision == "r1"
    assert decision.status.spec_digest == "d1"
    assert decision.status.sync is Sync.SYNCED


def test_invalid_message_counts_further_errors() -> None:
    problems = [Problem("a.yaml", 1, 1, "one"), Problem("a.yaml", 2, 1, "two")]
    decision = plan_invalid("new", None, problems=problems, now=NOW)
    assert decision.status.message == "a.yaml:1:1: one (and 1 more)"


def test_suspended_workflow_is_suspended_and_nothing_runs() -> None:
    decision = plan_static(workflow(suspend=True), converged(), revision="r2", statuses={}, now=NOW)
    assert decision.next is Next.DONE
    assert decision.status.status is Health.SUSPENDED
    assert decision.status.last_applied_revision == "r1"


def test_dependent_waits_until_dependency_is_converged_at_this_revision() -> None:
    wf = workflow("app", dependsOn=["database"])
    stale = {"database": converged("database", revision="r1")}
    waiting = plan_static(wf, None, revision="r2", statuses=stale, now=NOW)
    assert waiting.next is Next.DONE
    assert waiting.status.status is Health.PENDING
    assert waiting.status.reason == Reason.DEPENDENCY_NOT_READY
    assert "database" in waiting.status.message

    fresh = {"database": converged("database", revision="r2")}
    ready = plan_static(wf, None, revision="r2", statuses=fresh, now=NOW)
    assert ready.next is Next.OBSERVE


def observed(
    observation: Seen | None,
    *,
    wf: Workflow | None = None,
    status: WorkflowStatusRecord | None = None,
    revision: str = "r2",
    digest: str = "d1",
    manual: bool = False,
) -> Decision:
    """What the planner decides for ``wf`` (default: :func:`workflow`) after observing it,
    its last status being ``status`` (default: :func:`converged`), at :data:`NOW`."""
    return plan_observed(
        wf or workflow(),
        status or converged(),
        revision=revision,
        digest=digest,
        observation=observation,
        manual=manual,
        now=NOW,
    )


def test_out_of_sync_starts_a_drift_run_and_explains_the_diff() -> None:
    decision = observed(seen({"content": "hi"}, {"content": "bye"}))
    assert decision.next is Next.RUN
    assert decision.run_reason is RunReason.DRIFT
    assert decision.status.sync is Sync.OUT_OF_SYNC
    assert decision.status.status is Health.PROGRESSING
    assert decision.status.diff == [{"path": "content", "desired": "hi", "observed": "bye"}]
    assert decision.message == "workflow motd is out of sync (content differs)"
    assert decision.status.last_attempted_revision == "r2"


def test_in_sync_workflow_whose_spec_changed_is_converged_without_a_run() -> None:
    decision = observed(
        seen({"content": "hi"}, {"content": "hi", "size": 2}),
        status=converged(digest="old"),
        digest="new",
    )
    assert decision.next is Next.DONE
    assert decision.converged
    assert decision.status.status is Health.CONVERGED
    assert decision.status.sync is Sync.SYNCED
    assert decision.status.last_applied_revision == "r2"
    assert decision.status.spec_digest == "new"
    assert decision.status.last_run_id == "run-1"
    assert "without a run" in decision.message


def test_manual_sync_runs_even_when_in_sync() -> None:
    decision = observed(seen({"content": "hi"}, {"content": "hi"}), revision="r1", manual=True)
    assert decision.next is Next.RUN
    assert decision.run_reason is RunReason.MANUAL


def test_workflow_without_probe_runs_when_its_spec_changed_and_not_otherwise() -> None:
    wf = workflow(probe=False)
    changed = observed(None, wf=wf, status=converged(digest="old"), digest="new")
    assert changed.next is Next.RUN
    assert changed.run_reason is RunReason.SPEC_CHANGE
    assert changed.message == "workflow motd: spec changed and it has no observe probe"

    unknown = plan_observed(
        wf, None, revision="r2", digest="new", observation=None, manual=False, now=NOW
    )
    assert unknown.run_reason is RunReason.SPEC_CHANGE
    assert unknown.message == "workflow motd: no run of it is recorded and it has no observe probe"

    same = observed(None, wf=wf, status=converged(digest="d1"))
    assert same.next is Next.DONE
    assert same.status.status is Health.CONVERGED
    assert same.status.last_applied_revision == "r2"


def test_workflow_without_probe_retries_after_a_failed_run() -> None:
    failed = converged().model_copy(update={"status": Health.DEGRADED, "failures": 1})
    decision = observed(None, wf=workflow(probe=False), status=failed, revision="r1")
    assert decision.next is Next.RUN
    assert decision.run_reason is RunReason.RETRY


def test_failing_probe_degrades_and_backs_off_without_running() -> None:
    decision = observed(Seen(None, None, [], "ConnectionFailed: refused"))
    assert decision.next is Next.DONE
    assert decision.failed
    assert decision.status.status is Health.DEGRADED
    assert decision.status.sync is Sync.UNKNOWN
    assert decision.status.reason == Reason.OBSERVE_FAILED


def finished(
    observation: Seen | None,
    *,
    status: WorkflowStatusRecord | None = None,
    run_id: str = "run-2",
    error: str | None = None,
) -> Decision:
    """What the planner decides when run ``run_id`` of :func:`workflow` at revision ``r2``
    (spec ``d2``) finished with ``error``, its last status being ``status`` (default:
    :func:`converged`), and a probe afterwards saw ``observation``."""
    return plan_finished(
        workflow(),
        status or converged(),
        revision="r2",
        digest="d2",
        run_id=run_id,
        error=error,
        observation=observation,
        now=NOW,
    )


def test_successful_run_that_leaves_drift_is_degraded_drift_remains() -> None:
    decision = finished(seen({"content": "hi"}, {"content": "bye"}), run_id="3f2a9c0e-aaaa")
    assert decision.failed
    assert decision.status.status is Health.DEGRADED
    assert decision.status.reason == Reason.DRIFT_REMAINS
    assert decision.status.message.startswith("run 3f2a9c0e finished, drift remains")
    assert decision.status.last_applied_revision == "r1"
    assert decision.status.failures == 1


def test_failed_run_is_degraded_run_failed_and_counts_failures() -> None:
    before = converged().model_copy(update={"failures": 2})
    decision = finished(None, status=before, error="Conflict: exists")
    assert decision.failed
    assert decision.status.status is Health.DEGRADED
    assert decision.status.reason == Reason.RUN_FAILED
    assert decision.status.failures == 3
    assert decision.status.last_run_id == "run-2"
    assert decision.status.last_attempted_revision == "r2"
    assert decision.status.last_applied_revision == "r1"
    assert decision.status.spec_digest == "d2", "the spec it attempted, so a retry is a retry"


def test_successful_run_that_converges_records_the_revision_and_resets_failures() -> None:
    before = converged().model_copy(update={"failures": 4, "status": Health.PROGRESSING})
    decision = finished(seen({"content": "hi"}, {"content": "hi"}), status=before)
    assert decision.converged and not decision.failed
    assert decision.status.status is Health.CONVERGED
    assert decision.status.reason == Reason.RUN_SUCCEEDED
    assert decision.status.failures == 0
    assert decision.status.last_applied_revision == "r2"
    assert decision.status.spec_digest == "d2"
    assert decision.status.last_success_at == NOW


def test_diff_description_names_the_fields_that_differ() -> None:
    from reconciler.daemon.planner import describe_diff

    assert describe_diff(diff_subset({"a": 1}, {"a": 2})) == "a differs"
    assert describe_diff(diff_subset({"a": 1}, {})) == "a is missing"
    assert describe_diff(diff_subset({"a": 1, "b": 2}, {"a": 0, "b": 0})) == (
        "2 fields differ (a, b)"
    )
    four = diff_subset({"a": 1, "b": 1, "c": 1, "d": 1}, {})
    assert describe_diff(four) == "4 fields differ (a, b, c, …)"


def test_probe_without_desired_state_decides_like_a_workflow_without_probe() -> None:
    body = workflow().model_dump(by_alias=True, exclude_none=True)
    del body["spec"]["desired"]
    wf = Workflow.model_validate(body)
    observation = Seen({"content": "anything"}, None)
    unchanged = observed(observation, wf=wf)
    assert unchanged.next is Next.DONE
    assert unchanged.status.status is Health.CONVERGED
    changed = observed(observation, wf=wf, digest="d2")
    assert changed.next is Next.RUN
    assert changed.run_reason is RunReason.SPEC_CHANGE
    assert changed.status.message == "spec changed and its probe has no desired state"


def failed_run(*, sync: Sync = Sync.SYNCED) -> WorkflowStatusRecord:
    """The status a failed run ``run-2f`` of the spec ``d2`` (at revision ``r2``) left behind,
    with ``sync`` as the probe last saw it."""
    failed = finished(None, run_id="run-2f", error="CommandFailed: sh exited with code 1")
    return failed.status.model_copy(update={"sync": sync})


IN_SYNC = seen({"content": "hi"}, {"content": "hi"})
DRIFTED = seen({"content": "hi"}, {"content": "bye"})


def test_failed_run_stays_degraded_although_the_probe_now_agrees() -> None:
    decision = observed(IN_SYNC, status=failed_run(sync=Sync.OUT_OF_SYNC), digest="d2")
    assert decision.next is Next.DONE
    assert not decision.converged and not decision.failed
    assert decision.status.status is Health.DEGRADED
    assert decision.status.reason == Reason.RUN_FAILED
    assert decision.status.message == "run run-2f failed: CommandFailed: sh exited with code 1"
    assert decision.status.sync is Sync.SYNCED, "sync says what the probe says"
    assert decision.status.observed_at == NOW
    assert decision.status.failures == 1
    assert decision.status.last_applied_revision == "r1"
    assert "last run run-2f at this spec failed" in decision.message


def test_failed_run_stays_degraded_when_the_probe_then_fails_with_sync_unknown() -> None:
    broken_probe = Seen(None, None, [], "ConnectionFailed: refused")
    decision = observed(broken_probe, status=failed_run(), digest="d2")
    assert decision.status.reason == Reason.RUN_FAILED
    assert decision.status.status is Health.DEGRADED
    assert decision.status.sync is Sync.UNKNOWN
    assert decision.failed, "a failing probe backs off as always"
    assert "ConnectionFailed: refused" in decision.message


def test_failed_run_is_cleared_by_a_spec_change_that_is_in_sync() -> None:
    decision = observed(IN_SYNC, status=failed_run(), revision="r3", digest="d3")
    assert decision.converged
    assert decision.status.status is Health.CONVERGED
    assert decision.status.reason == Reason.IN_SYNC
    assert decision.status.last_applied_revision == "r3"


def test_failed_run_is_retried_by_a_manual_sync_and_by_drift() -> None:
    manual = observed(IN_SYNC, status=failed_run(), digest="d2", manual=True)
    assert manual.next is Next.RUN and manual.run_reason is RunReason.MANUAL
    drift = observed(DRIFTED, status=failed_run(), digest="d2")
    assert drift.next is Next.RUN and drift.run_reason is RunReason.DRIFT


def test_failed_run_is_cleared_by_a_run_that_succeeds() -> None:
    decision = finished(IN_SYNC, status=failed_run(), run_id="run-3")
    assert decision.converged
    assert decision.status.reason == Reason.RUN_SUCCEEDED
    assert decision.status.failures == 0


def test_failed_spec_change_without_probe_is_retried_with_reason_retry() -> None:
    wf = workflow(probe=False)
    first = observed(None, wf=wf, status=converged(digest="d1"), digest="d2")
    assert first.run_reason is RunReason.SPEC_CHANGE
    after = plan_finished(
        wf,
        first.status,
        revision="r2",
        digest="d2",
        run_id="run-2",
        error="CommandFailed: sh exited with code 1",
        observation=None,
        now=NOW,
    )
    again = observed(None, wf=wf, status=after.status, digest="d2")
    assert again.run_reason is RunReason.RETRY
    assert again.status.reason == Reason.RETRYING


def test_the_planner_names_a_manual_run_and_a_suspension_as_the_store_recognises_them() -> None:
    # the store answers syncs with runs of this reason and keeps suspended rows saying this
    assert RunReason.MANUAL == SYNC_RUN_REASON
    assert Reason.SUSPENDED_MANUALLY == SUSPENDED_MANUALLY
