"""Two :class:`Controller` replicas in one process, on one real git repository and one real
PostgreSQL schema: what is not worth a daemon process per test (see tests/e2e/test_replicas.py
for those) — a manual sync sent to the replica that is not running the workflow, a workflow
removed from git while another replica runs it, suspend/resume through one replica's API (which
outlives the run another replica finishes), a cancel through the replica that does not hold the
run, a run another replica takes over keeping the spec it started with, syncs with run inputs
sent through both replicas each answered by one run with exactly their inputs, and a run
waiting for approval: decided through the other replica, and taken over while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from reconciler.daemon.controller import Controller
from reconciler.engine.approvals import pending_approval
from reconciler.engine.journal import EventKind, RunRecord, RunStatus
from reconciler.errors import InputRejected
from reconciler.store import CommandKind, Health, Store
from tests.support import postgres
from tests.support.controller import running
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async
from tests.support.workflows import gated_workflow, put

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


SLOW = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
  start: work
  states:
    work:
      action:
        plugin: shell.run
        with: {{argv: [sh, -c, "sleep {seconds}"]}}
      next: done
      onError: failed
    cleanup:
      action:
        plugin: file.write
        with: {{path: "{marker}", content: "bye"}}
      next: done
    done: {{end: success}}
    failed: {{end: failure}}
  onDelete: cleanup
"""


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.schema("replicas_ctl") as name:
        yield postgres.store_url(name)


Replicas = Callable[[int], Awaitable[list[tuple[Controller, Store]]]]


@pytest.fixture
async def replicas(tmp_path: Path, store_url: str) -> AsyncIterator[Replicas]:
    """Starts controllers (replica ids r1, r2, ...) on ``tmp_path/repo``; all stopped at the end."""
    async with AsyncExitStack() as stack:

        async def start(count: int) -> list[tuple[Controller, Store]]:
            return [
                await stack.enter_async_context(replica(tmp_path, store_url, f"r{i + 1}"))
                for i in range(count)
            ]

        yield start


@asynccontextmanager
async def replica(
    tmp_path: Path, store_url: str, name: str
) -> AsyncIterator[tuple[Controller, Store]]:
    async with running(
        tmp_path,
        tmp_path / "repo",
        data_dir=tmp_path / f"data-{name}",
        store=store_url,
        grace_period="1s",
        replica_id=name,
        lease_ttl="2s",
    ) as (controller, store):
        await asyncio.wait_for(controller.ready.wait(), 20)
        yield controller, store


async def wait_for_runs(
    store: Store, name: str, check: Callable[[list[RunRecord]], bool]
) -> list[RunRecord]:
    async def matching() -> list[RunRecord] | None:
        runs = await store.list_runs(name)
        return runs if check(runs) else None

    found = await until_async(matching, 30, f"runs of {name} that match")
    assert found is not None
    return found


def running_on(pair: list[tuple[Controller, Store]], run_id: str) -> Controller:
    return next(c for c, _ in pair if run_id in c.running)


