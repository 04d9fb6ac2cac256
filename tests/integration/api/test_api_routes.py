"""The API over real HTTP against a running controller: probes, workflows, runs with their
journal, the diagram with the live state, steering (sync, suspend, resume, cancel) and errors."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.engine.journal import RunStatus
from tests.integration.api.conftest import TOKEN, Daemon, start_daemon
from tests.support.repos import commit, init_repo

pytestmark = pytest.mark.timeout(60)


async def test_probes_say_alive_and_ready_once_git_is_loaded(daemon: Daemon) -> None:
    alive = await daemon.client.get("/healthz")
    ready = await daemon.client.get("/readyz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["revision"] == daemon.controller.target.revision


async def test_readyz_is_503_with_the_reason_before_the_first_revision(daemon: Daemon) -> None:
    daemon.controller.ready.clear()
    response = await daemon.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the repository has not been loaded yet"


async def test_metrics_are_served_from_the_reconciler_registry(daemon: Daemon) -> None:
    response = await daemon.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "reconciler_build_info{" in response.text


async def test_workflow_list_shows_status_sync_revision_labels_and_problems(
    daemon: Daemon,
) -> None:
    await daemon.until_status("motd", "Converged")
    await daemon.until_status("broken", "Invalid")
    response = await daemon.client.get("/api/v1/workflows")
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == daemon.controller.target.revision
    by_name = {w["name"]: w for w in body["workflows"]}
    assert sorted(by_name) == ["broken", "motd", "slow"]
    motd = by_name["motd"]
    assert motd["status"] == "Converged" and motd["sync"] == "Synced"
    assert motd["revision"] == body["revision"]
    assert motd["labels"] == {"team": "ops"}
    assert motd["last_run_id"] and motd["next_check_at"]
    assert by_name["broken"]["status"] == "Invalid"


async def test_workflow_detail_has_spec_summary_states_and_problems(daemon: Daemon) -> None:
    motd = await daemon.until_status("motd", "Converged")
    assert motd["spec"]["start"] == "write"
    assert [s["name"] for s in motd["spec"]["states"]] == ["write", "done", "failed"]
    assert motd["spec"]["observe_plugin"] == "file.read"
    assert motd["spec"]["interval"] == "1h"
    broken = await daemon.until_status("broken", "Invalid")
    assert any("no.such.plugin" in p["message"] for p in broken["problems"])


async def test_unknown_workflow_and_run_are_404_json_errors(daemon: Daemon) -> None:
    for path in ("/api/v1/workflows/nope", "/api/v1/runs/nope", "/api/v1/workflows/nope/graph"):
        response = await daemon.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
        assert "nope" in response.json()["error"]["message"]
    missing = await daemon.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = await daemon.client.get("/api/v1/runs", params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("invalid request: limit:")


async def test_runs_page_back_and_a_run_carries_its_transition_journal(daemon: Daemon) -> None:
    motd = await daemon.until_status("motd", "Converged")
    listed = (await daemon.client.get("/api/v1/runs", params={"workflow": "motd"})).json()
    assert [r["id"] for r in listed["runs"]] == [motd["last_run_id"]]
    assert listed["next_before"] is None
    run = (await daemon.client.get(f"/api/v1/runs/{motd['last_run_id']}")).json()
    assert run["status"] == "succeeded" and run["workflow"] == "motd"
    transitions = [(e["state"], e["to_state"]) for e in run["journal"] if e["kind"] == "transition"]
    assert transitions == [("write", "done")]
    await daemon.running_run("slow")
    first = (await daemon.client.get("/api/v1/runs", params={"limit": 1})).json()
    assert len(first["runs"]) == 1 and first["next_before"] is not None
    rest = (await daemon.client.get("/api/v1/runs", params={"before": first["next_before"]})).json()
    seen = [r["id"] for r in first["runs"] + rest["runs"]]
    assert len(seen) == len(set(seen)) == 2


async def test_graph_highlights_the_state_of_the_run_in_progress(daemon: Daemon) -> None:
    await daemon.running_run("slow")
    mermaid = await daemon.client.get("/api/v1/workflows/slow/graph")
    assert mermaid.status_code == 200
    assert mermaid.headers["content-type"].startswith("text/plain")
    assert mermaid.text.startswith("stateDiagram-v2")
    assert "    class s_wait current" in mermaid.text.splitlines()
    dot = await daemon.client.get("/api/v1/workflows/slow/graph", params={"format": "dot"})
    assert dot.text.startswith("digraph")
    assert 'fillcolor="#fff59d"' in next(li for li in dot.text.splitlines() if "wait" in li)
    await daemon.until_status("motd", "Converged")  # its first run may still be under way
    idle = await daemon.client.get("/api/v1/workflows/motd/graph")
    assert not any(li.strip().endswith(" current") for li in idle.text.splitlines())
    invalid = await daemon.client.get("/api/v1/workflows/broken/graph")
    assert invalid.status_code == 200  # it parses; only validation failed


async def test_sync_queues_a_new_run_and_a_second_sync_while_running_is_409(
    daemon: Daemon,
) -> None:
    before = await daemon.until_status("motd", "Converged")
    response = await daemon.client.post("/api/v1/workflows/motd/sync", headers=daemon.auth())
    assert response.status_code == 202
    assert response.json()["message"] == "sync of workflow motd queued"

    async def new_run() -> bool:
        now = await daemon.workflow("motd")
        return now["last_run_id"] != before["last_run_id"] and now["status"] == "Converged"

    await daemon.until(new_run, "a manual run of motd")
    runs = await daemon.store.list_runs("motd")
    assert runs[0].reason == "manual"

    await daemon.running_run("slow")
    busy = await daemon.client.post("/api/v1/workflows/slow/sync", headers=daemon.auth())
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "already_running"


async def test_cancel_stops_the_running_run_and_records_it_cancelled(daemon: Daemon) -> None:
    run_id = await daemon.running_run("slow")
    response = await daemon.client.post(f"/api/v1/runs/{run_id}/cancel", headers=daemon.auth())
    assert response.status_code == 202, response.text

    async def cancelled() -> bool:
        run = await daemon.store.get_run(run_id)
        return run is not None and run.status is RunStatus.CANCELLED

    await daemon.until(cancelled, "the run recorded as cancelled")
    slow = await daemon.until_status("slow", "Degraded")
    assert "cancelled through the API" in slow["message"]
    again = await daemon.client.post(f"/api/v1/runs/{run_id}/cancel", headers=daemon.auth())
    assert again.status_code == 409
    assert again.json()["error"]["message"] == f"run {run_id} already cancelled"


async def test_suspend_holds_runs_across_syncs_and_resume_runs_again(
    daemon: Daemon, tmp_path: Path
) -> None:
    before = await daemon.until_status("motd", "Converged")
    suspended = await daemon.client.post("/api/v1/workflows/motd/suspend", headers=daemon.auth())
    assert suspended.status_code == 200
    motd = await daemon.until_status("motd", "Suspended")
    assert motd["reason"] == "SuspendedManually" and motd["suspended"] is True
    refused = await daemon.client.post("/api/v1/workflows/motd/sync", headers=daemon.auth())
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "suspended"

    daemon.out.write_text("drifted")
    daemon.controller.queue.add("motd", "drift-check")  # a drift check comes due
    await daemon.until(
        lambda: _idle(daemon, "motd"), "the drift check of the suspended workflow to finish"
    )
    assert (await daemon.workflow("motd"))["last_run_id"] == before["last_run_id"]
    assert daemon.out.read_text() == "drifted"

    resumed = await daemon.client.post("/api/v1/workflows/motd/resume", headers=daemon.auth())
    assert resumed.status_code == 200
    await daemon.until(lambda: _content(daemon.out, "hello"), "the resumed workflow to repair")
    assert (await daemon.workflow("motd"))["suspended"] is False


async def _idle(daemon: Daemon, name: str) -> bool:
    queue = daemon.controller.queue
    return name not in queue.processing and not queue.pending(name)


async def _content(path: Path, text: str) -> bool:
    return await asyncio.to_thread(path.read_text) == text


async def test_read_auth_token_requires_the_token_for_reads_too(tmp_path: Path) -> None:
    async for daemon in start_daemon(tmp_path, read_auth="token"):
        anonymous = await daemon.client.get("/api/v1/workflows")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        allowed = await daemon.client.get(
            "/api/v1/workflows", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert allowed.status_code == 200
        probe = await daemon.client.get("/healthz")
        assert probe.status_code == 200, "probes stay open for the kubelet"


async def test_a_suspend_survives_a_restart_of_the_daemon(tmp_path: Path) -> None:
    async for daemon in start_daemon(tmp_path):
        await daemon.until_status("motd", "Converged")
        response = await daemon.client.post("/api/v1/workflows/motd/suspend", headers=daemon.auth())
        assert response.status_code == 200
        before = await daemon.until_status("motd", "Suspended")
    async for daemon in start_daemon(tmp_path):
        assert "motd" in daemon.controller.suspended
        daemon.out.write_text("drifted")  # the restart queues motd; it must not repair this
        await daemon.until(partial(_idle, daemon, "motd"), "motd checked after the start")
        after = await daemon.workflow("motd")
        assert after["status"] == "Suspended" and after["suspended"] is True
        assert after["last_run_id"] == before["last_run_id"]
        assert daemon.out.read_text() == "drifted"


WEB_TOKEN = "web-t0ken-secret-51f2"
"""A secret the failing command echoes (it must never reach the journal, the API or the CLI)."""


def failing_restart() -> dict[str, Any]:
    """A workflow whose restart step prints the secret it was given, then fails as systemctl
    does."""
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Workflow",
        "metadata": {"name": "web"},
        "spec": {
            "interval": "1h",
            "secrets": {"token": "env:RECONCILER_SECRET_WEB_TOKEN"},
            "start": "restart",
            "states": {
                "restart": {
                    "action": {
                        "plugin": "shell.run",
                        "with": {
                            "shell": True,
                            "env": {"TOKEN": "${{ secrets.token }}"},
                            "command": 'echo "restarting with $TOKEN"; '
                            "echo 'Job for web.service failed.' >&2; exit 1",
                        },
                    },
                    "next": "done",
                    "onError": "failed",
                },
                "done": {"end": "success"},
                "failed": {"end": "failure"},
            },
        },
    }


async def test_a_failed_command_says_why_in_status_journal_api_and_cli_without_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_SECRET_WEB_TOKEN", WEB_TOKEN)
    repo = init_repo(tmp_path / "repo")
    (repo / "web.yaml").write_text(yaml.safe_dump(failing_restart(), sort_keys=False))
    commit(repo)
    async for daemon in start_daemon(tmp_path):
        status = await daemon.until_status("web", "Degraded")
        run_id = status["last_run_id"]
        response = await daemon.client.get(f"/api/v1/runs/{run_id}")
        stored = await daemon.store.entries(run_id)
        shown = await asyncio.to_thread(
            CliRunner().invoke, app, ["runs", run_id, "--server", daemon.url]
        )
    assert status["reason"] == "RunFailed"
    assert status["message"].endswith("/bin/sh exited with code 1: Job for web.service failed.")
    [failed] = [e for e in response.json()["journal"] if e["kind"] == "action"]
    assert failed["detail"]["error"]["details"] == {
        "exitCode": 1,
        "stdout": "restarting with ***\n",
        "stderr": "Job for web.service failed.\n",
    }
    assert WEB_TOKEN not in response.text
    assert WEB_TOKEN not in repr(stored)
    assert shown.exit_code == 0, shown.output
    assert "restart: shell.run (attempt 1) failed: CommandFailed" in shown.stdout
    assert "exitCode: 1" in shown.stdout
    assert "    restarting with ***" in shown.stdout
    assert "    Job for web.service failed." in shown.stdout
    assert WEB_TOKEN not in shown.stdout
