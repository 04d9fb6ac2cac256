"""Built-in Redis plugins: ``redis.get`` (check), ``redis.set`` and ``redis.subscribe``.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and awaits :meth:`run`; ``redis.subscribe`` also feeds ``subscribe`` conditions
(``reconciler.engine.conditions``) through :meth:`RedisSubscribe.subscribe`, whose messages
become ``message`` in the condition's ``match``. Talks to Redis through ``redis.asyncio``.

What callers may rely on:

* one client per call, closed before the call returns (also on error and cancellation);
* ``redis.set`` compares and sets in one server-side script (atomic): ``changed`` is false when
  the key already holds the value (and, if a ``ttl`` is asked for, already expires);
* the server defaults to ``$RECONCILER_REDIS_URL`` or ``redis://127.0.0.1:6379/0``; ``init()``
  checks at start-up that the server of ``$RECONCILER_REDIS_URL`` answers, when it is set;
* errors: ``ConnectionFailed`` (unreachable, retryable), ``AuthenticationFailed``, ``Timeout``
  (retryable), ``Conflict`` (the key holds another type, or ``onlyIfMissing`` found another
  value when ``conflictIfDifferent``), ``RedisCommandError``;
* URLs in errors lose their password; values returned pass through ``context.redact``;
* the local files a request's URL names (a ``unix://`` socket, ``ssl_certfile``, ``ssl_keyfile``,
  ``ssl_ca_certs``, ``ssl_ca_path``) must be under the operator's file roots
  (``context.granted().check_path``), else ``PathNotAllowed`` before any connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from reconciler.config.models import Duration
from reconciler.errors import (
    ActionError,
    Conflict,
    ConnectionFailed,
    PathNotAllowed,
    PluginError,
    Timeout,
)
from reconciler.plugin import ActionContext, LocalPath, Plugin, Request, Response, SubscribePlugin
from reconciler.urls import mask_url

from ._common import (
    SERVER_RETRY,
    AuthenticationFailed,
    default_url,
    parse_json,
    payload_text,
    probe_tcp,
    redact_all,
    redact_json,
    seconds_for,
    with_connection,
)

__all__ = [
    "DEFAULT_URL",
    "RedisCommandError",
    "RedisGet",
    "RedisSet",
    "RedisSubscribe",
]

URL_VARIABLE = "RECONCILER_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/0"

T = TypeVar("T")


class RedisCommandError(PluginError):
    """Redis refused a command for a reason not named more precisely (not retryable)."""

    retryable = False


FILE_PARAMETERS = ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "ssl_ca_path")
"""Query parameters of a Redis URL that name a file the client reads."""


def local_files(url: str) -> list[str]:
    """The local files a Redis URL names: a ``unix://`` socket and the TLS files."""
    parts = urlsplit(url)
    out = [unquote(parts.path)] if parts.scheme == "unix" and parts.path else []
    out += [value for key, value in parse_qsl(parts.query) if key in FILE_PARAMETERS]
    return out


class _RedisRequest(Request):
    model_config = ConfigDict(alias_generator=to_camel)

    url: Annotated[str | None, LocalPath(paths=local_files)] = Field(
        None,
        description=(
            "Server URL, redis://[user:password@]host:6379/db (rediss:// for TLS); defaults to "
            "$RECONCILER_REDIS_URL, else redis://127.0.0.1:6379/0. Pass a secret if it holds "
            "a password."
        ),
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description="Deadline of the call (connect included); bounded by the action's.",
    )

    def server(self) -> str:
        return self.url or default_url(URL_VARIABLE) or DEFAULT_URL


def _map_error(exc: BaseException, *, where: str, context: ActionContext) -> ActionError:
    reason = redact_all(str(exc) or type(exc).__name__, context)
    details = {"server": where}
    if isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError | rexc.NoPermissionError):
        return AuthenticationFailed(f"{where}: {reason}", details=details)
    if isinstance(exc, rexc.TimeoutError | TimeoutError):
        return Timeout(f"{where}: no answer in time", details=details)
    if isinstance(exc, rexc.ConnectionError | OSError):
        return ConnectionFailed(f"{where}: cannot connect ({reason})", details=details)
    if isinstance(exc, rexc.ResponseError) and "WRONGTYPE" in str(exc):
        return Conflict(f"{where}: {reason}", details=details)
    if isinstance(exc, rexc.BusyLoadingError | rexc.TryAgainError):
        return RedisCommandError(f"{where}: {reason}", details=details, retryable=True)
    return RedisCommandError(f"{where}: {reason}", details=details)


def _client(request: _RedisRequest, seconds: float, context: ActionContext) -> aioredis.Redis:
    """A client for the request's server, once the files its URL names are granted (the
    operator's own ``$RECONCILER_REDIS_URL`` is not checked)."""
    if request.url is not None:
        for path in local_files(request.url):
            # redis-py opens them relative to the process's directory
            context.granted().check_path(path, base=Path.cwd())
    return aioredis.Redis.from_url(
        request.server(),
        socket_connect_timeout=max(0.1, seconds),
        socket_timeout=max(0.1, seconds),
        decode_responses=False,
        retry_on_timeout=False,
    )


