"""The controller as the HTTP API sees it: :class:`ControllerView`.

A thin adapter that answers the API's questions (the ``DaemonView`` protocol of
:mod:`reconciler.api.view`, matched structurally, so the daemon does not import the API) from a
:class:`~reconciler.daemon.controller.Controller`: its current target and snapshot, its runs in
progress, its status book, its store, its source. Steering is passed through to the controller's
public seams. It holds no state of its own: every answer is read at the moment of the call.

Called by: ``reconciler run`` (:mod:`reconciler.cli.run`) and the API tests, which hand it to
:func:`reconciler.api.app.create_app`. Calls: the controller, its status book and its store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.config.snapshot import LoadedWorkflow, Problem
from reconciler.daemon.approvals import Refusal
from reconciler.daemon.controller import Controller
from reconciler.daemon.settings import DaemonSettings
from reconciler.daemon.windows import WindowVerdict
from reconciler.engine.journal import JournalEntry, RunRecord
from reconciler.notify.previews import PullRequest
from reconciler.previews import PreviewReport
from reconciler.sources.base import scrub, url_secrets
from reconciler.status import WorkflowStatusRecord


class ControllerView:
    """Read-only answers about ``controller`` and its steering seams, for the API."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    @property
    def settings(self) -> DaemonSettings:
        return self._controller.settings

    # -- the current snapshot ------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self._controller.ready.is_set()

    def revision(self) -> str:
        return self._controller.target.revision

    def listed(self) -> set[str]:
        target = self._controller.target
        return set(target.valid) | set(target.invalid)

    def is_known(self, name: str) -> bool:
        target = self._controller.target
        return name in target.valid or name in target.invalid or name in target.removed

    def is_removed(self, name: str) -> bool:
        return name in self._controller.target.removed

    def spec(self, name: str) -> LoadedWorkflow | None:
        lw = self._controller.target.valid.get(name)
        snapshot = self._controller.snapshot
        if lw is None and snapshot is not None:
            lw = snapshot.workflows.get(name)
        return lw

    def window(self, name: str) -> WindowVerdict | None:
        return self._controller.window(name)

    def problems(self, name: str) -> list[Problem]:
        return list(self._controller.target.invalid.get(name, []))

    # -- this process ----------------------------------------------------------------------------

    def is_suspended(self, name: str) -> bool:
        return name in self._controller.suspended

    def running_run(self, name: str) -> str | None:
        return next((rid for rid, wf in self._controller.running.items() if wf == name), None)

    def run_workflow(self, run_id: str) -> str | None:
        return self._controller.running.get(run_id)

    # -- the store -------------------------------------------------------------------------------

    async def status(self, name: str) -> WorkflowStatusRecord | None:
        return await self._controller.statuses.get(name)

    async def statuses(self) -> list[WorkflowStatusRecord]:
        return await self._controller.statuses.load()

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._controller.store.get_run(run_id)

    async def entries(self, run_id: str) -> list[JournalEntry]:
        return await self._controller.store.entries(run_id)

    async def run_ids_starting_with(self, prefix: str, *, limit: int) -> list[str]:
        return await self._controller.store.run_ids_starting_with(prefix, limit=limit)

    async def list_runs(
        self, workflow: str | None, *, limit: int, before: datetime | None
    ) -> list[RunRecord]:
        return await self._controller.store.list_runs(workflow, limit=limit, before=before)

    async def unfinished_runs(self) -> list[RunRecord]:
        return await self._controller.store.unfinished_runs()

    async def store_problem(self) -> str | None:
        return await self._controller.store.problem()

    # -- steering --------------------------------------------------------------------------------

    async def request_sync(
        self, name: str, *, requested_by: str, inputs: Mapping[str, Any] | None = None
    ) -> bool:
        return await self._controller.request_sync(name, requested_by=requested_by, inputs=inputs)

    async def suspend(self, name: str, *, requested_by: str) -> bool:
        return await self._controller.suspend(name, requested_by=requested_by)

    async def resume(self, name: str, *, requested_by: str) -> bool:
        return await self._controller.resume(name, requested_by=requested_by)

    async def cancel(self, run_id: str, *, requested_by: str) -> bool:
        return await self._controller.cancel(run_id, requested_by=requested_by)

    async def decide(
        self,
        run_id: str,
        *,
        approved: bool,
        comment: str,
        requested_by: str,
        seen: int | None = None,
    ) -> Refusal | None:
        return await self._controller.decide(
            run_id, approved=approved, comment=comment, requested_by=requested_by, seen=seen
        )

    # -- the source ------------------------------------------------------------------------------

    def tracked_branch(self) -> str | None:
        controller = self._controller
        branch = getattr(controller.source, "branch", None) or controller.settings.branch
        return str(branch) if branch else None

    def fetch_now(self) -> None:
        self._controller.source.refresh()

    def source_error(self) -> str | None:
        error = self._controller.source.last_error
        if error is None:
            return None
        # The sources scrub their errors already; masking again here keeps the promise even
        # for a source that forgot.
        return scrub(error, url_secrets(self._controller.settings.repo or ""))

    def source_synced_at(self) -> datetime | None:
        return self._controller.source.last_success_at

    def source_signature_refused(self) -> bool:
        return bool(getattr(self._controller.source, "signature_refused", False))

    async def preview(self, ref: str) -> PreviewReport:
        return await self._controller.previewer.preview(ref)

    def preview_pull_request(self, pr: PullRequest) -> None:
        self._controller.pull_requests.start(pr)
