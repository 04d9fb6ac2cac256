"""A run waiting for approval survives the daemon: it waits again after a ``kill -9`` (its wait
still counting from when it began), takes a decision recorded while the daemon was down, and is
approved from the CLI with the journal naming the approver and the comment.

The daemon runs as a process on a SQLite store with named tokens; the test reads (and, for the
decision given while it is down, writes as another replica's API would) the store beside it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.api.tokens import hash_token
from reconciler.daemon.approvals import payload
from reconciler.engine.approvals import pending_approval
from reconciler.engine.journal import SINCE, EventKind, JournalEntry, RunRecord, RunStatus
from reconciler.store import CommandKind, Store
from tests.support.daemon import CLI, DaemonProcess, Starter, restartable, without_settings
from tests.support.repos import commit, init_repo
from tests.support.waiting import until_async
from tests.support.workflows import gated_workflow, put

pytestmark = pytest.mark.timeout(150)

ALICE, BOB = "al1ce-e2e-token-11", "b0b-e2e-token-22"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Starter]:
    """Starts ``reconciler run`` on ``tmp_path / "repo"`` (same data each time) with the tokens
    of alice and bob; returns the process and its URL. Every process is killed at teardown."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            [
                {"name": "alice", "sha256": hash_token(ALICE), "role": "operate"},
                {"name": "bob", "sha256": hash_token(BOB), "role": "operate"},
            ]
        )
    )
    flags = ("--api-tokens-file", str(tokens), "--grace-period", "2s")
    with restartable(tmp_path, *flags) as start_daemon:
        yield start_daemon


async def read_store(data: Path) -> tuple[list[RunRecord], dict[str, list[JournalEntry]]]:
    store = await Store.open(None, data_dir=data)
    try:
        runs = await store.list_runs("gate")
        return runs, {r.id: await store.entries(r.id) for r in runs}
    finally:
        await store.close()


async def waiting_run(data: Path) -> tuple[RunRecord, list[JournalEntry]]:
    """The run of ``gate`` once its journal says it waits for approval."""
    found: list[tuple[RunRecord, list[JournalEntry]]] = []

    async def check() -> bool:
        runs, journals = await read_store(data)
        found[:] = [
            (r, journals[r.id])
            for r in runs
            if r.status is RunStatus.RUNNING and pending_approval(journals[r.id]) is not None
        ]
        return bool(found)

    await until_async(check, 60, "the run of gate to wait for approval", interval=0.1)
    return found[0]


async def finished_run(data: Path, run_id: str) -> tuple[RunRecord, list[JournalEntry]]:
    found: list[tuple[RunRecord, list[JournalEntry]]] = []

    async def check() -> bool:
        runs, journals = await read_store(data)
        found[:] = [(r, journals[r.id]) for r in runs if r.id == run_id and r.status.finished]
        return bool(found)

    await until_async(check, 60, f"run {run_id} to finish", interval=0.1)
    return found[0]


def requests_of(entries: list[JournalEntry]) -> list[JournalEntry]:
    return [e for e in entries if e.kind is EventKind.APPROVAL_REQUESTED]


async def test_a_waiting_run_waits_again_after_a_kill_and_is_approved_from_the_cli(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, str]]
) -> None:
    repo, data, out = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "out.txt"
    put(repo, gated_workflow("gate", out, "approved", message="Write ${{ inputs.content }}?"))
    commit(repo, "a gated workflow")

    first, _url = daemon()
    run, entries = await waiting_run(data)
    asked_at = requests_of(entries)[0].at
    first.kill()

    second, url = daemon()

    # it resumes in the same wait: a second request, the first one's timer carried on
    async def asked_again() -> bool:
        _runs, journals = await read_store(data)
        return len(requests_of(journals[run.id])) == 2

    await until_async(asked_again, 60, "the resumed run to ask again", interval=0.1)
    _runs, journals = await read_store(data)
    entered = [e for e in journals[run.id] if e.kind is EventKind.STATE_ENTERED]
    assert entered[-1].detail[SINCE] == entered[0].at.isoformat()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        listed = (await client.get("/api/v1/approvals")).json()["runs"]
    assert [r["id"] for r in listed] == [run.id]
    assert listed[0]["approval"]["message"] == "Write approved?"

    env = {**without_settings(), "RECONCILER_API_TOKEN": ALICE}
    answer = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "approve", run.id[:8], "--comment", "change ticket 4711", "--server", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    assert f"approval of run {run.id}" in answer.stdout

    done, journal = await finished_run(data, run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert out.read_text() == "approved"
    [decided] = [e for e in journal if e.kind is EventKind.APPROVAL_DECIDED]
    assert decided.detail["by"] == "alice"
    assert decided.detail["comment"] == "change ticket 4711"
    assert decided.at > asked_at
    shown = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "runs", run.id, "--server", url],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "approval_decided" in shown.stdout
    second.stop()


async def test_a_decision_recorded_while_the_daemon_was_down_is_taken_when_the_run_resumes(
    tmp_path: Path, daemon: Callable[[], tuple[DaemonProcess, str]]
) -> None:
    repo, data, out = init_repo(tmp_path / "repo"), tmp_path / "data", tmp_path / "out.txt"
    put(repo, gated_workflow("gate", out, "never"))
    commit(repo, "a gated workflow")

    first, _url = daemon()
    run, entries = await waiting_run(data)
    first.kill()
    # what the API of another replica records: a rejection by bob, for this wait
    pending = pending_approval(entries)
    assert pending is not None
    store = await Store.open(None, data_dir=data)
    try:
        await store.request(
            CommandKind.APPROVE,
            run.id,
            requested_by="bob",
            payload=payload(approved=False, comment="not during the sale", pending=pending),
        )
    finally:
        await store.close()

    second, _url = daemon()
    done, journal = await finished_run(data, run.id)
    assert done.status is RunStatus.FAILED
    assert done.current_state == "rejected"
    assert not out.exists()
    [decided] = [e for e in journal if e.kind is EventKind.APPROVAL_DECIDED]
    assert (decided.outcome, decided.detail["by"]) == ("rejected", "bob")
    store = await Store.open(None, data_dir=data)
    try:
        assert await store.unhandled_commands(CommandKind.APPROVE) == []
    finally:
        await store.close()
    second.stop()