async def _with_client(
    request: _RedisRequest,
    context: ActionContext,
    work: Callable[[aioredis.Redis], Awaitable[T]],
) -> T:
    """Connect, do ``work``, close; errors named, the whole call bounded by the timeout."""
    seconds = seconds_for(request.timeout, context)
    where = f"Redis at {context.redact(mask_url(request.server()))}"

    async def connect() -> aioredis.Redis:
        return _client(request, seconds, context)

    async def close(client: aioredis.Redis) -> None:
        await client.aclose()

    def map_error(exc: BaseException) -> ActionError:
        if isinstance(exc, rexc.RedisError | OSError):
            return _map_error(exc, where=where, context=context)
        # an unusable URL
        return ConnectionFailed(f"{where}: {context.redact(str(exc))}", retryable=False)

    return await with_connection(
        seconds=seconds,
        where=where,
        connect=connect,
        work=work,
        close=close,
        expected=(rexc.RedisError, OSError, ValueError),
        map_error=map_error,
    )


class _RedisPlugin:
    async def init(self) -> None:
        server = default_url(URL_VARIABLE)
        if server is not None:
            await probe_tcp(server, default_port=6379, what="Redis (RECONCILER_REDIS_URL)")


# ------------------------------------------------------------------------------------- get


class RedisGetRequest(_RedisRequest):
    """Which key ``redis.get`` reads."""

    key: str = Field(min_length=1, description="Key of a string value.")


class RedisGetResponse(Response):
    """The key's value, or ``exists: false``."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: reading changes nothing.")
    exists: bool = Field(False, description="Whether the key exists.")
    value: str | None = Field(
        None, description="The value as text (first 64 KiB, secrets replaced); null if missing."
    )
    json_: Any = Field(None, alias="json", description="The value parsed as JSON, else null.")
    ttl: float | None = Field(
        None, description="Seconds until the key expires; null if it never does or is missing."
    )


_COMMAND_ERRORS = (
    ConnectionFailed,
    AuthenticationFailed,
    Timeout,
    Conflict,
    RedisCommandError,
    PathNotAllowed,
)
"""What ``redis.get`` and ``redis.set`` may raise (the names ``validate`` accepts in ``on:``)."""


class RedisGet(_RedisPlugin, Plugin[RedisGetRequest, RedisGetResponse]):
    """Read a string key: its value (text and parsed JSON) and time to live (read-only).

    A missing key is not an error: ``exists: false``. Errors: ``ConnectionFailed``
    (retryable), ``AuthenticationFailed``, ``Timeout`` (retryable), ``Conflict`` (the key holds
    another type), ``RedisCommandError``. Default retry: 3 attempts on retryable errors.
    """

    check = True
    Request = RedisGetRequest
    Response = RedisGetResponse
    retry = SERVER_RETRY
    errors = _COMMAND_ERRORS

    async def run(self, request: RedisGetRequest, context: ActionContext) -> RedisGetResponse:
        async def work(client: aioredis.Redis) -> RedisGetResponse:
            async with client.pipeline(transaction=True) as pipe:
                pipe.get(request.key)
                pipe.pttl(request.key)
                raw, pttl = await pipe.execute()
            if raw is None:
                return RedisGetResponse(exists=False)
            parsed = parse_json(raw)
            return RedisGetResponse(
                exists=True,
                value=context.redact(payload_text(raw)),
                json=redact_json(parsed, context.redact),
                ttl=pttl / 1000 if pttl is not None and pttl >= 0 else None,
            )

        return await _with_client(request, context, work)


# ------------------------------------------------------------------------------------- set

_SET_SCRIPT = """
local current = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[2])
if current == ARGV[1] then
  if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 2
  end
  return 0
end
if ARGV[3] == '1' and current then
  return 3
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""
"""Compare and set in one step. Returns 0 (same value), 1 (set), 2 (expiry added), 3 (kept
another value because of onlyIfMissing)."""


class RedisSetRequest(_RedisRequest):
    """What ``redis.set`` makes a key hold."""

    key: str = Field(min_length=1, description="Key to set.")
    value: Any = Field(
        description="The value: a string is stored as is, anything else as compact JSON."
    )
    ttl: Duration | None = Field(
        None,
        description=(
            "Expire the key after this long when it is written (at least 1ms). A key that "
            "already holds the value keeps its expiry, or gets this one if it has none."
        ),
    )
    only_if_missing: bool = Field(
        False, description="Never overwrite another value (Redis NX): report existed: true."
    )

    @model_validator(mode="after")
    def _ttl_positive(self) -> RedisSetRequest:
        if self.ttl is not None and self.ttl.total_seconds() < 0.001:
            raise ValueError("ttl must be at least 1ms")
        return self

    def encoded(self) -> str:
        if isinstance(self.value, str):
            return self.value
        return jsonlib.dumps(self.value, separators=(",", ":"), sort_keys=True)


