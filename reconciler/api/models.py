"""The HTTP API's request and response bodies: the single description of what goes over the wire.

These pydantic models feed ``/openapi.json`` (:mod:`reconciler.api.app` names them as every
route's ``response_model``) and are what ``reconciler status``/``runs`` (:mod:`reconciler.cli.remote`)
parse back. They are built from the store's records (:class:`~reconciler.store.WorkflowStatusRecord`,
:class:`~reconciler.engine.journal.RunRecord`, :class:`~reconciler.engine.journal.JournalEntry`)
and the controller's snapshot (:class:`~reconciler.config.snapshot.LoadedWorkflow`); nothing here
does I/O. Run errors, outputs and journal details come from the store, where the engine wrote them
already redacted; spec summaries name secrets but never carry their references or values.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.engine.journal import (
    JOURNAL_ENTRIES,
    RUN_RECORDS,
    EventKind,
    JournalEntry,
    RunRecord,
    RunStatus,
)
from reconciler.status import Health, Sync

if TYPE_CHECKING:  # only the daemon builds bodies from these; the CLI reads bodies back
    from reconciler.config.models import Workflow
    from reconciler.config.snapshot import Problem
    from reconciler.daemon.windows import AppliedWindow, WindowVerdict
    from reconciler.engine.approvals import PendingApproval


class _Out(BaseModel):
    """Base of the bodies. Their ``of`` constructors run in the daemon only, so what they need
    of the workflow model and the engine is imported there: the CLI reading a body back
    (``reconciler status``) imports neither."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Out):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, conflict.")
    message: str = Field(description="What went wrong, in one sentence for people.")