async def test_a_manual_sync_sent_to_the_other_replica_runs_once_the_holder_is_done(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    (repo / "slow.yaml").write_text(SLOW.format(name="slow", seconds=1.5, marker=tmp_path / "m"))
    commit(repo, "slow workflow")
    pair = await replicas(2)
    store = pair[0][1]
    first = await wait_for_runs(store, "slow", lambda runs: len(runs) == 1)
    await until_async(
        lambda: any(first[0].id in c.running for c, _ in pair), 30, "the run under way on a replica"
    )
    holder = running_on(pair, first[0].id)
    other = next(c for c, _ in pair if c is not holder)
    assert await other.request_sync("slow")

    runs = await wait_for_runs(
        store,
        "slow",
        lambda runs: len(runs) == 2 and all(r.status is RunStatus.SUCCEEDED for r in runs),
    )
    assert sorted(r.reason for r in runs) == ["manual", "spec-change"]
    manual = next(r for r in runs if r.reason == "manual")
    original = next(r for r in runs if r.reason != "manual")
    assert original.finished_at is not None and manual.started_at >= original.finished_at


async def test_a_workflow_removed_while_another_replica_runs_it_is_retired_after_the_run(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    marker = tmp_path / "deleted"
    (repo / "slow.yaml").write_text(SLOW.format(name="slow", seconds=1.5, marker=marker))
    (repo / "other.yaml").write_text(SLOW.format(name="other", seconds=0, marker=tmp_path / "o"))
    commit(repo, "two workflows")
    pair = await replicas(2)
    store = pair[0][1]
    await wait_for_runs(store, "slow", lambda runs: len(runs) == 1)
    (repo / "slow.yaml").unlink()
    commit(repo, "remove slow")

    runs = await wait_for_runs(
        store,
        "slow",
        lambda runs: len(runs) == 2 and all(r.status is RunStatus.SUCCEEDED for r in runs),
    )
    assert sorted(r.reason for r in runs) == ["delete", "spec-change"]
    assert marker.read_text() == "bye"

    async def retired() -> bool:
        return await store.get_status("slow") is None

    await until_async(retired, 20, "slow to be retired", interval=0.05)


async def test_a_workflow_suspended_through_one_replica_does_not_run_on_another(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    (repo / "quick.yaml").write_text(SLOW.format(name="quick", seconds=0, marker=tmp_path / "m"))
    commit(repo, "quick workflow")
    (one, store), (two, _) = await replicas(2)
    [run] = await wait_for_runs(
        store, "quick", lambda runs: len(runs) == 1 and runs[0].finished_at is not None
    )

    async def run_status_stored() -> bool:  # the run's replica is done with the workflow
        status = await store.get_status("quick")
        return status is not None and status.last_run_id == run.id

    await until_async(run_status_stored, 10, "the run's status to be stored")

    assert await two.suspend("quick")
    assert await one.request_sync("quick")
    await until_async(
        lambda: "quick" in one.suspended, 10, "the other replica to see the suspension"
    )
    await asyncio.sleep(0.5)  # time passing is the test here: no run starts while suspended
    assert len(await store.list_runs("quick")) == 1
    status = await store.get_status("quick")
    assert status is not None and status.status is Health.SUSPENDED

    assert await two.resume("quick")
    assert await one.request_sync("quick")  # the other replica learns of it from the store
    runs = await wait_for_runs(
        store,
        "quick",
        lambda runs: any(r.reason == "manual" and r.status is RunStatus.SUCCEEDED for r in runs),
    )
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)


WAITS = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: waits}}
spec:
  interval: 1h
  start: {state}
  states:
    {state}:
      transitions:
        - {{to: write, after: 3s}}
    write:
      action:
        plugin: file.write
        with: {{path: "{out}", content: "{state}"}}
      next: done
    done: {{end: success}}
"""


async def test_a_run_taken_over_by_another_replica_keeps_the_spec_it_started_with(
    tmp_path: Path, store_url: str
) -> None:
    repo, out = tmp_path / "repo", tmp_path / "out"
    init_repo(repo)
    (repo / "waits.yaml").write_text(WAITS.format(state="hold", out=out))
    first = commit(repo, "waits in hold")
    async with replica(tmp_path, store_url, "r1") as (_one, store):
        [run] = await wait_for_runs(
            store, "waits", lambda runs: len(runs) == 1 and runs[0].current_state == "hold"
        )
    # r1 stopped: its grace period is shorter than the wait, so the run is left to take over
    (repo / "waits.yaml").write_text(WAITS.format(state="linger", out=out))
    second = commit(repo, "hold is now linger")

    async with replica(tmp_path, store_url, "r2") as (_two, store):
        runs = await wait_for_runs(
            store,
            "waits",
            lambda runs: len(runs) == 2 and all(r.status is RunStatus.SUCCEEDED for r in runs),
        )
        taken_over = await store.entries(run.id)
    newer, resumed = runs
    assert resumed.id == run.id and resumed.revision == first and resumed.attempt == 2
    assert [e.state for e in taken_over if e.kind is EventKind.STATE_ENTERED] == [
        "hold",
        "hold",
        "write",
        "done",
    ]
    assert newer.revision == second and newer.reason == "spec-change"
    assert out.read_text() == "linger"


GATED = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  interval: 1h
  start: work
  states:
    work:
      action:
        plugin: shell.run
        with: {{argv: [sh, -c, "while [ ! -e '{gate}' ]; do sleep 0.05; done; echo {version}"]}}
      next: done
      onError: failed
    done: {{end: success}}
    failed: {{end: failure}}
"""
"""A workflow whose run goes on until the test creates ``gate``."""


