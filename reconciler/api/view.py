"""What the HTTP API may read from the daemon and ask of it: the :class:`DaemonView` protocol.

The API (:mod:`reconciler.api.app` and its routers in :mod:`reconciler.api.routes`, plus
:mod:`reconciler.api.webhooks`) depends on this protocol only, never on the controller's
attributes, so the controller can be reorganised without touching a route. The daemon's
implementation is :class:`reconciler.daemon.view.ControllerView` (structural: it does not import
this module); tests may pass any object with these methods.

Called by: the routers, through :func:`reconciler.api.app.create_app`. Calls: nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from reconciler.config.snapshot import LoadedWorkflow, Problem
from reconciler.daemon.approvals import Refusal
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.windows import WindowVerdict
from reconciler.engine.journal import JournalEntry, RunRecord
from reconciler.notify.previews import PullRequest
from reconciler.previews import PreviewReport
from reconciler.status import WorkflowStatusRecord


class DaemonView(Protocol):
    """A read-only window onto one running daemon, plus the things the API may ask of it.

    Reads reflect the daemon at the moment of the call (the current snapshot, the runs in
    progress in this process, the store); nothing returned is shared with the daemon for writing.
    Store reads raise :class:`~reconciler.errors.StoreError` when the store is down (the API
    answers 503).
    """

    @property
    def settings(self) -> DaemonSettings:
        """The daemon's settings (token, read policy, webhook secret, ``api_docs``)."""
        ...

    # -- the current snapshot ------------------------------------------------------------------

    def is_ready(self) -> bool:
        """True once the first revision has been loaded."""
        ...

    def revision(self) -> str:
        """The revision the daemon works from ("" before the first load)."""
        ...

    def listed(self) -> set[str]:
        """The workflows of the current revision, valid or not (not those being retired)."""
        ...

    def is_known(self, name: str) -> bool:
        """True for a workflow of the current revision or one removed and being retired."""
        ...

    def is_removed(self, name: str) -> bool:
        """True for a workflow gone from git whose retirement is under way."""
        ...

    def spec(self, name: str) -> LoadedWorkflow | None:
        """The parsed workflow ``name`` (the valid one, else the last that parsed), or None."""
        ...

    def window(self, name: str) -> WindowVerdict | None:
        """The verdict now of the change windows of ``name`` (its own and the operator's);
        None when none applies or the workflow does not parse."""
        ...

    def problems(self, name: str) -> list[Problem]:
        """Why workflow ``name`` is invalid (empty when it is valid or unknown)."""
        ...

    # -- this process ----------------------------------------------------------------------------

    def is_suspended(self, name: str) -> bool:
        """True while ``name`` is suspended through the API."""
        ...

    def running_run(self, name: str) -> str | None:
        """The id of the run of ``name`` in progress in this process, if any."""
        ...

    def run_workflow(self, run_id: str) -> str | None:
        """The workflow of run ``run_id`` if it is in progress in this process, else None."""
        ...

    # -- the store -------------------------------------------------------------------------------

    async def status(self, name: str) -> WorkflowStatusRecord | None:
        """The status row of ``name``, if it has one."""
        ...

    async def statuses(self) -> list[WorkflowStatusRecord]:
        """Every status row."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Run ``run_id``, if the store has it."""
        ...

    async def entries(self, run_id: str) -> list[JournalEntry]:
        """The journal of run ``run_id``, oldest first."""
        ...

    async def run_ids_starting_with(self, prefix: str, *, limit: int) -> list[str]:
        """Up to ``limit`` ids of stored runs starting with ``prefix``, in id order."""
        ...

    async def list_runs(
        self, workflow: str | None, *, limit: int, before: datetime | None
    ) -> list[RunRecord]:
        """Runs newest first, of one workflow or all, started strictly before ``before``."""
        ...

    async def store_problem(self) -> str | None:
        """Why the store is not usable right now, or None when it is."""
        ...

    # -- steering --------------------------------------------------------------------------------

    async def request_sync(
        self, name: str, *, requested_by: str, inputs: Mapping[str, Any] | None = None
    ) -> bool:
        """Queue a manual sync of ``name``, recorded in the store before it returns (it survives
        a crash and reaches the replica that runs the workflow) with ``requested_by`` (the API
        token's name); False for an unknown name. With ``inputs``, the run it causes runs with
        them (validated against the workflow's ``spec.parameters`` first:
        :class:`~reconciler.errors.InputRejected`, nothing recorded)."""
        ...

    async def suspend(self, name: str, *, requested_by: str) -> bool:
        """Start no more runs of ``name`` until resumed, on every replica; committed in the
        store before it returns. False for an unknown name."""
        ...

    async def resume(self, name: str, *, requested_by: str) -> bool:
        """Undo a suspend and check ``name`` now; False for an unknown name."""
        ...

    async def unfinished_runs(self) -> list[RunRecord]:
        """The runs the store marks running, on any replica."""
        ...

    async def cancel(self, run_id: str, *, requested_by: str) -> bool:
        """Cancel run ``run_id`` wherever it is in progress (recorded in the store before it
        returns; the replica holding the run applies it); False when it is not in progress."""
        ...

    async def decide(
        self,
        run_id: str,
        *,
        approved: bool,
        comment: str,
        requested_by: str,
        seen: int | None = None,
    ) -> Refusal | None:
        """Approve or reject run ``run_id`` waiting at an approval gate (recorded in the store
        before it returns; the run takes it wherever it waits). ``None`` when recorded, else
        why not (the run is not waiting, the token may not decide, it no longer waits for the
        request ``seen`` when given, ...)."""
        ...

    # -- the source ------------------------------------------------------------------------------

    def tracked_branch(self) -> str | None:
        """The branch the daemon follows, when it is known (webhooks ignore other branches)."""
        ...

    def fetch_now(self) -> None:
        """Ask the source to fetch at once instead of at the next poll (a webhook's push)."""
        ...

    def source_error(self) -> str | None:
        """Why the latest fetch of the repository failed, in git's words with every credential
        masked; None once a fetch succeeds. Shown to anyone who can reach ``/readyz``."""
        ...

    def source_synced_at(self) -> datetime | None:
        """When the repository was last fetched successfully; None before the first success
        since the daemon started."""
        ...

    def source_signature_refused(self) -> bool:
        """Whether the latest fetch failed because the head commit is not signed by an allowed
        key (``--verify-signatures``): the repository answers, its head is refused."""
        ...

    # -- previews --------------------------------------------------------------------------------

    async def preview(self, ref: str) -> PreviewReport:
        """The preview of ``ref`` (fetched from the daemon's repository) against the current
        target: read-only probes of what it adds or changes, nothing run or written. Raises
        :class:`~reconciler.errors.RefNotFound`, :class:`~reconciler.errors.FetchFailed` or
        :class:`~reconciler.errors.PreviewUnavailable`."""
        ...

    def preview_pull_request(self, pr: PullRequest) -> None:
        """Preview ``pr``'s head commit in the background and post the commit status and the
        comment back to its forge; returns at once."""
        ...
