"""The planner: the daemon's decision rules, as pure functions from facts to a decision.

Called by: :func:`reconciler.daemon.check.check_workflow` and
:mod:`reconciler.daemon.reconcile` (the daemon), :mod:`reconciler.cli.converge` (``plan`` and
``apply``). Calls: nothing. For one workflow at one revision the questions are, in order:

1. :func:`plan_invalid` when the workflow's file does not load (status ``Invalid``; the previous
   status fields such as ``last_applied_revision`` stay, nothing runs with the broken spec);
2. :func:`plan_static` — suspended (``Suspended``, nothing runs), waiting for dependencies
   (``Pending``), or "observe first";
3. :func:`plan_observed` with the engine's :class:`Observation` (or ``None`` when the workflow
   has no ``observe`` probe) — run (reason ``drift``, ``spec-change``, ``retry`` or ``manual``),
   record ``Converged`` at this revision *without* a run, or keep a failed run's ``Degraded``
   (``RunFailed``) although the probe agrees (see :func:`failed_at_this_spec`);
4. :func:`plan_finished` after a run, with a fresh observation — ``Converged``, or ``Degraded``
   (``RunFailed``, or ``DriftRemains``: "run finished, drift remains").

``WorkflowStatusRecord.spec_digest`` is the digest of the spec the workflow was last run or
recorded converged with — a failed run records it too — so "the spec changed" means changed since
the last attempt, and a retry of a failed spec is a ``retry``, not a ``spec-change``.

Nothing here does I/O or reads the clock: ``now`` is passed in, so every rule is a plain unit test.
Each :class:`Decision` carries the complete new :class:`WorkflowStatusRecord` to store and a
one-line ``message`` in plain words, which is also what the daemon logs.

Reasons (``WorkflowStatusRecord.reason``) the planner writes, documented in docs/daemon.md:
``InvalidSpec``, ``Suspended``, ``DependencyNotReady``, ``ObserveFailed``, ``InSync``,
``OutOfSync``, ``SpecChanged``, ``Retrying``, ``ManualSync``, ``Resuming`` (written by
:mod:`reconciler.daemon.reconcile`), ``RunSucceeded``, ``RunFailed``, ``DriftRemains``,
``WindowClosed`` (a run is due but a change window blocks it; see :func:`window_closed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from reconciler.config.models import Workflow
from reconciler.config.snapshot import Problem
from reconciler.daemon.windows import WindowVerdict
from reconciler.engine.drift import FieldDiff
from reconciler.status import Health, Sync, WorkflowStatusRecord

MAX_DIFF_ITEMS = 20
"""At most this many field diffs are kept in a status (the rest are counted)."""


class RunReason(StrEnum):
    """Why a run starts (``RunRecord.reason``)."""

    DRIFT = "drift"
    SPEC_CHANGE = "spec-change"
    RETRY = "retry"
    MANUAL = "manual"
    DELETE = "delete"


class Reason(StrEnum):
    """The ``reason`` field of a status: one CamelCase word, stable for alerting."""

    INVALID_SPEC = "InvalidSpec"
    SUSPENDED = "Suspended"
    SUSPENDED_MANUALLY = "SuspendedManually"
    DEPENDENCY_NOT_READY = "DependencyNotReady"
    OBSERVE_FAILED = "ObserveFailed"
    IN_SYNC = "InSync"
    OUT_OF_SYNC = "OutOfSync"
    SPEC_CHANGED = "SpecChanged"
    RETRYING = "Retrying"
    MANUAL_SYNC = "ManualSync"
    RESUMING = "Resuming"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_FAILED = "RunFailed"
    DRIFT_REMAINS = "DriftRemains"
    WINDOW_CLOSED = "WindowClosed"


class Observation(Protocol):
    """What :meth:`reconciler.engine.runner.Engine.observe` returns (read structurally)."""

    @property
    def observed(self) -> Any: ...

    @property
    def in_sync(self) -> bool | None: ...

    @property
    def diff(self) -> Sequence[FieldDiff]: ...

    @property
    def error(self) -> Any: ...


class Next(StrEnum):
    """What the caller (reconcile, or plan/apply) does after a decision."""

    DONE = "done"
    """Store the status; nothing else to do."""
    OBSERVE = "observe"
    """Run the observe probe (if any), then call :func:`plan_observed`."""
    RUN = "run"
    """Store the status, start a run for ``run_reason``, then call :func:`plan_finished`."""


@dataclass(frozen=True)
class Decision:
    """The planner's answer: the status to store, what to do next, and why in plain words."""

    status: WorkflowStatusRecord
    next: Next
    message: str
    run_reason: RunReason | None = None
    failed: bool = False
    """True when the workflow should back off (a failed run, failing probe, drift remaining)."""
    converged: bool = False
    """True when the workflow reached ``Converged`` at this revision (dependents may proceed)."""
    retry_at: datetime | None = None
    """A change window keeps a due run from starting: check the workflow again at this instant
    (the window's next opening)."""


