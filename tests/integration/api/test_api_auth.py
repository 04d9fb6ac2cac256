"""Bearer-token auth on every mutation, over real HTTP: no token, a wrong token and the right
one, for each mutating route the app declares; and a daemon without a configured token refuses
every mutation with 403 saying how to configure one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from reconciler.api.app import create_app
from reconciler.api.auth import Auth
from reconciler.daemon.view import ControllerView
from tests.integration.api.conftest import TOKEN, Daemon, start_daemon

pytestmark = pytest.mark.timeout(60)

MUTATIONS = [
    "/api/v1/workflows/{name}/sync",
    "/api/v1/workflows/{name}/suspend",
    "/api/v1/workflows/{name}/resume",
    "/api/v1/workflows/{name}/runs",
    "/api/v1/runs/{run_id}/cancel",
    "/api/v1/runs/{run_id}/approve",
    "/api/v1/runs/{run_id}/reject",
    "/api/v1/previews",
]


def concrete(path: str) -> str:
    return path.replace("{name}", "motd").replace("{run_id}", "no-such-run")


async def test_the_list_covers_every_mutating_api_route(daemon: Daemon) -> None:
    # The schema, not app.routes: routers included by create_app are not flattened there.
    schema = create_app(ControllerView(daemon.controller)).openapi()
    declared = {
        path
        for path, operations in schema["paths"].items()
        if path.startswith("/api/") and operations.keys() & {"post", "put", "patch", "delete"}
    }
    assert declared == set(MUTATIONS)


@pytest.mark.parametrize("route", MUTATIONS)
async def test_mutation_needs_the_bearer_token(daemon: Daemon, route: str) -> None:
    url = concrete(route)
    anonymous = await daemon.client.post(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"] == {
        "code": "unauthorized",
        "message": "this change needs an API token: send 'Authorization: Bearer <token>'",
    }
    wrong = await daemon.client.post(url, headers=daemon.auth("not-" + TOKEN))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "the API token is not valid"
    assert TOKEN not in wrong.text
    basic = await daemon.client.post(url, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    body = {"ref": "main"} if route == "/api/v1/previews" else None
    allowed = await daemon.client.post(url, headers=daemon.auth(), json=body)
    assert allowed.status_code not in (401, 403), allowed.text
    if "{run_id}" in route:
        assert allowed.status_code == 404  # past auth: the run does not exist
    else:
        assert allowed.status_code in (200, 202, 409)


async def test_without_a_configured_token_every_mutation_is_refused_with_how_to_fix(
    tmp_path: Path,
) -> None:
    async for daemon in start_daemon(tmp_path, token=None):
        for route in MUTATIONS:
            response = await daemon.client.post(concrete(route), headers=daemon.auth())
            assert response.status_code == 403, route
            error = response.json()["error"]
            assert error["code"] == "no_token_configured"
            assert "RECONCILER_API_TOKEN" in error["message"]
            assert "--api-token-file" in error["message"]
        reads = await daemon.client.get("/api/v1/workflows")
        assert reads.status_code == 200, "reads stay open on loopback"
        assert not daemon.controller.suspended


@pytest.mark.parametrize(
    ("listen", "mode"),
    [
        ("127.0.0.1:8080", "none"),
        ("localhost:8080", "none"),
        ("[::1]:8080", "none"),
        ("0.0.0.0:8080", "token"),
        ("10.1.2.3:8080", "token"),
        (":8080", "token"),
    ],
)
def test_reads_are_open_by_default_only_on_loopback(listen: str, mode: str) -> None:
    assert Auth.of(SecretStr("t"), read_auth=None, listen=listen).read_auth == mode
    assert Auth.of(SecretStr("t"), read_auth="none", listen=listen).read_auth == "none"


def test_an_empty_token_counts_as_no_token() -> None:
    assert Auth.of(SecretStr(""), read_auth=None, listen="127.0.0.1:1").tokens == ()