class ErrorResponse(_Out):
    """Every error answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


class Alive(_Out):
    status: Literal["ok"] = "ok"


class SourceHealth(_Out):
    """How fetching the repository goes; the page shows a banner while ``error`` is set."""

    error: str | None = Field(
        None,
        description="Why the latest fetch failed, in git's words, credentials masked; null "
        "once a fetch succeeds.",
    )
    last_success_at: datetime | None = Field(
        None, description="The last successful fetch; null before the first since the start."
    )
    signature_refused: bool = Field(
        False,
        description="Whether the latest fetch failed because the head commit is not signed by "
        "an allowed key (--verify-signatures); the last verified revision stays applied.",
    )


class Readiness(_Out):
    ready: bool
    reason: str = Field("", description="Why not ready; empty when ready.")
    revision: str | None = Field(None, description="The revision loaded, once there is one.")
    source: SourceHealth = Field(
        default_factory=SourceHealth, description="How fetching the repository goes."
    )


class ProblemOut(_Out):
    path: str
    line: int
    column: int
    message: str
    severity: str

    @classmethod
    def of(cls, problem: Problem) -> ProblemOut:
        return cls(
            path=problem.path,
            line=problem.line,
            column=problem.column,
            message=problem.message,
            severity=problem.severity,
        )


class WindowRef(_Out):
    """One change window, as the workflow's spec or the operator's windows file declares it."""

    source: str = Field(
        description="Where it is declared: 'spec.windows[0]' or 'windows-file[2]' (from 0)."
    )
    kind: Literal["allow", "deny"]
    schedule: str
    duration: str
    time_zone: str
    manual_sync: bool
    description: str | None = None

    @classmethod
    def of(cls, applied: AppliedWindow) -> WindowRef:
        from reconciler.engine.graph import short_duration  # the daemon's side only (see _Out)

        w = applied.window
        return cls(
            source=applied.source,
            kind=w.kind,
            schedule=w.schedule,
            duration=short_duration(w.duration),
            time_zone=w.time_zone,
            manual_sync=w.manual_sync,
            description=w.description,
        )


class WindowOut(_Out):
    """The change windows in force for a workflow now (absent when none applies to it)."""

    state: Literal["open", "blocked"] = Field(
        description="blocked: a window keeps runs from starting now; open: runs may start."
    )
    windows: list[WindowRef] = Field(
        description="blocked: the windows blocking it; open: the allow windows open now."
    )
    until: datetime | None = Field(
        None,
        description="When the state changes (blocked: when runs may start again); null when "
        "it does not within 400 days.",
    )
    manual_sync: bool = Field(description="Whether a manual sync may run now.")
    message: str = Field(description="The same in plain words.")

    @classmethod
    def of(cls, verdict: WindowVerdict) -> WindowOut:
        return cls(
            state="blocked" if verdict.blocked else "open",
            windows=[WindowRef.of(w) for w in verdict.windows],
            until=verdict.until,
            manual_sync=verdict.manual_sync,
            message=verdict.describe(),
        )


class WorkflowSummary(_Out):
    """One line of the workflow list."""

    name: str
    status: Health
    sync: Sync
    reason: str = ""
    message: str = ""
    revision: str | None = Field(None, description="The last revision applied successfully.")
    last_attempted_revision: str | None = None
    last_run_id: str | None = None
    last_success_at: datetime | None = None
    next_check_at: datetime | None = None
    failures: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    suspended: bool = Field(False, description="Suspended through the API (not in its spec).")
    running_run_id: str | None = Field(None, description="The run in progress, if any.")
    updated_at: datetime | None = None
    window: WindowOut | None = Field(
        None, description="The change windows in force now; null when none applies."
    )


class StateSummary(_Out):
    name: str
    end: Literal["success", "failure"] | None = None
    detail: str = Field("", description="Its work in a few words (plugins, retry).")


class SpecSummary(_Out):
    """What a workflow is, without its inputs or secret references."""

    file: str
    line: int
    start: str
    states: list[StateSummary]
    interval: str | None = None
    cron: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    suspend: bool = False
    observe_plugin: str | None = None
    on_delete: str | None = None
    secrets: list[str] = Field(default_factory=list, description="Secret names only.")

    @classmethod
    def of(cls, workflow: Workflow, *, file: str, line: int) -> SpecSummary:
        from reconciler.engine.graph import short_duration, state_detail  # the daemon's side

        spec = workflow.spec
        return cls(
            file=file,
            line=line,
            start=spec.start,
            states=[
                StateSummary(name=name, end=state.end, detail=state_detail(state))
                for name, state in spec.states.items()
            ],
            interval=short_duration(spec.interval) if spec.interval is not None else None,
            cron=spec.cron,
            depends_on=list(spec.depends_on),
            suspend=spec.suspend,
            observe_plugin=spec.observe.plugin if spec.observe is not None else None,
            on_delete=spec.on_delete,
            secrets=sorted(spec.secrets),
        )


class WorkflowDetail(WorkflowSummary):
    """One workflow: its status, field diff, spec summary and problems."""

    diff: Any = Field(None, description="Field diff between desired and observed (JSON).")
    observed_at: datetime | None = None
    spec: SpecSummary | None = Field(None, description="None when the workflow is invalid.")
    problems: list[ProblemOut] = Field(default_factory=list)


class WorkflowList(_Out):
    revision: str = Field(description="The revision the daemon has loaded ('' before the first).")
    workflows: list[WorkflowSummary]


class RunSummary(_Out):
    id: str
    workflow: str
    revision: str = ""
    parent_id: str | None = None
    reason: str = ""
    status: RunStatus
    current_state: str | None = None
    attempt: int = 1
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    requested_by: str | None = Field(
        None, description="Names of the API tokens whose syncs this manual run answered."
    )
    inputs: dict[str, Any] | None = Field(
        None,
        description="The inputs the run was started with beyond its spec (POST "
        "/api/v1/workflows/NAME/runs, a child run's `with:`); null when none.",
    )
    cancelled_by: str | None = Field(
        None, description="Name of the API token whose cancel of this run was accepted."
    )

    @classmethod
    def of(cls, run: RunRecord) -> RunSummary:
        return cls.model_validate(RUN_RECORDS.dump_python(run, exclude={"outputs", "document"}))


class JournalEntryOut(_Out):
    seq: int
    at: datetime
    kind: EventKind
    state: str | None = None
    to_state: str | None = None
    outcome: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, entry: JournalEntry) -> JournalEntryOut:
        return cls.model_validate(JOURNAL_ENTRIES.dump_python(entry, exclude={"run_id"}))


class ApprovalOut(_Out):
    """An approval a run waits for: where, what is asked, who may decide, and why the run
    started (the planner's message and field diff, so the approver sees what will change)."""

    state: str = Field(description="The state the run waits in.")
    message: str = Field(description="What the approver is asked (rendered, redacted).")
    approvers: list[str] = Field(
        default_factory=list,
        description="Token names that may decide; empty means any token with `operate`.",
    )
    separate_requester: bool = Field(
        False, description="Whether the token whose sync started the run is refused."
    )
    requested_at: datetime
    request: int = Field(
        description="Which request this is (its journal entry's `seq`): send it back as the "
        "decision's `request` so that it answers this question and no later one."
    )
    why: str = Field("", description="Why the run started, as the daemon decided it.")
    diff: Any = Field(None, description="The field diff that made the run start, if any.")

    @classmethod
    def of(cls, pending: PendingApproval, entries: list[JournalEntry]) -> ApprovalOut:
        started = next((e for e in entries if e.kind is EventKind.RUN_STARTED), None)
        plan = started.detail.get("plan") if started is not None else None
        plan = plan if isinstance(plan, dict) else {}
        return cls(
            state=pending.state,
            message=pending.message,
            approvers=list(pending.approvers),
            separate_requester=pending.separate_requester,
            requested_at=pending.requested_at,
            request=pending.seq,
            why=str(plan.get("message") or ""),
            diff=plan.get("diff"),
        )


class RunDetail(RunSummary):
    """A run with its outputs and its whole transition journal."""

    outputs: dict[str, Any] = Field(default_factory=dict)
    journal: list[JournalEntryOut] = Field(default_factory=list)
    approval: ApprovalOut | None = Field(
        None, description="The approval the run waits for, when it waits for one."
    )


class WaitingRun(RunSummary):
    """A run in progress that waits at an approval gate."""

    approval: ApprovalOut


class ApprovalList(_Out):
    runs: list[WaitingRun]


class ApprovalBody(BaseModel):
    """The body of an approve or reject: an optional comment, kept in the run's journal."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field("", max_length=2000, description="Why, in a sentence; journaled.")
    request: int | None = Field(
        None,
        description="The `approval.request` the decision answers, as read; when the run has "
        "moved on to another question since, the decision is refused (409 `request_changed`).",
    )


class RunList(_Out):
    runs: list[RunSummary]
    next_before: datetime | None = Field(
        None, description="Pass as ?before= to get the next (older) page; None on the last."
    )


class Accepted(_Out):
    """The answer to sync, suspend, resume, cancel, approve and reject."""

    message: str
    workflow: str | None = None
    run_id: str | None = None


class RunRequest(_Out):
    """The body of ``POST /api/v1/workflows/NAME/runs``: inputs for one run."""

    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Values of the workflow's settable `spec.parameters`, by name; each must "
        "be of its declared type (and one of its `enum`). Empty: a plain manual sync.",
    )


class RunAccepted(Accepted):
    """The answer to ``POST /api/v1/workflows/NAME/runs``."""

    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The inputs accepted: the manual run answering this request has exactly "
        "these as its `inputs` (null there when empty).",
    )


class HookResult(_Out):
    """The answer to a webhook delivery."""

    triggered: bool = Field(description="Whether an immediate fetch was started.")
    message: str


class PreviewRequest(_Out):
    """The body of ``POST /api/v1/previews``."""

    ref: str = Field(
        min_length=1,
        max_length=200,
        description="Branch, `refs/...` name or full commit id to preview, fetched from the "
        "daemon's repository.",
    )


class FieldChangeOut(_Out):
    path: str = Field(description="Dotted path of the field (empty: the whole observation).")
    desired: Any = Field(description="What the ref's workflow wants there.")
    observed: Any = Field(description="What the live system has now (redacted).")


class PreviewWorkflowOut(_Out):
    workflow: str
    change: Literal["new", "changed", "removed", "unchanged"]
    path: str = Field(description="The file the workflow is in (at the ref, or the base).")
    valid: bool = Field(description="False when the workflow is invalid at the ref.")
    wouldRun: bool | None = Field(
        description="Whether the daemon would start a run; null when not checked (unchanged, "
        "invalid, or past the preview's limit or timeout)."
    )
    reason: str = Field(description="Why, in the planner's words.")
    sync: str = Field(description="Synced, OutOfSync, Unknown (no probe), Error, or empty.")
    diff: list[FieldChangeOut]
    problems: list[str] = Field(description="`path:line:col: message` of each error.")
    probeError: str | None = Field(description="Why the observe probe failed.")


class PreviewOut(_Out):
    """The answer to ``POST /api/v1/previews``: nothing was run and nothing was written."""

    ref: str
    revision: str = Field(description="The commit the ref resolved to.")
    base: str = Field(description="The daemon's current revision, compared with.")
    failed: bool = Field(
        description="True when the ref brings an error the current revision does not have "
        "(an invalid workflow or file), or a probe failed."
    )
    workflows: list[PreviewWorkflowOut]
    problems: list[str] = Field(description="Every error at the ref, `path:line:col: message`.")
    introduced: list[str] = Field(
        description="The errors of `problems` the daemon's current revision does not have."
    )
    limited: list[str] = Field(
        description="New or changed workflows not observed: over the preview's limit or timeout."
    )
