"""Two :class:`Controller` replicas in one process, on one real git repository and one real
PostgreSQL schema: what is not worth a daemon process per test (see tests/e2e/test_replicas.py
for those) — a manual sync sent to the replica that is not running the workflow, a workflow
removed from git while another replica runs it, and suspend/resume through one replica's API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from reconciler.daemon.controller import Controller
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.store import Health, Store
from tests.support import postgres
from tests.support.controller import running
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async

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
