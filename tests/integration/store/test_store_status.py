"""Workflow status rows: what the planner writes and the API/CLI read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from reconciler.engine.journal import RunRecord
from reconciler.store import Health, Store, Sync, WorkflowStatusRecord

T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


def full_record(name: str = "rotate-certs") -> WorkflowStatusRecord:
    return WorkflowStatusRecord(
        name=name,
        sync=Sync.OUT_OF_SYNC,
        status=Health.DEGRADED,
        reason="DriftRemains",
        message="run finished, drift remains",
        last_applied_revision="a" * 40,
        last_attempted_revision="b" * 40,
        spec_digest="sha256:" + "c" * 64,
        last_run_id="run-7",
        last_success_at=T0,
        next_check_at=T0 + timedelta(minutes=5),
        failures=3,
        diff={"replicas": {"desired": 3, "observed": 2}, "tags": ["a", "b"]},
        observed_at=T0 + timedelta(seconds=1),
        updated_at=T0 + timedelta(seconds=2),
    )


async def test_status_round_trips_every_field_with_aware_utc_timestamps(store: Store) -> None:
    record = full_record()
    await store.put_status(record)

    loaded = await store.get_status("rotate-certs")

    assert loaded == record
    assert loaded is not None and loaded.last_success_at is not None
    assert loaded.last_success_at.tzinfo is not None
    assert loaded.last_success_at.utcoffset() == timedelta(0)


async def test_timestamps_in_other_zones_are_stored_as_the_same_instant(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    record = WorkflowStatusRecord(
        name="wf", next_check_at=datetime(2026, 1, 1, 14, 0, tzinfo=plus_two)
    )
    await store.put_status(record)
    loaded = await store.get_status("wf")
    assert loaded is not None
    assert loaded.next_check_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def test_put_status_replaces_the_previous_row(store: Store) -> None:
    await store.put_status(full_record())
    healthy = WorkflowStatusRecord(
        name="rotate-certs", sync=Sync.SYNCED, status=Health.CONVERGED, failures=0, diff=None
    )
    await store.put_status(healthy)

    loaded = await store.get_status("rotate-certs")

    assert loaded == healthy
    assert loaded is not None and loaded.last_run_id is None and loaded.diff is None


async def test_unknown_workflow_has_no_status(store: Store) -> None:
    assert await store.get_status("never-seen") is None


async def test_list_statuses_returns_every_workflow_by_name(store: Store) -> None:
    for name in ("zeta", "alpha", "mid"):
        await store.put_status(WorkflowStatusRecord(name=name))
    assert [s.name for s in await store.list_statuses()] == ["alpha", "mid", "zeta"]


async def test_retiring_a_workflow_drops_its_status_but_keeps_its_runs(store: Store) -> None:
    await store.run_started(RunRecord(id="run-7", workflow="rotate-certs"))
    await store.put_status(full_record())

    assert await store.delete_status("rotate-certs") is True
    assert await store.delete_status("rotate-certs") is False

    assert await store.get_status("rotate-certs") is None
    assert await store.list_statuses() == []
    assert [r.id for r in await store.list_runs("rotate-certs")] == ["run-7"]


async def test_put_statuses_writes_every_record_in_one_call(store: Store) -> None:
    await store.put_status(full_record("a"))
    records = [
        full_record("a").model_copy(update={"failures": 0, "status": Health.CONVERGED}),
        full_record("b"),
        WorkflowStatusRecord(name="c"),
    ]

    await store.put_statuses(records)

    assert await store.list_statuses() == sorted(records, key=lambda r: r.name)


async def test_put_statuses_keeps_the_last_record_of_a_name_given_twice(store: Store) -> None:
    first = WorkflowStatusRecord(name="wf", message="first")
    await store.put_statuses([first, first.model_copy(update={"message": "second"})])

    loaded = await store.get_status("wf")
    assert loaded is not None and loaded.message == "second"


async def test_touch_statuses_updates_only_the_named_fields_of_existing_rows(
    store: Store,
) -> None:
    stored = full_record("wf")
    await store.put_status(stored)
    later = stored.model_copy(
        update={
            "observed_at": T0 + timedelta(hours=1),
            "updated_at": T0 + timedelta(hours=1),
            "failures": 9,  # not named below: must stay as stored
        }
    )
    newcomer = WorkflowStatusRecord(name="never-stored")

    await store.touch_statuses([later, newcomer], fields={"observed_at", "updated_at"})

    loaded = await store.get_status("wf")
    assert loaded == stored.model_copy(
        update={"observed_at": T0 + timedelta(hours=1), "updated_at": T0 + timedelta(hours=1)}
    )
    assert await store.get_status("never-stored") is None  # only existing rows are touched