def _base(name: str, status: WorkflowStatusRecord | None) -> WorkflowStatusRecord:
    return status if status is not None else WorkflowStatusRecord(name=name)


def _update(record: WorkflowStatusRecord, now: datetime, /, **changes: Any) -> WorkflowStatusRecord:
    return record.model_copy(update={**changes, "updated_at": now})


def diff_json(diff: Sequence[FieldDiff]) -> list[dict[str, Any]] | None:
    """The JSON-able diff kept in a status (at most :data:`MAX_DIFF_ITEMS` entries)."""
    if not diff:
        return None
    out = [d.as_dict() for d in diff[:MAX_DIFF_ITEMS]]
    if len(diff) > MAX_DIFF_ITEMS:
        out.append({"path": "…", "more": len(diff) - MAX_DIFF_ITEMS})
    return out


def describe_diff(diff: Sequence[FieldDiff]) -> str:
    """``"rows[0].owner differs"`` / ``"content differs"`` / ``"3 fields differ"``."""
    if not diff:
        return "observed state differs"
    if len(diff) == 1:
        path = diff[0].path or "observed value"
        return f"{path} is missing" if diff[0].missing else f"{path} differs"
    shown = ", ".join(d.path or "." for d in diff[:3])
    return f"{len(diff)} fields differ ({shown}{', …' if len(diff) > 3 else ''})"


def plan_invalid(
    name: str,
    status: WorkflowStatusRecord | None,
    *,
    problems: Sequence[Problem],
    now: datetime,
) -> Decision:
    """The workflow's file does not load: ``Invalid`` with ``path:line:col: message``.

    Sync, revisions, spec digest and run fields stay as they were, so the last good version's
    facts remain visible; no run starts with a broken spec.
    """
    errors = [p for p in problems if p.is_error] or list(problems)
    if errors:
        text = str(errors[0])
        if len(errors) > 1:
            text += f" (and {len(errors) - 1} more)"
    else:
        text = "the workflow's file is invalid"
    new = _update(
        _base(name, status), now, status=Health.INVALID, reason=Reason.INVALID_SPEC, message=text
    )
    return Decision(new, Next.DONE, f"workflow {name} is invalid: {text}; not running it")


def dependency_blockers(
    workflow: Workflow,
    statuses: Mapping[str, WorkflowStatusRecord],
    *,
    revision: str,
) -> dict[str, str]:
    """Dependencies not yet ``Converged`` at ``revision``, each with a few words on why."""
    out: dict[str, str] = {}
    for dep in workflow.spec.depends_on:
        st = statuses.get(dep)
        if st is None:
            out[dep] = "not known yet"
        elif st.status is not Health.CONVERGED:
            out[dep] = st.status.value
        elif st.last_applied_revision != revision:
            out[dep] = "not converged at this revision yet"
    return out


