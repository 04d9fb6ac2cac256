"""An ``operate`` token cannot queue an unbounded backlog of runs with inputs.

Each distinct set of inputs gets a run of its own and is never merged, and each request keeps
up to 64 KiB of inputs in the command log: without a bound, a script holding an operate token
queues thousands of runs and fills the store. While a run is in progress, at most
``MAX_WAITING_INPUT_RUNS`` requests with inputs wait per workflow; the next gets 429
``too_many_waiting_runs`` and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.daemon.controller import MAX_WAITING_INPUT_RUNS
from reconciler.store.records import CommandKind
from tests.integration.api.conftest import SLOW, Daemon, start_daemon

pytestmark = pytest.mark.timeout(90)

BUSY = {
    **SLOW,
    "metadata": {"name": "busy"},
    "spec": {**SLOW["spec"], "parameters": {"n": {"type": "integer", "default": 0}}},
}
"""The conftest's ``slow`` (a run that stays busy) under another name, with a parameter."""


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async for d in start_daemon(tmp_path, extra=[BUSY]):
        yield d


async def test_requests_with_inputs_past_the_backlog_get_429_and_are_not_recorded(
    daemon: Daemon,
) -> None:
    await daemon.running_run("busy")
    for n in range(MAX_WAITING_INPUT_RUNS):
        answer = await daemon.client.post(
            "/api/v1/workflows/busy/runs", json={"inputs": {"n": n + 1}}, headers=daemon.auth()
        )
        assert answer.status_code == 202, answer.text
    refused = await daemon.client.post(
        "/api/v1/workflows/busy/runs", json={"inputs": {"n": 999}}, headers=daemon.auth()
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_waiting_runs"
    waiting = await daemon.store.unhandled_commands(CommandKind.SYNC, target="busy")
    assert len(waiting) == MAX_WAITING_INPUT_RUNS
    assert all(c.payload != {"inputs": {"n": 999}} for c in waiting)
