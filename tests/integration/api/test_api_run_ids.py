"""Short run ids over real HTTP: ``/api/v1/runs/{id}`` and its cancel take a unique prefix, as
git and docker take short ids; an ambiguous one is a 409 naming the candidates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.engine.journal import RunRecord
from tests.integration.api.conftest import Daemon

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_a_run_is_found_by_the_eight_characters_the_tables_show(daemon: Daemon) -> None:
    motd = await daemon.until_status("motd", "Converged")
    run_id = motd["last_run_id"]
    for short in (run_id[:8], run_id[:4], run_id[:8].upper()):
        response = await daemon.client.get(f"/api/v1/runs/{short}")
        assert response.status_code == 200, (short, response.text)
        assert response.json()["id"] == run_id
        assert response.json()["journal"], "the journal of the whole id"


async def test_an_ambiguous_prefix_is_409_naming_the_candidates(daemon: Daemon) -> None:
    ids = ["abcd1234" + "0" * 23 + str(n) for n in (1, 2)]
    for run_id in ids:
        await daemon.store.run_started(RunRecord(id=run_id, workflow="motd", started_at=T0))
    for method, path in (("GET", "/api/v1/runs/abcd12"), ("POST", "/api/v1/runs/abcd/cancel")):
        response = await daemon.client.request(method, path, headers=daemon.auth())
        assert response.status_code == 409, path
        error = response.json()["error"]
        assert error["code"] == "ambiguous_id"
        assert all(run_id in error["message"] for run_id in ids), error["message"]
    unique = await daemon.client.get(f"/api/v1/runs/{ids[1][:-1]}2")
    assert unique.status_code == 200 and unique.json()["id"] == ids[1]


async def test_short_unknown_and_non_hex_ids_stay_404(daemon: Daemon) -> None:
    motd = await daemon.until_status("motd", "Converged")
    for wrong in (motd["last_run_id"][:3], "ffffffff", "motd%"):
        response = await daemon.client.get(f"/api/v1/runs/{wrong}")
        assert response.status_code == 404, wrong
        assert response.json()["error"]["code"] == "not_found"


async def test_cancel_takes_a_prefix_and_answers_with_the_whole_id(daemon: Daemon) -> None:
    run_id = await daemon.running_run("slow")
    response = await daemon.client.post(f"/api/v1/runs/{run_id[:8]}/cancel", headers=daemon.auth())
    assert response.status_code == 202, response.text
    assert response.json()["run_id"] == run_id
    assert run_id in response.json()["message"]
