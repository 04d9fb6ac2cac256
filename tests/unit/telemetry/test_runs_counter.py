"""``reconciler_runs_total`` counts runs that finished, and only those.

A run the shutdown leaves to resume on the next start has not finished: counting it as
``cancelled`` would make a rolling restart look like a wave of cancellations on the dashboard.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.daemon.journal import DaemonJournal
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.errors import RunLeftUnfinished
from reconciler.store import Store
from reconciler.telemetry.instrument import MetricsJournal
from reconciler.telemetry.metrics import REGISTRY


def runs_total(workflow: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "reconciler_runs_total", {"workflow": workflow, "result": result}
    )
    return value or 0.0


async def test_a_run_left_to_resume_by_the_shutdown_is_not_counted_as_cancelled(
    tmp_path: Path,
) -> None:
    name = f"counted-{uuid.uuid4().hex[:8]}"
    async with await Store.open(None, data_dir=tmp_path) as store:
        daemon_journal = DaemonJournal(store)
        journal = MetricsJournal(daemon_journal)
        interrupted = RunRecord(id=uuid.uuid4().hex, workflow=name, current_state="work")
        await journal.run_started(interrupted)

        daemon_journal.interrupting = True
        with pytest.raises(RunLeftUnfinished):
            await journal.run_finished(replace(interrupted, status=RunStatus.CANCELLED))
        assert runs_total(name, "cancelled") == 0
        assert (await store.get_run(interrupted.id)).status is RunStatus.RUNNING  # type: ignore[union-attr]

        daemon_journal.interrupting = False
        finished = RunRecord(id=uuid.uuid4().hex, workflow=name)
        await journal.run_started(finished)
        await journal.run_finished(replace(finished, status=RunStatus.SUCCEEDED))
        assert runs_total(name, "succeeded") == 1
        assert runs_total(name, "cancelled") == 0
