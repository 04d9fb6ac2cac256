"""``http.request`` and ``http.check`` against a real HTTP server on loopback.

The server is uvicorn serving a tiny Starlette app in a background thread (its own event loop),
so the plugins' httpx clients do real TCP, real HTTP parsing and real timeouts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from pydantic import ValidationError
from reconciler_plugins.http import (
    TEXT_CAP,
    HttpCheck,
    HttpCheckRequest,
    HttpCheckResponse,
    HttpRequest,
    HttpRequestRequest,
    HttpRequestResponse,
    TooManyRequests,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from reconciler.errors import (
    CheckFailed,
    ConnectionFailed,
    HTTP4xx,
    HTTP5xx,
    HTTPError,
    InvalidRequest,
    Timeout,
)
from reconciler.plugin import ActionContext, RunInfo
from reconciler.secrets.redaction import Redactor
from tests.support.waiting import until, until_async

SECRET = "tok-canary-1234"


# ------------------------------------------------------------------------------ the server


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    headers = {"Retry-After": "7"} if code == 429 else {}
    return PlainTextResponse(f"status {code} says {SECRET}", status_code=code, headers=headers)


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "headers": dict(request.headers),
            "query": dict(request.query_params),
            "body": body.decode(),
        },
        headers={"X-Token": SECRET},
    )


SLOW_ARRIVED = threading.Event()
"""Set when a request reaches ``/slow``: the signal that a request is in flight."""


async def slow(request: Request) -> Response:
    SLOW_ARRIVED.set()
    await asyncio.sleep(float(request.query_params.get("seconds", "5")))  # a slow server
    return PlainTextResponse("late")


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * (TEXT_CAP + 10))


async def redirect(request: Request) -> Response:
    return RedirectResponse("/health", status_code=302)


async def health(request: Request) -> Response:
    return PlainTextResponse("status: ready")


APP = Starlette(
    routes=[
        Route("/status/{code:int}", status, methods=["GET", "POST", "HEAD"]),
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/slow", slow),
        Route("/big", big),
        Route("/redirect", redirect),
        Route("/health", health, methods=["GET", "HEAD"]),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(APP, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    until(lambda: server.started, 5, "the test HTTP server to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_context(*, deadline: float | None = None) -> ActionContext:
    return ActionContext(
        run=RunInfo(id="r1", workflow="w"),
        idempotency_key="r1/call/0",
        logger=logging.LoggerAdapter(logging.getLogger("test.http")),
        workdir=Path.cwd(),
        redact=lambda text: text.replace(SECRET, "***"),
        deadline=deadline,
    )


async def request(**fields: object) -> HttpRequestResponse:
    return await HttpRequest().run(HttpRequestRequest.model_validate(fields), make_context())


async def check(**fields: object) -> HttpCheckResponse:
    return await HttpCheck().run(HttpCheckRequest.model_validate(fields), make_context())


# ------------------------------------------------------------------------------ the request


def test_request_model_validates_method_url_body_and_statuses() -> None:
    ok = HttpRequestRequest.model_validate(
        {"method": "post", "url": "http://x", "json": {"a": 1}, "expectStatus": [201]}
    )
    assert (ok.method, ok.json_, ok.expect_status) == ("POST", {"a": 1}, [201])
    for bad in (
        {"url": "ftp://x"},
        {"url": "http://x", "method": "BREW"},
        {"url": "http://x", "json": {}, "body": "b"},
        {"url": "http://x", "expectStatus": [700]},
        {"url": "http://x", "follow_redirect": True},
    ):
        with pytest.raises(ValidationError):
            HttpRequestRequest.model_validate(bad)


def test_check_accepts_only_read_only_methods() -> None:
    assert HttpCheck.check is True
    assert HttpRequest.check is False
    with pytest.raises(ValidationError):
        HttpCheckRequest.model_validate({"url": "http://x", "method": "POST"})


# ------------------------------------------------------------------------------ http.request


async def test_get_returns_status_headers_and_parsed_json(base_url: str) -> None:
    response = await request(url=f"{base_url}/echo", params={"q": "v"}, headers={"X-A": "b"})
    assert response.status == 200
    assert response.changed is False
    assert response.json_["method"] == "GET"
    assert response.json_["query"] == {"q": "v"}
    assert response.json_["headers"]["x-a"] == "b"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.text) == response.json_


async def test_post_sends_json_reports_changed_and_carries_the_idempotency_key(
    base_url: str,
) -> None:
    response = await request(method="POST", url=f"{base_url}/echo", json={"name": "app"})
    assert response.changed is True
    assert json.loads(response.json_["body"]) == {"name": "app"}
    assert response.json_["headers"]["idempotency-key"] == "r1/call/0"


async def test_changed_can_be_overridden_and_the_idempotency_header_disabled(
    base_url: str,
) -> None:
    response = await request(
        method="PUT", url=f"{base_url}/echo", body="raw", changed=False, idempotencyHeader=None
    )
    assert response.changed is False
    assert response.json_["body"] == "raw"
    assert "idempotency-key" not in response.json_["headers"]


async def test_response_body_headers_and_json_are_redacted(base_url: str) -> None:
    response = await request(url=f"{base_url}/echo", headers={"Authorization": f"Bearer {SECRET}"})
    dumped = response.model_dump_json(by_alias=True)
    assert SECRET not in dumped
    assert response.headers["x-token"] == "***"
    assert response.json_["headers"]["authorization"] == "Bearer ***"


async def test_large_body_text_is_capped(base_url: str) -> None:
    response = await request(url=f"{base_url}/big")
    assert len(response.text) == TEXT_CAP
    assert response.json_ is None


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        (404, HTTP4xx, False),
        (429, TooManyRequests, True),
        (500, HTTP5xx, True),
        (503, HTTP5xx, True),
    ],
)
async def test_unexpected_status_raises_the_named_error(
    base_url: str, code: int, error: type[HTTPError], retryable: bool
) -> None:
    with pytest.raises(error) as info:
        await request(
            url=f"{base_url}/status/{code}", headers={"Authorization": "Bearer hidden-hv"}
        )
    assert type(info.value) is error
    assert info.value.retryable is retryable
    assert info.value.details["status"] == code
    assert "hidden-hv" not in str(info.value) and "hidden-hv" not in repr(info.value.details)
    assert SECRET not in repr(info.value.details)


async def test_an_error_status_says_what_the_server_said_redacted(base_url: str) -> None:
    with pytest.raises(HTTP4xx) as info:
        await request(url=f"{base_url}/status/409")
    assert info.value.details["body"] == "status 409 says ***"
    assert str(info.value) == (
        f"HTTP4xx: GET {base_url}/status/409 answered 409 Conflict: status 409 says ***"
    )


async def test_too_many_requests_is_an_http4xx_and_reports_retry_after(base_url: str) -> None:
    with pytest.raises(TooManyRequests) as info:
        await request(url=f"{base_url}/status/429")
    assert info.value.matches("HTTP4xx") and info.value.matches("HTTPError")
    assert info.value.details["retryAfterSeconds"] == 7


async def test_expect_status_accepts_listed_codes_only(base_url: str) -> None:
    response = await request(url=f"{base_url}/status/404", expectStatus=[404])
    assert response.status == 404
    with pytest.raises(HTTPError) as info:
        await request(url=f"{base_url}/status/200", expectStatus=[201])
    assert type(info.value) is HTTPError


async def test_redirect_is_an_error_unless_followed(base_url: str) -> None:
    with pytest.raises(HTTPError) as info:
        await request(url=f"{base_url}/redirect")
    assert info.value.details["status"] == 302
    response = await request(url=f"{base_url}/redirect", followRedirects=True)
    assert response.text == "status: ready"


async def test_connection_refused_raises_connection_failed(closed_port: int) -> None:
    with pytest.raises(ConnectionFailed) as info:
        await request(url=f"http://user:pw-secret@127.0.0.1:{closed_port}/x")
    assert info.value.retryable is True
    assert "pw-secret" not in str(info.value)


async def test_slow_server_raises_timeout(base_url: str) -> None:
    with pytest.raises(Timeout) as info:
        await request(url=f"{base_url}/slow?seconds=5", timeout="300ms")
    assert info.value.retryable is True


async def test_the_action_deadline_bounds_the_request(base_url: str) -> None:
    deadline = asyncio.get_running_loop().time() + 0.3
    req = HttpRequestRequest.model_validate({"url": f"{base_url}/slow?seconds=5"})
    with pytest.raises(Timeout):
        await HttpRequest().run(req, make_context(deadline=deadline))


async def test_unsupported_url_raises_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        await request(url="http://")


@pytest.mark.parametrize(
    "value", ["line1-secret\nline2-secret", "tab-ok\r\nX-Injected: 1", "caf\u00e9-secret"]
)
async def test_a_header_value_httpx_would_quote_is_refused_naming_the_header(
    base_url: str, value: str
) -> None:
    context = make_context()
    context.redact = Redactor([value]).redact
    req = HttpRequestRequest.model_validate(
        {"url": f"{base_url}/echo", "headers": {"X-Token": value}}
    )

    with pytest.raises(InvalidRequest, match="header 'X-Token'") as caught:
        await HttpRequest().run(req, context)

    shown = f"{caught.value} {caught.value.details}"
    for piece in value.split("\n"):
        assert piece.strip() not in shown


async def test_cancellation_propagates(base_url: str) -> None:
    SLOW_ARRIVED.clear()
    task = asyncio.create_task(request(url=f"{base_url}/slow?seconds=5"))
    await until_async(SLOW_ARRIVED.is_set, 5, "the request to reach the server")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -------------------------------------------------------------------------------- http.check


async def test_check_passes_with_status_and_contains(base_url: str) -> None:
    response = await check(url=f"{base_url}/health", contains="ready")
    assert (response.ok, response.status, response.changed) == (True, 200, False)
    assert response.latency_ms >= 0


async def test_check_follows_redirects_by_default(base_url: str) -> None:
    response = await check(url=f"{base_url}/redirect")
    assert response.status == 200


async def test_check_without_expected_text_raises_check_failed(base_url: str) -> None:
    with pytest.raises(CheckFailed):
        await check(url=f"{base_url}/health", contains="degraded")


async def test_check_with_unexpected_status_raises_http_error(base_url: str) -> None:
    with pytest.raises(HTTP5xx):
        await check(url=f"{base_url}/status/502")
    response = await check(url=f"{base_url}/status/503", expectStatus=[503])
    assert response.ok


async def test_check_connection_refused_raises_connection_failed(closed_port: int) -> None:
    with pytest.raises(ConnectionFailed):
        await check(url=f"http://127.0.0.1:{closed_port}/")


async def test_check_timeout_raises_timeout(base_url: str) -> None:
    with pytest.raises(Timeout):
        await check(url=f"{base_url}/slow?seconds=5", timeout="300ms")


async def test_check_without_raising_reports_ok_false_and_a_reason(
    base_url: str, closed_port: int
) -> None:
    failed = await check(url=f"{base_url}/status/500", raiseOnFailure=False)
    assert (failed.ok, failed.status) == (False, 500)
    assert "500" in failed.reason
    assert SECRET not in failed.reason

    missing = await check(url=f"{base_url}/health", contains="nope", raiseOnFailure=False)
    assert (missing.ok, missing.status) == (False, 200)

    down = await check(url=f"http://127.0.0.1:{closed_port}/", raiseOnFailure=False)
    assert (down.ok, down.status) == (False, None)
    assert "ConnectionFailed" in down.reason


async def test_check_with_head_needs_no_body(base_url: str) -> None:
    response = await check(url=f"{base_url}/health", method="head")
    assert (response.ok, response.status) == (True, 200)


def test_responses_dump_json_and_latency_under_their_yaml_names() -> None:
    dumped = HttpRequestResponse.model_validate({"json": {"a": 1}}).model_dump(
        by_alias=True, mode="json"
    )
    assert (dumped["json"], dumped["status"], dumped["changed"]) == ({"a": 1}, 200, False)
    check_dump = HttpCheckResponse.model_validate({"ok": True}).model_dump(by_alias=True)
    assert check_dump["latencyMs"] == 0.0
