"""Named tokens with roles over real HTTP: for every mutating route the app declares, a ``read``
token gets 403 with a body naming the token and the role needed, an ``operate`` token gets
through, a wrong token 401; every mutation records the token's name in the command log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from reconciler.api.app import create_app
from reconciler.daemon.view import ControllerView
from reconciler.store.records import CommandKind
from tests.integration.api.conftest import TOKEN, Daemon, start_daemon, tokens_file
from tests.support.workflows import gated_workflow

pytestmark = pytest.mark.timeout(90)

READER, OPERATOR, ADMIN = "r3ader-token-5b1f", "0perator-token-77aa", "adm1n-token-c0de"
WRITE_METHODS = {"post", "put", "patch", "delete"}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The test daemon with the three named tokens beside ``RECONCILER_API_TOKEN``; reading
    needs a token. Two gated workflows wait for approval: ``approve-me`` and ``reject-me``."""
    gates = [gated_workflow(n, tmp_path / f"{n}.txt", n) for n in ("approve-me", "reject-me")]
    tokens = tokens_file(
        tmp_path / "tokens.json",
        {
            "dashboard": (READER, "read"),
            "alice": (OPERATOR, "operate"),
            "root-bot": (ADMIN, "admin"),
        },
    )
    async for d in start_daemon(tmp_path, extra=gates, api_tokens_file=tokens, read_auth="token"):
        d.client.headers["Authorization"] = f"Bearer {READER}"  # the helpers' reads
        yield d