async def run_under_way(
    pair: list[tuple[Controller, Store]], name: str
) -> tuple[RunRecord, Controller, Controller]:
    """The first run of ``name`` once a replica executes it, that replica and the other one."""
    store = pair[0][1]
    [run] = await wait_for_runs(store, name, lambda runs: len(runs) == 1)
    await until_async(
        lambda: any(run.id in c.running for c, _ in pair), 30, f"the run of {name} under way"
    )
    holder = running_on(pair, run.id)
    return run, holder, next(c for c, _ in pair if c is not holder)


async def test_a_suspend_through_one_replica_outlives_the_run_another_replica_finishes(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo, gate = tmp_path / "repo", tmp_path / "gate"
    init_repo(repo)
    (repo / "gated.yaml").write_text(GATED.format(name="gated", gate=gate, version=1))
    commit(repo, "gated workflow")
    pair = await replicas(2)
    store = pair[0][1]
    run, holder, other = await run_under_way(pair, "gated")

    assert await other.suspend("gated")
    gate.touch()
    await wait_for_runs(store, "gated", lambda runs: runs[0].status is RunStatus.SUCCEEDED)

    async def outcome_stored() -> bool:  # the holder wrote its run's final status
        status = await store.get_status("gated")
        return status is not None and status.last_success_at is not None

    await until_async(outcome_stored, 10, "the run's outcome in the status row")
    status = await store.get_status("gated")
    assert status is not None and status.suspended
    assert status.status is Health.SUSPENDED and status.last_run_id == run.id
    await until_async(lambda: "gated" in holder.suspended, 10, "the holder to learn of it")

    # a new spec would run at once on either replica, were it not suspended
    (repo / "gated.yaml").write_text(GATED.format(name="gated", gate=gate, version=2))
    revision = commit(repo, "gated workflow, version 2")
    await until_async(
        lambda: all(c.target.revision == revision for c, _ in pair), 20, "both at the commit"
    )
    await asyncio.sleep(1)  # time passing is the test here: nothing starts while suspended
    assert [r.id for r in await store.list_runs("gated")] == [run.id]

    assert await holder.resume("gated")
    runs = await wait_for_runs(store, "gated", lambda runs: len(runs) == 2)
    assert runs[0].reason == "spec-change" and runs[0].revision == revision


async def test_a_cancel_through_one_replica_cancels_the_run_another_replica_executes(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    (repo / "gated.yaml").write_text(GATED.format(name="gated", gate=tmp_path / "never", version=1))
    commit(repo, "gated workflow")
    pair = await replicas(2)
    store = pair[0][1]
    run, holder, other = await run_under_way(pair, "gated")

    assert await other.cancel(run.id)
    [cancelled] = await wait_for_runs(
        store, "gated", lambda runs: runs[0].status is RunStatus.CANCELLED
    )
    assert cancelled.id == run.id
    finished = [e for e in await store.entries(run.id) if e.kind is EventKind.RUN_FINISHED]
    assert [e.outcome for e in finished] == ["cancelled"]
    await until_async(lambda: run.id not in holder.running, 10, "the holder to let the run go")

    async def cancel_handled() -> bool:  # at the next poll after the run was recorded cancelled
        return await store.unhandled_commands(CommandKind.CANCEL) == []

    await until_async(cancel_handled, 10, "the cancel marked handled")
    assert not await other.cancel(run.id)  # over: nothing left to cancel


PARAMETERISED = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: tagged}
spec:
  interval: 1h
  parameters:
    tag: {type: string, default: none}
  start: work
  states:
    work:
      action:
        plugin: shell.run
        with: {argv: [sh, -c, "sleep 1"]}
      next: done
      onError: failed
    done: {end: success}
    failed: {end: failure}
"""


async def test_syncs_with_inputs_through_both_replicas_each_run_once_with_their_inputs(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo = tmp_path / "repo"
    init_repo(repo)
    (repo / "tagged.yaml").write_text(PARAMETERISED)
    commit(repo, "a workflow with a parameter")
    pair = await replicas(2)
    store = pair[0][1]
    first = await wait_for_runs(store, "tagged", lambda runs: len(runs) == 1)
    await until_async(
        lambda: any(first[0].id in c.running for c, _ in pair), 30, "the run under way on a replica"
    )
    holder = running_on(pair, first[0].id)
    other = next(c for c, _ in pair if c is not holder)
    with pytest.raises(InputRejected):
        await other.request_sync("tagged", inputs={"colour": "red"})
    assert await other.request_sync("tagged", inputs={"tag": "a"})
    assert await holder.request_sync("tagged", inputs={"tag": "b"})
    assert await other.request_sync("tagged")
    assert await holder.request_sync("tagged", inputs={"tag": "a"})  # a twin of the first

    runs = await wait_for_runs(
        store,
        "tagged",
        lambda runs: len(runs) == 4 and all(r.status is RunStatus.SUCCEEDED for r in runs),
    )
    manual = sorted((r for r in runs if r.reason == "manual"), key=lambda r: r.started_at)
    assert [r.inputs for r in manual] == [{"tag": "a"}, {"tag": "b"}, None]  # in request order
    assert await store.unhandled_commands(CommandKind.SYNC) == []
    assert len(await store.list_runs("tagged")) == 4


async def waiting_for_approval(store: Store, name: str) -> RunRecord:
    """The run of ``name`` once its journal says it waits for an approval."""

    async def asks() -> RunRecord | None:
        for run in await store.list_runs(name):
            if run.status is RunStatus.RUNNING and pending_approval(await store.entries(run.id)):
                return run
        return None

    found = await until_async(asks, 30, f"a run of {name} waiting for approval")
    assert found is not None
    return found


async def test_an_approval_through_one_replica_reaches_the_run_another_replica_holds(
    tmp_path: Path, replicas: Replicas
) -> None:
    repo, out = tmp_path / "repo", tmp_path / "out"
    init_repo(repo)
    put(repo, gated_workflow("asks", out, "approved"))
    commit(repo, "a workflow that asks")
    pair = await replicas(2)
    store = pair[0][1]
    run = await waiting_for_approval(store, "asks")
    holder = running_on(pair, run.id)
    other = next(c for c, _ in pair if c is not holder)

    assert await other.decide(run.id, approved=True, comment="ok", requested_by="bob") is None
    [done] = await wait_for_runs(store, "asks", lambda runs: runs[0].status.finished)
    assert done.status is RunStatus.SUCCEEDED and out.read_text() == "approved"
    [decided] = [e for e in await store.entries(run.id) if e.kind is EventKind.APPROVAL_DECIDED]
    assert (decided.detail["by"], decided.detail["comment"]) == ("bob", "ok")


async def test_a_run_waiting_for_approval_is_taken_over_and_still_waits_for_its_decision(
    tmp_path: Path, store_url: str
) -> None:
    repo, out = tmp_path / "repo", tmp_path / "out"
    init_repo(repo)
    put(repo, gated_workflow("asks", out, "approved"))
    commit(repo, "a workflow that asks")
    async with replica(tmp_path, store_url, "r1") as (_one, store):
        run = await waiting_for_approval(store, "asks")
    # r1 stopped: the run is left waiting for whoever takes it over
    async with replica(tmp_path, store_url, "r2") as (two, store):

        async def asked_again() -> bool:
            entries = await store.entries(run.id)
            return sum(e.kind is EventKind.APPROVAL_REQUESTED for e in entries) == 2

        await until_async(asked_again, 30, "the taken-over run to ask again")
        assert two.approvals.waiting() == {run.id: "ask"}
        assert await two.decide(run.id, approved=False, requested_by="carol") is None
        [done] = await wait_for_runs(store, "asks", lambda runs: runs[0].status.finished)
    assert done.id == run.id and done.current_state == "rejected"
    assert not out.exists()
