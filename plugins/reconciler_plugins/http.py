"""Built-in ``http.request`` and ``http.check``: talk to HTTP APIs and probe HTTP endpoints.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and awaits :meth:`run`; the response becomes ``outputs.<as>``, the ``result`` of
a ``poll`` or the ``observed`` state of an ``observe`` probe (``http.check`` is a check plugin,
so it may be used in ``observe``, ``poll`` and ``checks``), and is journaled by the store.

What callers may rely on:

* a status the request did not accept raises a named error: ``TooManyRequests`` (429,
  retryable), ``HTTP4xx``, ``HTTP5xx`` (retryable), or ``HTTPError`` for any other status; an
  unreachable server raises ``ConnectionFailed`` (retryable), a deadline ``Timeout``;
* header values never appear in errors; URLs in errors lose their ``user:password@`` part, and
  every text that leaves this module (body, headers, URL) passes through ``context.redact``;
* bodies are read up to 1 MiB (``truncated`` says when more was sent); ``text`` keeps the first
  64 KiB;
* one ``httpx.AsyncClient`` per call: no connection state is shared between runs.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from datetime import timedelta
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from reconciler.config.models import Duration
from reconciler.errors import (
    CheckFailed,
    ConnectionFailed,
    HTTP4xx,
    HTTP5xx,
    HTTPError,
    InvalidRequest,
    Timeout,
)
from reconciler.plugin import ActionContext, Plugin, Request, Response
from reconciler.urls import mask_url

from ._common import SERVER_RETRY, redact_json

__all__ = [
    "BODY_LIMIT",
    "TEXT_CAP",
    "HttpCheck",
    "HttpCheckRequest",
    "HttpCheckResponse",
    "HttpRequest",
    "HttpRequestRequest",
    "HttpRequestResponse",
    "TooManyRequests",
]

BODY_LIMIT = 1024 * 1024
"""Bytes of a response body read at most; JSON is parsed only from a complete body."""

TEXT_CAP = 64 * 1024
"""Characters of the body kept in ``text``."""

ERROR_BODY_TAIL = 1024
"""Characters of the body kept in an error's details."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TooManyRequests(HTTP4xx):
    """The server answered 429: it may accept the same request later, so this one is retryable."""

    retryable = True


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _check_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("the url must start with http:// or https://")
    return value


def _check_statuses(value: list[int]) -> list[int]:
    for code in value:
        if not 100 <= code <= 599:
            raise ValueError(f"{code} is not an HTTP status code (100-599)")
    return value


Method = Annotated[
    Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_upper)
]
SafeMethod = Annotated[Literal["GET", "HEAD", "OPTIONS"], BeforeValidator(_upper)]
Url = Annotated[str, Field(min_length=1), AfterValidator(_check_url)]
Statuses = Annotated[list[int], AfterValidator(_check_statuses)]