def plan_static(
    workflow: Workflow,
    status: WorkflowStatusRecord | None,
    *,
    revision: str,
    statuses: Mapping[str, WorkflowStatusRecord],
    now: datetime,
) -> Decision:
    """Before observing: suspended → ``Suspended``; waiting dependencies → ``Pending``."""
    name = workflow.name
    base = _base(name, status)
    if workflow.spec.suspend:
        new = _update(
            base,
            now,
            status=Health.SUSPENDED,
            reason=Reason.SUSPENDED,
            message="suspended in its spec; nothing runs",
        )
        return Decision(new, Next.DONE, f"workflow {name} is suspended; nothing runs")
    blockers = dependency_blockers(workflow, statuses, revision=revision)
    if blockers:
        waiting = ", ".join(f"{dep} ({why})" for dep, why in sorted(blockers.items()))
        new = _update(
            base,
            now,
            status=Health.PENDING,
            reason=Reason.DEPENDENCY_NOT_READY,
            message=f"waiting for {waiting}",
        )
        return Decision(new, Next.DONE, f"workflow {name} waits for {waiting}")
    return Decision(base, Next.OBSERVE, f"checking workflow {name}")


def plan_observed(
    workflow: Workflow,
    status: WorkflowStatusRecord | None,
    *,
    revision: str,
    digest: str,
    observation: Observation | None,
    manual: bool,
    now: datetime,
    window: WindowVerdict | None = None,
) -> Decision:
    """After observing (``observation`` is ``None`` without a probe): run, or record converged.

    ``window`` is the verdict of the change windows that apply at ``now`` (``None``: none
    apply); when it blocks a run that is due, nothing runs (see :func:`window_closed`).

    A run starts when out of sync, when the spec changed and there is no probe, when the last
    attempt failed and there is no probe to say otherwise, or on a manual sync. An in-sync
    workflow — spec changed or not — is recorded ``Converged`` at ``revision`` without a run,
    unless its latest run at this spec failed: then it stays ``Degraded``/``RunFailed`` with
    that run's error, its ``sync`` saying what the probe says (see :func:`failed_at_this_spec`).
    """
    name = workflow.name
    base = _base(name, status)
    has_probe = workflow.spec.observe is not None

    if has_probe and observation is not None and observation.error is not None:
        if failed_at_this_spec(base, digest=digest):
            return _still_failed(base, now, name=name, probe_error=str(observation.error))
        return _observe_failed(base, now, name=name, text=f"observe failed: {observation.error}")

    # A probe without `desired`/`inSync` has nothing to compare with: it decides like no probe.
    in_sync = observation.in_sync if has_probe and observation is not None else None
    spec_changed = base.spec_digest != digest
    # a manual sync the windows refuse counts for nothing: decided as without it
    manual_ok = manual and (window is None or not window.blocked or window.manual_sync)
    run = _why_run(
        base,
        observation,
        in_sync=in_sync,
        manual=manual_ok,
        spec_changed=spec_changed,
        has_probe=has_probe,
    )
    observed_fields = _observed_fields(observation, in_sync=in_sync, now=now)
    if run is not None and window is not None and window.blocked and not manual_ok:
        return window_closed(base, now, name=name, why=run[2], window=window, **observed_fields)
    if run is None and failed_at_this_spec(base, digest=digest):
        return _still_failed(base, now, name=name, **observed_fields)
    if run is None:
        new = _update(
            base,
            now,
            **observed_fields,
            **({} if in_sync is not None else {"sync": Sync.SYNCED}),
            status=Health.CONVERGED,
            reason=Reason.IN_SYNC,
            message="observed state matches desired state"
            if in_sync is not None
            else "spec unchanged since the last successful run",
            last_applied_revision=revision,
            spec_digest=digest,
            failures=0,
        )
        text = _converged_message(base, name=name, spec_changed=spec_changed)
        return Decision(new, Next.DONE, text, converged=True)

    run_reason, reason, why = run
    new = _update(
        base,
        now,
        **observed_fields,
        status=Health.PROGRESSING,
        reason=reason,
        message=why,
        last_attempted_revision=revision,
    )
    return Decision(
        new,
        Next.RUN,
        f"workflow {name} is {why}" if run_reason is RunReason.DRIFT else f"workflow {name}: {why}",
        run_reason=run_reason,
    )