class RedisSetResponse(Response):
    """What ``redis.set`` did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="True if the value or the expiry was written.")
    existed: bool = Field(
        False, description="onlyIfMissing found the key holding another value and left it."
    )


class RedisSet(_RedisPlugin, Plugin[RedisSetRequest, RedisSetResponse]):
    """Make a string key hold a value (atomic compare-and-set; changed only when it differed).

    Errors: ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``Timeout``
    (retryable), ``Conflict`` (the key holds another type), ``RedisCommandError``. Default
    retry: 3 attempts on retryable errors (safe: setting a value converges).
    """

    Request = RedisSetRequest
    Response = RedisSetResponse
    retry = SERVER_RETRY
    errors = _COMMAND_ERRORS

    async def run(self, request: RedisSetRequest, context: ActionContext) -> RedisSetResponse:
        ttl_ms = int(request.ttl.total_seconds() * 1000) if request.ttl is not None else 0

        async def work(client: aioredis.Redis) -> RedisSetResponse:
            outcome = await client.eval(
                _SET_SCRIPT,
                1,
                request.key,
                request.encoded(),
                str(ttl_ms),
                "1" if request.only_if_missing else "0",
            )
            code = int(outcome)
            return RedisSetResponse(changed=code in (1, 2), existed=code == 3)

        return await _with_client(request, context, work)


# ------------------------------------------------------------------------------- subscribe


class RedisSubscribeRequest(_RedisRequest):
    """What ``redis.subscribe`` listens to: a channel, or channels matching a pattern."""

    channel: str | None = Field(None, min_length=1, description="Channel to subscribe to.")
    pattern: str | None = Field(
        None, min_length=1, description="Glob pattern of channels (PSUBSCRIBE), e.g. 'deploy.*'."
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description=(
            "As an action: how long to wait for one message (then Timeout). In a subscribe "
            "condition it bounds connecting only; the state's own conditions bound the wait."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> RedisSubscribeRequest:
        if (self.channel is None) == (self.pattern is None):
            raise ValueError("give exactly one of `channel` or `pattern`")
        return self


class RedisMessage(Response):
    """One received message."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: receiving changes nothing.")
    channel: str = Field("", description="Channel the message was published on.")
    pattern: str | None = Field(None, description="The pattern that matched, if any.")
    data: Any = Field(None, description="The payload parsed as JSON, or null if it is not JSON.")
    text: str = Field("", description="The payload as text (first 64 KiB, secrets replaced).")


class RedisSubscribe(_RedisPlugin, SubscribePlugin[RedisSubscribeRequest, RedisMessage]):
    """Wait for Pub/Sub messages on a channel or pattern; feeds `subscribe` conditions.

    In a ``subscribe`` condition each message becomes ``message`` (``channel``, ``pattern``,
    ``data`` parsed from JSON, ``text``) in ``match``. As an action it returns the first message
    or raises ``Timeout``. Errors: ``ConnectionFailed`` (retryable), ``AuthenticationFailed``,
    ``Timeout``, ``RedisCommandError``.
    """

    check = True
    Request = RedisSubscribeRequest
    Response = RedisMessage
    errors = (ConnectionFailed, AuthenticationFailed, Timeout, RedisCommandError, PathNotAllowed)

    async def run(self, request: RedisSubscribeRequest, context: ActionContext) -> RedisMessage:
        stream = cast(AsyncGenerator[Mapping[str, Any], None], self.subscribe(request, context))
        seconds = seconds_for(request.timeout, context)
        try:
            try:
                async with asyncio.timeout(seconds):
                    first = await anext(stream)
            except TimeoutError:
                raise Timeout(
                    f"no message on {request.channel or request.pattern!r} within {seconds:g}s"
                ) from None
            return RedisMessage.model_validate(first)
        finally:
            await stream.aclose()

    async def subscribe(
        self, request: RedisSubscribeRequest, context: ActionContext
    ) -> AsyncIterator[Mapping[str, Any]]:
        seconds = seconds_for(request.timeout, context)
        where = f"Redis at {context.redact(mask_url(request.server()))}"
        client = _client(request, seconds, context)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            try:
                async with asyncio.timeout(seconds):
                    if request.pattern is not None:
                        await pubsub.psubscribe(request.pattern)
                    else:
                        await pubsub.subscribe(request.channel or "")
            except TimeoutError:
                raise Timeout(f"{where}: could not subscribe within {seconds:g}s") from None
            except (rexc.RedisError, OSError) as exc:
                raise _map_error(exc, where=where, context=context) from None
            while True:
                try:
                    msg = await pubsub.get_message(timeout=None)
                except (rexc.RedisError, OSError) as exc:
                    raise _map_error(exc, where=where, context=context) from None
                if msg is None or msg.get("type") not in ("message", "pmessage"):
                    continue
                raw = msg["data"] if isinstance(msg["data"], bytes) else str(msg["data"]).encode()
                parsed = parse_json(raw)
                pattern = msg.get("pattern")
                yield {
                    "channel": payload_text(msg["channel"]),
                    "pattern": payload_text(pattern) if isinstance(pattern, bytes) else None,
                    "data": redact_json(parsed, context.redact),
                    "text": context.redact(payload_text(raw)),
                }
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(pubsub.aclose())
            with contextlib.suppress(Exception):
                await asyncio.shield(client.aclose())
