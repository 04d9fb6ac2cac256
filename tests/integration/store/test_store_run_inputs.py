"""Runs keep their inputs in the store (``runs.inputs``), and a manual run answers only the
syncs that carry exactly its inputs. On SQLite and PostgreSQL."""

from __future__ import annotations

from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.store import CommandKind, Store

INPUTS = {"replicas": 5, "env": "prod", "hosts": ["a", "b"], "labels": {"team": "ops"}}


async def test_a_runs_inputs_round_trip_through_start_finish_and_listing(store: Store) -> None:
    run = RunRecord(id="with-inputs", workflow="scale", reason="manual", inputs=dict(INPUTS))
    await store.run_started(run)
    stored = await store.get_run("with-inputs")
    assert stored is not None and stored.inputs == INPUTS
    [unfinished] = await store.unfinished_runs()
    assert unfinished.inputs == INPUTS  # what a restart resumes with

    run.status = RunStatus.SUCCEEDED
    await store.run_finished(run)
    [listed] = await store.list_runs("scale", limit=10, before=None)
    assert listed.inputs == INPUTS and listed.status is RunStatus.SUCCEEDED


async def test_a_run_without_inputs_reads_back_as_none(store: Store) -> None:
    await store.run_started(RunRecord(id="plain", workflow="scale", reason="drift"))
    stored = await store.get_run("plain")
    assert stored is not None and stored.inputs is None


async def test_a_manual_run_answers_only_the_syncs_with_exactly_its_inputs(store: Store) -> None:
    plain = await store.request(CommandKind.SYNC, "scale", requested_by="alice")
    five = await store.request(
        CommandKind.SYNC, "scale", requested_by="bob", payload={"inputs": {"replicas": 5}}
    )
    seven = await store.request(
        CommandKind.SYNC, "scale", requested_by="carol", payload={"inputs": {"replicas": 7}}
    )
    twin = await store.request(
        CommandKind.SYNC, "scale", requested_by="dave", payload={"inputs": {"replicas": 5}}
    )

    await store.run_started(
        RunRecord(id="r5", workflow="scale", reason="manual", inputs={"replicas": 5}),
        settles_syncs=True,
    )
    pending = await store.unhandled_commands(CommandKind.SYNC, target="scale")
    assert [c.id for c in pending] == [plain.id, seven.id]
    r5 = await store.get_run("r5")
    assert r5 is not None and r5.requested_by == "bob, dave"
    recorded = {c.id: c.payload for c in await store.commands_after(0)}
    assert (
        recorded[five.id] == {"inputs": {"replicas": 5}} and recorded[twin.id] == recorded[five.id]
    )

    await store.run_started(
        RunRecord(id="plain-run", workflow="scale", reason="manual"), settles_syncs=True
    )
    pending = await store.unhandled_commands(CommandKind.SYNC, target="scale")
    assert [c.id for c in pending] == [seven.id]
    plain_run = await store.get_run("plain-run")
    assert plain_run is not None and plain_run.requested_by == "alice"
