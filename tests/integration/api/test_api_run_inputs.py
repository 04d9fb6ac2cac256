"""``POST /api/v1/workflows/NAME/runs`` over real HTTP with a real store: inputs are checked
against ``spec.parameters`` before anything is recorded (422 naming the input), need role
``operate``, and an accepted request is a sync command carrying its inputs whose run has them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.tokens import hash_token
from reconciler.store.records import CommandKind
from tests.integration.api.conftest import Daemon, start_daemon, write_repo
from tests.support.repos import commit, init_repo
from tests.support.workflows import file_workflow, put

pytestmark = pytest.mark.timeout(90)

READER, OPERATOR = "r3ader-token-inputs-1", "0perator-token-inputs-2"


def scale(out: Path) -> dict[str, Any]:
    """Writes ``<content> x<replicas>`` to ``out``; both are parameters."""
    doc = file_workflow("scale", out, "unused")
    spec = doc["spec"]
    spec["inputs"] = {"path": str(out)}
    spec["parameters"] = {
        "content": {"type": "string", "default": "plain", "description": "what to write"},
        "replicas": {"type": "integer", "default": 1},
        "env": {"type": "string", "default": "staging", "enum": ["staging", "prod"]},
        "region": {"type": "string", "default": "eu", "settable": False},
    }
    spec["states"]["write"]["action"]["with"]["content"] = (
        "${{ inputs.content }} x${{ inputs.replicas }}"
    )
    return doc


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The test daemon with ``scale`` beside the usual workflows, and a read and an operate
    token."""
    repo = tmp_path / "repo"
    init_repo(repo)
    write_repo(repo, tmp_path / "motd.txt")
    put(repo, scale(tmp_path / "scale.txt"))
    commit(repo)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            [
                {"name": "dashboard", "sha256": hash_token(READER), "role": "read"},
                {"name": "alice", "sha256": hash_token(OPERATOR), "role": "operate"},
            ]
        )
    )
    async for d in start_daemon(tmp_path, api_tokens_file=tokens):
        await d.until_status("scale", "Converged")
        yield d


async def post_run(daemon: Daemon, name: str, body: Any, token: str = OPERATOR) -> Any:
    return await daemon.client.post(
        f"/api/v1/workflows/{name}/runs", json=body, headers=daemon.auth(token)
    )


async def manual_runs(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    runs = (await daemon.client.get(f"/api/v1/runs?workflow={name}")).json()["runs"]
    return [r for r in runs if r["reason"] == "manual"]


async def finished_manual_runs(daemon: Daemon, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found[:] = [r for r in await manual_runs(daemon, "scale") if r["status"] != "running"]
        return len(found) >= count

    await daemon.until(check, f"{count} finished manual run(s) of scale")
    return found


@pytest.mark.parametrize(
    ("inputs", "code", "named"),
    [
        ({"replica": 3}, "unknown_input", "'replica'"),
        ({"region": "us"}, "input_not_settable", "'region'"),
        ({"replicas": "3"}, "invalid_input", "expected an integer, got '3'"),
        ({"env": "dev"}, "invalid_input", "expected one of ['staging', 'prod'], got 'dev'"),
    ],
)
async def test_a_refused_input_gets_422_naming_it_and_nothing_is_recorded(
    daemon: Daemon, inputs: dict[str, Any], code: str, named: str
) -> None:
    answer = await post_run(daemon, "scale", {"inputs": inputs})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert named in error["message"] and "scale" in error["message"]
    assert await daemon.store.commands_after(0) == []


async def test_a_body_that_is_not_an_inputs_mapping_gets_422(daemon: Daemon) -> None:
    for body in ({"inputs": [1]}, {"input": {"replicas": 2}}):
        answer = await post_run(daemon, "scale", body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
    assert await daemon.store.commands_after(0) == []


async def test_a_read_token_gets_403_and_nothing_is_recorded(daemon: Daemon) -> None:
    answer = await post_run(daemon, "scale", {"inputs": {"replicas": 2}}, token=READER)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "forbidden"
    assert await daemon.store.commands_after(0) == []


async def test_an_unknown_workflow_gets_404(daemon: Daemon) -> None:
    answer = await post_run(daemon, "nope", {"inputs": {"replicas": 2}})
    assert answer.status_code == 404, answer.text


async def test_an_invalid_workflow_refuses_inputs_with_409(daemon: Daemon) -> None:
    answer = await post_run(daemon, "broken", {"inputs": {"x": 1}})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "invalid"


async def test_accepted_inputs_are_a_sync_command_with_its_payload_and_the_run_has_them(
    daemon: Daemon,
) -> None:
    answer = await post_run(daemon, "scale", {"inputs": {"replicas": 3, "content": "hi"}})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["workflow"] == "scale" and body["inputs"] == {"replicas": 3, "content": "hi"}
    [command] = await daemon.store.commands_after(0)
    assert (command.kind, command.target, command.requested_by) == (
        CommandKind.SYNC,
        "scale",
        "alice",
    )
    assert command.payload == {"inputs": {"replicas": 3, "content": "hi"}}

    [run] = await finished_manual_runs(daemon, 1)
    assert run["status"] == "succeeded" and run["inputs"] == {"replicas": 3, "content": "hi"}
    detail = (await daemon.client.get(f"/api/v1/runs/{run['id']}")).json()
    assert detail["requested_by"] == "alice"
    started = detail["journal"][0]
    assert started["kind"] == "run_started"
    assert started["detail"]["inputs"] == {"replicas": 3, "content": "hi"}
    assert (daemon.repo.parent / "scale.txt").read_text() == "hi x3"


async def test_runs_with_different_inputs_and_a_plain_sync_are_never_merged(
    daemon: Daemon,
) -> None:
    for body in ({"inputs": {"replicas": 2}}, {"inputs": {"replicas": 4}}, None):
        answer = await post_run(daemon, "scale", body)
        assert answer.status_code == 202, answer.text
    runs = await finished_manual_runs(daemon, 3)
    assert sorted(json.dumps(r["inputs"]) for r in runs) == sorted(
        json.dumps(i) for i in ({"replicas": 2}, {"replicas": 4}, None)
    )
    assert await daemon.store.unhandled_commands(CommandKind.SYNC) == []