def window_closed(
    base: WorkflowStatusRecord,
    now: datetime,
    *,
    name: str,
    why: str,
    window: WindowVerdict,
    **observed: Any,
) -> Decision:
    """A run is due (``why``) but ``window`` blocks it: ``Pending``/``WindowClosed``, sync
    ``OutOfSync``, nothing runs; the workflow is checked again at the next opening
    (``retry_at``). Revisions, spec digest and failures stay, so the run that follows is
    decided exactly as this one would have been. A manual sync the windows refuse ends here too.
    """
    text = f"{why}, but {window.describe()}; no run starts"
    new = _update(
        base,
        now,
        **{"sync": Sync.OUT_OF_SYNC, **observed},
        status=Health.PENDING,
        reason=Reason.WINDOW_CLOSED,
        message=text,
    )
    return Decision(new, Next.DONE, f"workflow {name}: {text}", retry_at=window.until)


def _observe_failed(
    base: WorkflowStatusRecord, now: datetime, *, name: str, text: str, **changes: Any
) -> Decision:
    """``Degraded``/``ObserveFailed`` with sync unknown and ``text`` as the message; backs off.

    ``changes`` are further status fields to store (such as a raised failure count).
    """
    new = _update(
        base,
        now,
        sync=Sync.UNKNOWN,
        status=Health.DEGRADED,
        reason=Reason.OBSERVE_FAILED,
        message=text,
        observed_at=now,
        **changes,
    )
    return Decision(new, Next.DONE, f"workflow {name}: {text}", failed=True)


def failed_at_this_spec(base: WorkflowStatusRecord, *, digest: str) -> bool:
    """Whether the workflow's latest run at the spec ``digest`` failed and nothing cleared it.

    Such a workflow stays ``Degraded``/``RunFailed`` even when its probe agrees — the probe may
    see the config a run wrote before a later step (a restart) failed — until a run succeeds,
    the spec changes (its digest differs), or someone syncs it manually (which runs). Without
    this, a failed run turned green at the next check ("converged without a run").
    """
    return (
        base.status is Health.DEGRADED
        and base.reason == Reason.RUN_FAILED
        and base.spec_digest == digest
    )


def _still_failed(
    base: WorkflowStatusRecord,
    now: datetime,
    *,
    name: str,
    probe_error: str | None = None,
    **observed: Any,
) -> Decision:
    """Keep ``Degraded``/``RunFailed`` and the failed run's message; record what the probe saw
    (``observed``: sync, diff, observed_at), or ``Unknown`` sync when it failed (``probe_error``).

    Not a new failure: ``failures`` does not grow and an agreeing probe does not back off (a
    failing one backs off, as always); nothing runs until a manual sync, a spec change or drift.
    """
    run = (base.last_run_id or "?")[:8]
    if probe_error is not None:
        observed = {"sync": Sync.UNKNOWN, "observed_at": now}
        seen = f"observe failed: {probe_error}"
    else:
        seen = "it is in sync"
    new = _update(base, now, **observed)
    text = (
        f"workflow {name}: {seen}, but its last run {run} at this spec failed; it stays "
        "Degraded until a run succeeds (sync it to run again)"
    )
    return Decision(new, Next.DONE, text, failed=probe_error is not None)


def _observed_fields(
    observation: Observation | None, *, in_sync: bool | None, now: datetime
) -> dict[str, Any]:
    """The status fields a comparing probe sets (sync, diff, observed_at); none without one."""
    if in_sync is None:
        return {}
    return {
        "sync": Sync.SYNCED if in_sync else Sync.OUT_OF_SYNC,
        "diff": None if in_sync else diff_json(observation.diff if observation else []),
        "observed_at": now,
    }