class HttpRequestRequest(Request):
    """What ``http.request`` sends."""

    model_config = ConfigDict(alias_generator=to_camel)

    method: Method = Field("GET", description="HTTP method (case-insensitive).")
    url: Url = Field(description="Absolute http:// or https:// URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    params: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
        default_factory=dict, description="Query parameters added to the URL."
    )
    json_: Any = Field(
        None, alias="json", description="A JSON body (sets Content-Type: application/json)."
    )
    body: str | None = Field(None, description="A raw text body; not together with `json`.")
    timeout: Duration = Field(
        timedelta(seconds=30), description="Deadline of the whole call, connect included."
    )
    expect_status: Statuses | None = Field(
        None,
        description="Statuses that count as success; by default any 2xx.",
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate.")
    follow_redirects: bool = Field(
        False, description="Follow 3xx redirects; off by default, so a 3xx is an error."
    )
    changed: bool | None = Field(
        None,
        description=(
            "What to report as changed on success; by default false for GET, HEAD and "
            "OPTIONS and true for every other method."
        ),
    )
    idempotency_header: str | None = Field(
        "Idempotency-Key",
        description=(
            "Header carrying the action's stable idempotency key on non-GET/HEAD/OPTIONS "
            "requests, so a server can deduplicate a retried call; null to send none."
        ),
    )

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestRequest:
        if self.json_ is not None and self.body is not None:
            raise ValueError("give either `json` or `body`, not both")
        return self


class HttpRequestResponse(Response):
    """What the server answered."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="See the request's `changed`.")
    status: int = Field(200, description="HTTP status code.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers (lower-case names, secrets replaced by ***).",
    )
    json_: Any = Field(None, alias="json", description="The parsed body if it is JSON, else null.")
    text: str = Field("", description="The body as text (first 64 KiB, secrets replaced).")
    truncated: bool = Field(False, description="True if the body exceeded 1 MiB and was cut.")


class HttpCheckRequest(Request):
    """What ``http.check`` probes."""

    model_config = ConfigDict(alias_generator=to_camel)

    url: Url = Field(description="Absolute http:// or https:// URL.")
    method: SafeMethod = Field("GET", description="A read-only HTTP method (case-insensitive).")
    expect_status: Statuses = Field(
        default_factory=lambda: [200], min_length=1, description="Statuses that count as ok."
    )
    contains: str | None = Field(
        None, description="Text the body must contain (checked in the first 1 MiB)."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    timeout: Duration = Field(
        timedelta(seconds=10), description="Deadline of the whole probe, connect included."
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate.")
    follow_redirects: bool = Field(True, description="Follow 3xx redirects.")
    raise_on_failure: bool = Field(
        True,
        description=(
            "Raise a named error when the probe fails. If false, a failed probe (status, "
            "contains, connection, timeout) returns ok=false with a reason instead, which "
            "suits `poll ... until: result.ok`."
        ),
    )


class HttpCheckResponse(Response):
    """The probe's verdict."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: a check changes nothing.")
    ok: bool = Field(description="True if every expectation held.")
    status: int | None = Field(None, description="HTTP status code; null if no answer came.")
    latency_ms: float = Field(0.0, description="Time to the complete response, in milliseconds.")
    reason: str = Field("", description="Why the probe failed; '' when ok.")


# ------------------------------------------------------------------------------ the transport


class _Answer:
    """A response read within :data:`BODY_LIMIT`."""

    def __init__(self, response: httpx.Response, body: bytes, truncated: bool) -> None:
        self.response = response
        self.body = body
        self.truncated = truncated

    @property
    def status(self) -> int:
        return self.response.status_code

    def text(self) -> str:
        encoding = self.response.charset_encoding or "utf-8"
        try:
            return self.body.decode(encoding, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


_HEADER_NAME_OK = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _check_headers(headers: dict[str, str], *, where: str, context: ActionContext) -> None:
    """Refuse, by name, a header httpx would refuse quoting its bytes (a secret with a newline).

    A value must be ASCII without line breaks or NUL (header injection, and httpx's own error
    shows the value as ``b'...'``); a name must be an HTTP token. The error names the header
    (redacted: a workflow could put a secret in a name), never the value.
    """
    for name, value in headers.items():
        shown = context.redact(name)
        if not name or not set(name) <= _HEADER_NAME_OK:
            raise InvalidRequest(
                f"{where}: a header name is not a valid HTTP token: {shown!r}",
                details={"header": shown},
            )
        if any(c in value for c in "\r\n\0") or not value.isascii():
            raise InvalidRequest(
                f"{where}: header {shown!r} has a line break, NUL or non-ASCII character in its "
                "value (the value is not shown)",
                details={"header": shown},
            )


async def _exchange(
    method: str,
    url: str,
    *,
    context: ActionContext,
    limit: timedelta,
    verify: bool,
    follow_redirects: bool,
    headers: dict[str, str],
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    content: str | None = None,
) -> tuple[_Answer, float]:
    """Send one request; return the answer and the latency in ms, or raise a named error."""
    seconds = limit.total_seconds()
    left = context.time_left()
    if left is not None:
        seconds = min(seconds, left)
    where = f"{method} {context.redact(mask_url(str(url)))}"
    _check_headers(headers, where=where, context=context)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with (
            asyncio.timeout(seconds),
            httpx.AsyncClient(
                verify=verify, follow_redirects=follow_redirects, timeout=seconds
            ) as client,
            client.stream(
                method,
                url,
                headers=headers,
                params=params or None,
                json=json_body,
                content=content,
            ) as response,
        ):
            body = bytearray()
            truncated = False
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > BODY_LIMIT:
                    del body[BODY_LIMIT:]
                    truncated = True
                    break
            latency = (loop.time() - started) * 1000
            return _Answer(response, bytes(body), truncated), latency
    except (TimeoutError, httpx.TimeoutException):
        raise Timeout(
            f"{where}: no complete answer within {seconds:g}s", details={"url": where}
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise InvalidRequest(f"{where}: {context.redact(str(exc))}") from None
    except httpx.TooManyRedirects:
        raise HTTPError(f"{where}: too many redirects", details={"url": where}) from None
    except httpx.ConnectError as exc:
        reason = context.redact(str(exc)) or type(exc).__name__
        # a certificate the server will still present next time is not worth retrying
        retryable = "CERTIFICATE_VERIFY_FAILED" not in reason
        raise ConnectionFailed(
            f"{where}: cannot connect ({reason})", details={"url": where}, retryable=retryable
        ) from None
    except httpx.TransportError as exc:
        reason = context.redact(str(exc)) or type(exc).__name__
        raise ConnectionFailed(
            f"{where}: connection broken ({reason})", details={"url": where}
        ) from None
    except httpx.DecodingError as exc:
        raise HTTPError(
            f"{where}: cannot decode the response body ({context.redact(str(exc))})",
            details={"url": where},
        ) from None


ERROR_SAYS = 200
"""Characters of a plain-text or JSON error body quoted in the error's message."""


def _says(body: str, *, content_type: str) -> str:
    """``": <what the server said>"`` — the first line of a plain-text or JSON error body (an
    HTML page says nothing useful in one line), so that a run's error and the workflow's status
    show why; ``""`` otherwise. ``body`` is already redacted."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "text/plain" and not (kind == "application/json" or kind.endswith("+json")):
        return ""
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    if len(first) > ERROR_SAYS:
        first = first[: ERROR_SAYS - 1] + "…"
    return f": {first}" if first else ""


def status_error(answer: _Answer, *, method: str, url: str, context: ActionContext) -> HTTPError:
    """The named error for a status the caller did not accept (never holds header values)."""
    status = answer.status
    where = f"{method} {context.redact(mask_url(str(url)))}"
    body = context.redact(answer.text())[:ERROR_BODY_TAIL]
    details: dict[str, Any] = {"status": status, "url": where, "body": body}
    message = f"{where} answered {status} {answer.response.reason_phrase}".rstrip()
    message += _says(body, content_type=answer.response.headers.get("content-type", ""))
    if status == 429:
        retry_after = answer.response.headers.get("retry-after")
        if retry_after is not None and retry_after.strip().isdigit():
            details["retryAfterSeconds"] = int(retry_after.strip())
        return TooManyRequests(message, details=details)
    if 400 <= status < 500:
        return HTTP4xx(message, details=details)
    if 500 <= status < 600:
        return HTTP5xx(message, details=details)
    return HTTPError(message, details=details)


def _parse_json(answer: _Answer) -> Any:
    if answer.truncated or not answer.body:
        return None
    content_type = answer.response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        return None
    try:
        return jsonlib.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return None


# -------------------------------------------------------------------------------- the plugins


class HttpRequest(Plugin[HttpRequestRequest, HttpRequestResponse]):
    """Send an HTTP request and return the status, headers and body.

    Success is any 2xx unless ``expectStatus`` says otherwise. Errors: ``TooManyRequests`` (429,
    retryable), ``HTTP4xx``, ``HTTP5xx`` (retryable), ``HTTPError`` (another unexpected status,
    e.g. a 3xx, or too many redirects), ``ConnectionFailed`` (retryable, except for a TLS
    certificate that fails verification), ``Timeout``, ``InvalidRequest`` (a bad URL).
    Default retry: 3 attempts, about 1s then 2s apart (jittered), retryable errors only.
    """

    Request = HttpRequestRequest
    Response = HttpRequestResponse
    retry = SERVER_RETRY
    errors = (
        TooManyRequests,
        HTTP4xx,
        HTTP5xx,
        HTTPError,
        ConnectionFailed,
        Timeout,
        InvalidRequest,
    )

    async def run(self, request: HttpRequestRequest, context: ActionContext) -> HttpRequestResponse:
        method = request.method
        headers = dict(request.headers)
        if (
            request.idempotency_header
            and method not in SAFE_METHODS
            and not any(k.lower() == request.idempotency_header.lower() for k in headers)
        ):
            headers[request.idempotency_header] = context.idempotency_key
        answer, _latency = await _exchange(
            method,
            request.url,
            context=context,
            limit=request.timeout,
            verify=request.verify,
            follow_redirects=request.follow_redirects,
            headers=headers,
            params=request.params,
            json_body=request.json_,
            content=request.body,
        )
        status = answer.status
        accepted = (
            200 <= status < 300
            if request.expect_status is None
            else status in request.expect_status
        )
        if not accepted:
            raise status_error(answer, method=method, url=request.url, context=context)
        parsed = _parse_json(answer)
        changed = request.changed if request.changed is not None else method not in SAFE_METHODS
        return HttpRequestResponse(
            changed=changed,
            status=status,
            headers={k.lower(): context.redact(v) for k, v in answer.response.headers.items()},
            json=redact_json(parsed, context.redact),
            text=context.redact(answer.text()[:TEXT_CAP]),
            truncated=answer.truncated,
        )


class HttpCheck(Plugin[HttpCheckRequest, HttpCheckResponse]):
    """Probe an HTTP endpoint: expected status and, optionally, text in the body (read-only).

    Errors (unless ``raiseOnFailure: false``, which returns ``ok: false`` and a ``reason``
    instead): an unexpected status raises ``TooManyRequests`` (429), ``HTTP4xx``, ``HTTP5xx`` or
    ``HTTPError`` (e.g. a 3xx); a body without ``contains`` raises ``CheckFailed``; an
    unreachable server ``ConnectionFailed``; a slow one ``Timeout``.
    Default retry: 3 attempts, about 1s then 2s apart (jittered), retryable errors only.
    """

    check = True
    Request = HttpCheckRequest
    Response = HttpCheckResponse
    retry = SERVER_RETRY
    errors = (
        TooManyRequests,
        HTTP4xx,
        HTTP5xx,
        HTTPError,
        CheckFailed,
        ConnectionFailed,
        Timeout,
        InvalidRequest,
    )

    async def run(self, request: HttpCheckRequest, context: ActionContext) -> HttpCheckResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            answer, latency = await _exchange(
                request.method,
                request.url,
                context=context,
                limit=request.timeout,
                verify=request.verify,
                follow_redirects=request.follow_redirects,
                headers=dict(request.headers),
            )
            if answer.status not in request.expect_status:
                raise status_error(answer, method=request.method, url=request.url, context=context)
            if request.contains is not None and request.contains not in answer.text():
                raise CheckFailed(
                    f"{request.method} {context.redact(mask_url(str(request.url)))}: the body does "
                    f"not contain {context.redact(request.contains)!r}",
                    details={"status": answer.status},
                )
        except (HTTPError, CheckFailed, ConnectionFailed, Timeout) as exc:
            if request.raise_on_failure:
                raise
            status = exc.details.get("status")
            return HttpCheckResponse(
                ok=False,
                status=status if isinstance(status, int) else None,
                latency_ms=(loop.time() - started) * 1000,
                reason=str(exc),
            )
        return HttpCheckResponse(ok=True, status=answer.status, latency_ms=latency)