def walk(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every endpoint route under ``routes``: FastAPI 0.165 keeps an included router as one
    entry holding the router (``original_router``); older versions copied its routes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from walk(included.routes)


def api_routes(daemon: Daemon) -> list[tuple[str, str]]:
    """(method, path) of every ``/api/`` route the app serves, from the app's own routing table
    (so a route left out of the OpenAPI schema is covered too). No router is included with a
    prefix, so each route's path is the one served."""
    app = create_app(ControllerView(daemon.controller))
    found = sorted(
        (method.lower(), route.path)
        for route in walk(app.routes)
        if route.path.startswith("/api/")
        for method in route.methods
    )
    schema: dict[str, Any] = app.openapi()
    documented = {
        (method, path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert documented <= set(found), "the schema's routes are all in the routing table"
    return found


async def concrete(daemon: Daemon, path: str) -> str:
    """``path`` with its parameters filled: the workflow ``motd``, the running run of ``slow``
    (of ``approve-me`` or ``reject-me`` to approve or reject)."""
    if "{run_id}" in path:
        verb = path.rsplit("/", 1)[-1]
        holder = f"{verb}-me" if verb in ("approve", "reject") else "slow"
        path = path.replace("{run_id}", await waiting(daemon, holder))
    return path.replace("{name}", "motd")


async def waiting(daemon: Daemon, workflow: str) -> str:
    """The id of ``workflow``'s run in progress, once it is in a state (for a gated workflow:
    once it waits for approval)."""
    run_id = await daemon.running_run(workflow)
    if workflow == "slow":
        return run_id

    async def asks() -> bool:
        body = (await daemon.client.get(f"/api/v1/runs/{run_id}")).json()
        return body.get("approval") is not None

    await daemon.until(asks, f"the run of {workflow} to wait for approval")
    return run_id


async def test_a_read_token_is_refused_every_mutation_with_403_naming_token_and_role(
    daemon: Daemon,
) -> None:
    mutations = [(m, p) for m, p in api_routes(daemon) if m in WRITE_METHODS]
    assert len(mutations) >= 6, "sync, suspend, resume, cancel, approve and reject at least"
    for method, path in mutations:
        url = await concrete(daemon, path)
        answer = await daemon.client.request(method, url, headers=daemon.auth(READER))
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"] == {
            "code": "forbidden",
            "message": "token 'dashboard' has role read; this change needs role operate or admin",
        }
        assert READER not in answer.text
    assert not daemon.controller.suspended
    assert await daemon.store.commands_after(0) == [], "nothing was recorded"


async def test_a_wrong_token_gets_401_on_every_api_route(daemon: Daemon) -> None:
    for method, path in api_routes(daemon):
        url = await concrete(daemon, path)
        answer = await daemon.client.request(method, url, headers=daemon.auth("n0t-a-token"))
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_read_token_reads_every_reading_route(daemon: Daemon) -> None:
    for method, path in api_routes(daemon):
        if method in WRITE_METHODS:
            continue
        url = await concrete(daemon, path)
        answer = await daemon.client.request(method, url, headers=daemon.auth(READER))
        assert answer.status_code not in (401, 403), (method, path, answer.text)


async def test_an_operate_token_passes_every_mutation_and_its_name_is_recorded(
    daemon: Daemon,
) -> None:
    mutations = [(m, p) for m, p in api_routes(daemon) if m in WRITE_METHODS]
    # resume after suspend, so that each is a real change
    order = {"sync": 0, "suspend": 1, "resume": 2, "cancel": 3}
    mutations.sort(key=lambda mp: order.get(mp[1].rsplit("/", 1)[-1], 9))
    await daemon.until_status("motd", "Converged")  # not running: a sync is accepted
    for method, path in mutations:
        url = await concrete(daemon, path)
        body = {"ref": "main"} if path.endswith("/previews") else None  # it needs a body
        answer = await daemon.client.request(method, url, headers=daemon.auth(OPERATOR), json=body)
        assert answer.status_code in (200, 202), (method, path, answer.text)
    commands = await daemon.store.commands_after(0)
    assert {c.kind for c in commands} == {
        CommandKind.SYNC,
        CommandKind.SUSPEND,
        CommandKind.RESUME,
        CommandKind.CANCEL,
        CommandKind.APPROVE,
    }
    assert {c.requested_by for c in commands} == {"alice"}


async def test_the_single_api_token_is_an_admin_named_default(daemon: Daemon) -> None:
    answer = await daemon.client.post("/api/v1/workflows/motd/suspend", headers=daemon.auth(TOKEN))
    assert answer.status_code == 200, answer.text
    admin = await daemon.client.post("/api/v1/workflows/motd/resume", headers=daemon.auth(ADMIN))
    assert admin.status_code == 200, admin.text
    commands = await daemon.store.commands_after(0)
    assert [(c.kind, c.requested_by) for c in commands] == [
        (CommandKind.SUSPEND, "default"),
        (CommandKind.RESUME, "root-bot"),
    ]


async def test_the_run_a_sync_causes_and_a_cancelled_run_name_the_tokens_that_asked(
    daemon: Daemon,
) -> None:
    await daemon.until_status("motd", "Converged")
    synced = await daemon.client.post("/api/v1/workflows/motd/sync", headers=daemon.auth(OPERATOR))
    assert synced.status_code == 202, synced.text
    slow = await daemon.running_run("slow")
    cancelled = await daemon.client.post(f"/api/v1/runs/{slow}/cancel", headers=daemon.auth(ADMIN))
    assert cancelled.status_code == 202, cancelled.text

    async def manual_run() -> dict[str, Any] | None:
        runs = (await daemon.client.get("/api/v1/runs?workflow=motd")).json()["runs"]
        return next((r for r in runs if r["reason"] == "manual"), None)

    found: list[dict[str, Any]] = []

    async def seen() -> bool:
        run = await manual_run()
        found[:] = [run] if run else []
        return bool(found)

    await daemon.until(seen, "the manual run of motd")
    detail = (await daemon.client.get(f"/api/v1/runs/{found[0]['id']}")).json()
    assert detail["requested_by"] == "alice"
    assert detail["cancelled_by"] is None
    slow_detail = (await daemon.client.get(f"/api/v1/runs/{slow}")).json()
    assert slow_detail["cancelled_by"] == "root-bot"
    assert slow_detail["requested_by"] is None