def _why_run(
    base: WorkflowStatusRecord,
    observation: Observation | None,
    *,
    in_sync: bool | None,
    manual: bool,
    spec_changed: bool,
    has_probe: bool,
) -> tuple[RunReason, Reason, str] | None:
    """Why a run starts — its run reason, status reason and plain words — or ``None`` when the
    workflow is in sync and is recorded converged without a run.

    ``in_sync`` is ``None`` when nothing was compared (no probe, or a probe without a desired
    state).
    """
    no_probe = "it has no observe probe" if not has_probe else "its probe has no desired state"
    if manual:
        return RunReason.MANUAL, Reason.MANUAL_SYNC, "manual sync requested"
    if in_sync is False:
        assert observation is not None
        return (
            RunReason.DRIFT,
            Reason.OUT_OF_SYNC,
            f"out of sync ({describe_diff(observation.diff)})",
        )
    if in_sync is None and spec_changed:
        # with no status at all, nothing says the spec changed: only that no run is recorded
        what = "spec changed" if base.spec_digest is not None else "no run of it is recorded"
        return RunReason.SPEC_CHANGE, Reason.SPEC_CHANGED, f"{what} and {no_probe}"
    if in_sync is None and base.status is not Health.CONVERGED:
        return (
            RunReason.RETRY,
            Reason.RETRYING,
            f"last attempt did not converge ({base.status.value}) and {no_probe}",
        )
    return None


def _converged_message(base: WorkflowStatusRecord, *, name: str, spec_changed: bool) -> str:
    """The log line for a workflow recorded converged without a run (``base`` is its previous
    status): nothing to do, changed but already in sync, or newly in sync."""
    if base.status is Health.CONVERGED and not spec_changed:
        return f"workflow {name} is in sync; nothing to do"
    if spec_changed and base.spec_digest is not None:
        return f"workflow {name} changed but is already in sync; recorded converged without a run"
    return f"workflow {name} is in sync; recorded converged without a run"


def plan_finished(
    workflow: Workflow,
    status: WorkflowStatusRecord | None,
    *,
    revision: str,
    digest: str,
    run_id: str,
    error: str | None,
    observation: Observation | None,
    now: datetime,
) -> Decision:
    """After a run ended (``error`` is its redacted error, ``None`` on success).

    Success is checked by observing again: still out of sync → ``Degraded``/``DriftRemains``
    ("run finished, drift remains"), which backs off like a failure. A failed run → ``Degraded``/
    ``RunFailed`` with back-off. Otherwise ``Converged`` at ``revision``. Every outcome records
    ``digest`` as the spec last attempted, so the next check tells a retry from a spec change.
    """
    name = workflow.name
    base = _update(
        _base(name, status),
        now,
        last_run_id=run_id,
        last_attempted_revision=revision,
        spec_digest=digest,
    )
    short = run_id[:8]
    if error is not None:
        new = _update(
            base,
            now,
            status=Health.DEGRADED,
            reason=Reason.RUN_FAILED,
            message=f"run {short} failed: {error}",
            failures=base.failures + 1,
        )
        return Decision(
            new, Next.DONE, f"workflow {name}: run {short} failed: {error}", failed=True
        )
    if workflow.spec.observe is not None and observation is not None:
        if observation.error is not None:
            return _observe_failed(
                base,
                now,
                name=name,
                text=f"run {short} finished but observe failed: {observation.error}",
                failures=base.failures + 1,
            )
        if observation.in_sync is False:
            text = f"run {short} finished, drift remains ({describe_diff(observation.diff)})"
            new = _update(
                base,
                now,
                sync=Sync.OUT_OF_SYNC,
                status=Health.DEGRADED,
                reason=Reason.DRIFT_REMAINS,
                message=text,
                diff=diff_json(observation.diff),
                failures=base.failures + 1,
                observed_at=now,
            )
            return Decision(new, Next.DONE, f"workflow {name}: {text}", failed=True)
    new = _update(
        base,
        now,
        sync=Sync.SYNCED,
        status=Health.CONVERGED,
        reason=Reason.RUN_SUCCEEDED,
        message=f"run {short} succeeded",
        diff=None,
        last_applied_revision=revision,
        last_success_at=now,
        failures=0,
        **({"observed_at": now} if observation is not None else {}),
    )
    return Decision(
        new, Next.DONE, f"workflow {name}: run {short} succeeded; converged", converged=True
    )
