"""Built-in NATS plugins: ``nats.publish``, ``nats.subscribe``, ``nats.stream.info``, ``nats.stream``.

Where it sits: the runner (``reconciler.engine``) renders an action's ``with:`` into one of the
requests below and awaits :meth:`run`; ``nats.subscribe`` also feeds ``subscribe`` conditions
(``reconciler.engine.conditions``) through :meth:`NatsSubscribe.subscribe`, whose messages
become ``message`` in the condition's ``match``. Talks to NATS through nats-py.

The JetStream stream plugins are an observe + converge pair: ``nats.stream.info`` (a check
plugin, for ``observe``/``poll``) reports a stream's configuration in the same camelCase shape
that ``nats.stream`` accepts, so ``desired: {exists: true, config: {...}}`` can be written with
the very values the converging action declares; ``nats.stream`` creates the stream when it is
missing, updates the declared fields that differ, and changes nothing (``changed: false``)
when the stream already matches.

What callers may rely on:

* one connection per call, closed before the call returns (also on error and cancellation);
  a subscription is unsubscribed when the condition's race is over;
* the server defaults to ``$RECONCILER_NATS_URL`` or ``nats://127.0.0.1:4222``; ``init()``
  checks at start-up that the server of ``$RECONCILER_NATS_URL`` answers, when it is set;
* errors: ``ConnectionFailed`` (unreachable, retryable), ``AuthenticationFailed``,
  ``Timeout`` (retryable), ``NotFound`` (no stream for a JetStream subject, or no such stream),
  ``Conflict`` (the server refuses the change, e.g. a storage type), ``JetStreamError``;
* URLs in errors lose their password; message text passes through ``context.redact``.

Why one module of ~600 lines: the four plugins share one connection helper, one error mapping
and the stream configuration model that both stream plugins speak.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json as jsonlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar, cast

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, StreamConfig
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.config.models import Duration
from reconciler.errors import (
    ActionError,
    Conflict,
    ConnectionFailed,
    NotFound,
    PluginError,
    Timeout,
)
from reconciler.plugin import ActionContext, Plugin, Request, Response, SubscribePlugin
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
    "JetStreamError",
    "NatsPublish",
    "NatsStream",
    "NatsStreamInfo",
    "NatsSubscribe",
    "StreamConfigModel",
]

URL_VARIABLE = "RECONCILER_NATS_URL"
DEFAULT_URL = "nats://127.0.0.1:4222"

T = TypeVar("T")


class JetStreamError(PluginError):
    """JetStream refused a request for a reason not named more precisely (not retryable)."""

    retryable = False


class _NatsRequest(Request):
    model_config = ConfigDict(alias_generator=to_camel)

    url: str | None = Field(
        None,
        description=(
            "Server URL, e.g. nats://host:4222 (may carry user:password@); defaults to "
            "$RECONCILER_NATS_URL, else nats://127.0.0.1:4222."
        ),
    )
    token: str | None = Field(
        None, description="Authentication token; pass a secret: ${{ secrets.nats_token }}."
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description="Deadline of the call (connect included); bounded by the action's.",
    )

    def server(self) -> str:
        return self.url or default_url(URL_VARIABLE) or DEFAULT_URL


def _message(msg: Msg, context: ActionContext) -> dict[str, Any]:
    """A received message as a JSON-able mapping (``message`` in ``match``)."""
    parsed = parse_json(msg.data)
    return {
        "subject": msg.subject,
        "data": redact_json(parsed, context.redact) if parsed is not None else None,
        "text": context.redact(payload_text(msg.data)),
        "headers": {k: context.redact(v) for k, v in (msg.headers or {}).items()},
    }


async def _ignore_error(_exc: Exception) -> None:
    """nats-py reports asynchronous errors here; the call's own result says what failed."""


async def _connect(request: _NatsRequest, context: ActionContext, seconds: float) -> Client:
    server = request.server()
    shown = context.redact(mask_url(server))
    try:
        return await nats.connect(
            servers=[server],
            token=request.token,
            name="reconciler",
            connect_timeout=max(0.1, seconds),
            allow_reconnect=False,
            max_reconnect_attempts=1,
            error_cb=_ignore_error,
        )
    except nats.errors.NoServersError:
        raise ConnectionFailed(
            f"NATS at {shown} is not reachable", details={"server": shown}
        ) from None
    except nats.errors.AuthorizationError as exc:
        raise AuthenticationFailed(
            f"NATS at {shown} refused the credentials ({type(exc).__name__})",
            details={"server": shown},
        ) from None


_CONFLICT_CODES = frozenset({10052, 10058, 10065})
"""JetStream: a change the stream cannot take, a name in use, subjects overlapping another."""


def _map_error(exc: BaseException, *, where: str, context: ActionContext) -> ActionError:
    reason = redact_all(str(exc) or type(exc).__name__, context)
    details = {"server": where}
    if isinstance(exc, nats.js.errors.NotFoundError):
        return NotFound(f"{where}: {reason}", details=details)
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return NotFound(f"{where}: no JetStream stream answers for this subject", details=details)
    if isinstance(exc, nats.js.errors.APIError):
        code = getattr(exc, "err_code", None)
        if code is not None:
            details["errCode"] = code
        if code in _CONFLICT_CODES:
            return Conflict(f"{where}: {reason}", details=details)
        return JetStreamError(f"{where}: {reason}", details=details)
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return Timeout(f"{where}: no answer in time", details=details)
    if isinstance(exc, nats.errors.AuthorizationError):
        return AuthenticationFailed(f"{where}: {reason}", details=details)
    if isinstance(exc, nats.errors.Error | OSError):
        return ConnectionFailed(f"{where}: {reason}", details=details)
    return PluginError(f"{where}: {reason}", details=details)


async def _with_client(
    request: _NatsRequest,
    context: ActionContext,
    work: Callable[[Client, float], Awaitable[T]],
) -> T:
    """Connect, do ``work``, close; errors named, the whole call bounded by the timeout."""
    seconds = seconds_for(request.timeout, context)
    where = f"NATS at {context.redact(mask_url(request.server()))}"

    async def connect() -> Client:
        return await _connect(request, context, seconds)

    async def call(nc: Client) -> T:
        return await work(nc, seconds)

    async def close(nc: Client) -> None:
        await nc.close()

    return await with_connection(
        seconds=seconds,
        where=where,
        connect=connect,
        work=call,
        close=close,
        expected=(nats.errors.Error, OSError),
        map_error=lambda exc: _map_error(exc, where=where, context=context),
    )


class _NatsPlugin:
    async def init(self) -> None:
        server = default_url(URL_VARIABLE)
        if server is not None:
            await probe_tcp(server, default_port=4222, what="NATS (RECONCILER_NATS_URL)")


# -------------------------------------------------------------------------------- publish


class NatsPublishRequest(_NatsRequest):
    """What ``nats.publish`` sends."""

    subject: str = Field(min_length=1, description="Subject to publish on.")
    data: Any = Field(
        None, description="Payload: a string is sent as UTF-8 text, anything else as JSON."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Message headers.")
    jetstream: bool = Field(
        False,
        description=(
            "Publish through JetStream and wait for the stream's acknowledgement. The action's "
            "idempotency key is sent as Nats-Msg-Id, so a re-executed action is stored once "
            "(within the stream's duplicate window) and reports changed: false."
        ),
    )


class NatsPublishResponse(Response):
    """What the server acknowledged."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(
        False, description="True unless JetStream recognised the message as a duplicate."
    )
    stream: str | None = Field(None, description="Stream that stored the message (JetStream).")
    seq: int | None = Field(None, description="Sequence number in the stream (JetStream).")
    duplicate: bool = Field(False, description="JetStream had already stored this message id.")


class NatsPublish(_NatsPlugin, Plugin[NatsPublishRequest, NatsPublishResponse]):
    """Publish a message on a subject (core NATS, or JetStream with an acknowledgement).

    Errors: ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``Timeout``
    (retryable), ``NotFound`` (JetStream: no stream captures the subject), ``JetStreamError``.
    Default retry: 3 attempts on retryable errors (JetStream deduplicates by idempotency key).
    """

    Request = NatsPublishRequest
    Response = NatsPublishResponse
    retry = SERVER_RETRY
    errors = (ConnectionFailed, AuthenticationFailed, Timeout, NotFound, JetStreamError)

    async def run(self, request: NatsPublishRequest, context: ActionContext) -> NatsPublishResponse:
        payload = (
            request.data.encode()
            if isinstance(request.data, str)
            else jsonlib.dumps(request.data).encode()
        )

        async def work(nc: Client, seconds: float) -> NatsPublishResponse:
            if request.jetstream:
                headers = {"Nats-Msg-Id": context.idempotency_key, **request.headers}
                ack = await nc.jetstream(timeout=seconds).publish(
                    request.subject, payload, headers=headers
                )
                duplicate = bool(ack.duplicate)
                return NatsPublishResponse(
                    changed=not duplicate, stream=ack.stream, seq=ack.seq, duplicate=duplicate
                )
            await nc.publish(request.subject, payload, headers=request.headers or None)
            await nc.flush(timeout=max(1, int(seconds)))
            return NatsPublishResponse(changed=True)

        return await _with_client(request, context, work)


# ------------------------------------------------------------------------------ subscribe


class NatsSubscribeRequest(_NatsRequest):
    """What ``nats.subscribe`` listens to."""

    subject: str = Field(min_length=1, description="Subject (wildcards * and > allowed).")
    queue: str | None = Field(None, description="Queue group: each message goes to one member.")
    jetstream: bool = Field(
        False,
        description=(
            "Read through an ordered JetStream consumer instead of core NATS, so messages "
            "published before the condition started can be seen (see `deliver`)."
        ),
    )
    deliver: Literal["new", "last", "lastPerSubject", "all"] = Field(
        "new",
        description=(
            "JetStream only: start with new messages, the last one, the last of each subject, "
            "or all stored ones."
        ),
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description=(
            "As an action: how long to wait for one message (then Timeout). In a subscribe "
            "condition it bounds connecting only; the state's own conditions bound the wait."
        ),
    )


class NatsMessage(Response):
    """One received message."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: receiving changes nothing.")
    subject: str = Field("", description="Subject the message was published on.")
    data: Any = Field(None, description="The payload parsed as JSON, or null if it is not JSON.")
    text: str = Field("", description="The payload as text (first 64 KiB, secrets replaced).")
    headers: dict[str, str] = Field(default_factory=dict, description="Message headers.")


_DELIVER = {
    "new": DeliverPolicy.NEW,
    "last": DeliverPolicy.LAST,
    "lastPerSubject": DeliverPolicy.LAST_PER_SUBJECT,
    "all": DeliverPolicy.ALL,
}


class NatsSubscribe(_NatsPlugin, SubscribePlugin[NatsSubscribeRequest, NatsMessage]):
    """Wait for messages on a subject; feeds `subscribe` conditions (read-only).

    In a ``subscribe`` condition each message becomes ``message`` (``subject``, ``data`` parsed
    from JSON, ``text``, ``headers``) in ``match``. As an action it returns the first message,
    or raises ``Timeout``. Errors: ``ConnectionFailed`` (retryable), ``AuthenticationFailed``,
    ``Timeout``, ``NotFound`` (JetStream: no stream for the subject), ``JetStreamError``.
    """

    check = True
    Request = NatsSubscribeRequest
    Response = NatsMessage
    errors = (ConnectionFailed, AuthenticationFailed, Timeout, NotFound, JetStreamError)

    async def run(self, request: NatsSubscribeRequest, context: ActionContext) -> NatsMessage:
        stream = cast(AsyncGenerator[Mapping[str, Any], None], self.subscribe(request, context))
        try:
            seconds = seconds_for(request.timeout, context)
            try:
                async with asyncio.timeout(seconds):
                    first = await anext(stream)
            except TimeoutError:
                raise Timeout(
                    f"no message on {request.subject!r} within {seconds:g}s",
                    details={"subject": request.subject},
                ) from None
            return NatsMessage.model_validate(first)
        finally:
            await stream.aclose()

    async def subscribe(
        self, request: NatsSubscribeRequest, context: ActionContext
    ) -> AsyncIterator[Mapping[str, Any]]:
        where = f"NATS at {context.redact(mask_url(request.server()))}"
        seconds = seconds_for(request.timeout, context)
        nc: Client | None = None
        sub: Any = None
        try:
            try:
                async with asyncio.timeout(seconds):
                    nc = await _connect(request, context, seconds)
                    if request.jetstream:
                        sub = await nc.jetstream(timeout=seconds).subscribe(
                            request.subject,
                            ordered_consumer=True,
                            deliver_policy=_DELIVER[request.deliver],
                        )
                    else:
                        sub = await nc.subscribe(request.subject, queue=request.queue or "")
                        await nc.flush(timeout=max(1, int(seconds)))
            except TimeoutError:
                raise Timeout(f"{where}: could not subscribe within {seconds:g}s") from None
            except ActionError:
                raise
            except (nats.errors.Error, OSError) as exc:
                raise _map_error(exc, where=where, context=context) from None
            while True:
                try:
                    msg = await sub.next_msg(timeout=None)
                except nats.errors.TimeoutError:
                    continue
                except (nats.errors.Error, OSError) as exc:
                    raise _map_error(exc, where=where, context=context) from None
                yield _message(msg, context)
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(sub.unsubscribe())
            if nc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(nc.close())


# ------------------------------------------------------------------------------- streams


class StreamConfigModel(BaseModel):
    """A stream's configuration, in the field names of ``nats.stream``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    name: str = Field("", description="Stream name.")
    subjects: list[str] = Field(default_factory=list, description="Subjects it captures.")
    description: str | None = Field(None, description="Free text.")
    retention: str = Field("limits", description="limits, interest or workqueue.")
    storage: str = Field("file", description="file or memory.")
    max_msgs: int = Field(-1, description="Messages kept at most (-1: unlimited).")
    max_bytes: int = Field(-1, description="Bytes kept at most (-1: unlimited).")
    max_age: float = Field(0, description="Seconds a message is kept (0: forever).")
    max_msg_size: int = Field(-1, description="Largest message in bytes (-1: unlimited).")
    max_msgs_per_subject: int = Field(-1, description="Messages per subject (-1: unlimited).")
    discard: str = Field("old", description="When full, discard old messages or refuse new.")
    replicas: int = Field(1, description="Number of replicas.")
    duplicate_window: float = Field(120, description="Seconds message ids are remembered.")


def _as_model(config: StreamConfig) -> StreamConfigModel:
    def text(value: Any, default: str) -> str:
        if value is None:
            return default
        return str(getattr(value, "value", value))

    return StreamConfigModel(
        name=config.name or "",
        subjects=list(config.subjects or []),
        description=config.description,
        retention=text(config.retention, "limits"),
        storage=text(config.storage, "file"),
        max_msgs=config.max_msgs if config.max_msgs is not None else -1,
        max_bytes=config.max_bytes if config.max_bytes is not None else -1,
        max_age=float(config.max_age or 0),
        max_msg_size=config.max_msg_size if config.max_msg_size is not None else -1,
        max_msgs_per_subject=(
            config.max_msgs_per_subject if config.max_msgs_per_subject is not None else -1
        ),
        discard=text(config.discard, "old"),
        replicas=config.num_replicas or 1,
        duplicate_window=float(config.duplicate_window or 0),
    )


class NatsStreamInfoRequest(_NatsRequest):
    """Which stream ``nats.stream.info`` reads."""

    name: str = Field(min_length=1, description="Stream name.")


class StreamState(BaseModel):
    """What a stream holds."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    messages: int = Field(0, description="Messages stored.")
    bytes: int = Field(0, description="Bytes stored.")
    first_seq: int = Field(0, description="Sequence of the oldest message.")
    last_seq: int = Field(0, description="Sequence of the newest message.")
    consumers: int = Field(0, description="Number of consumers.")


class NatsStreamInfoResponse(Response):
    """A stream's configuration and state, or ``exists: false``."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="Always false: reading changes nothing.")
    exists: bool = Field(False, description="Whether the stream exists.")
    config: StreamConfigModel | None = Field(
        None, description="Its configuration (same names as nats.stream); null if missing."
    )
    state: StreamState | None = Field(None, description="What it holds; null if missing.")


class NatsStreamInfo(_NatsPlugin, Plugin[NatsStreamInfoRequest, NatsStreamInfoResponse]):
    """Read a JetStream stream's configuration and state (read-only; `exists: false` if missing).

    Pairs with ``nats.stream``: use it as the ``observe`` probe and write ``desired`` with the
    values the ``nats.stream`` action declares (``maxAge`` and ``duplicateWindow`` in seconds).
    Errors: ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``Timeout``,
    ``JetStreamError``. Default retry: 3 attempts on retryable errors.
    """

    check = True
    Request = NatsStreamInfoRequest
    Response = NatsStreamInfoResponse
    retry = SERVER_RETRY
    errors = (ConnectionFailed, AuthenticationFailed, Timeout, JetStreamError)

    async def run(
        self, request: NatsStreamInfoRequest, context: ActionContext
    ) -> NatsStreamInfoResponse:
        async def work(nc: Client, seconds: float) -> NatsStreamInfoResponse:
            try:
                info = await nc.jetstream(timeout=seconds).stream_info(request.name)
            except nats.js.errors.NotFoundError:
                return NatsStreamInfoResponse(exists=False)
            state = info.state
            return NatsStreamInfoResponse(
                exists=True,
                config=_as_model(info.config),
                state=StreamState(
                    messages=state.messages,
                    bytes=state.bytes,
                    first_seq=state.first_seq,
                    last_seq=state.last_seq,
                    consumers=state.consumer_count,
                ),
            )

        return await _with_client(request, context, work)


class NatsStreamRequest(_NatsRequest):
    """The declared configuration ``nats.stream`` keeps a stream at.

    Only the fields written in ``with:`` are managed: others keep the server's values (its
    defaults when the stream is created).
    """

    name: str = Field(min_length=1, description="Stream name.")
    subjects: list[str] = Field(min_length=1, description="Subjects it captures.")
    description: str | None = Field(None, description="Free text.")
    retention: Literal["limits", "interest", "workqueue"] = Field(
        "limits", description="Retention policy (cannot change once created)."
    )
    storage: Literal["file", "memory"] = Field(
        "file", description="Storage type (cannot change once created)."
    )
    max_msgs: int = Field(-1, ge=-1, description="Messages kept at most (-1: unlimited).")
    max_bytes: int = Field(-1, ge=-1, description="Bytes kept at most (-1: unlimited).")
    max_age: Duration = Field(timedelta(0), description="How long a message is kept (0: forever).")
    max_msg_size: int = Field(-1, ge=-1, description="Largest message in bytes (-1: unlimited).")
    max_msgs_per_subject: int = Field(
        -1, ge=-1, description="Messages per subject (-1: unlimited)."
    )
    discard: Literal["old", "new"] = Field(
        "old", description="When full: discard old messages, or refuse new ones."
    )
    replicas: int = Field(1, ge=1, le=5, description="Number of replicas.")
    duplicate_window: Duration = Field(
        timedelta(minutes=2), description="How long message ids are remembered for dedup."
    )

    def declared(self) -> dict[str, Any]:
        """The managed fields (those written in ``with:``) in StreamConfigModel's names/units."""
        out: dict[str, Any] = {}
        for field in self.model_fields_set - {"url", "token", "timeout"}:
            value = getattr(self, field)
            out[field] = value.total_seconds() if isinstance(value, timedelta) else value
        out["name"] = self.name
        out["subjects"] = list(self.subjects)
        return out


class NatsStreamResponse(Response):
    """What ``nats.stream`` did."""

    model_config = ConfigDict(alias_generator=to_camel)

    changed: bool = Field(False, description="True if the stream was created or updated.")
    created: bool = Field(False, description="True if the stream did not exist.")
    updated: list[str] = Field(
        default_factory=list, description="Fields changed on an existing stream (camelCase)."
    )
    config: StreamConfigModel | None = Field(None, description="The configuration now in force.")


_NATS_FIELD = {"replicas": "num_replicas"}


def _stream_config(base: StreamConfig | None, declared: Mapping[str, Any]) -> StreamConfig:
    """``base`` (or the server's defaults) with the declared fields set."""
    changes = {_NATS_FIELD.get(k, k): v for k, v in declared.items()}
    return dataclasses.replace(base, **changes) if base is not None else StreamConfig(**changes)


def _camel(name: str) -> str:
    return to_camel(name)


class NatsStream(_NatsPlugin, Plugin[NatsStreamRequest, NatsStreamResponse]):
    """Ensure a JetStream stream exists with the declared configuration (create or update).

    Only the fields written in ``with:`` are compared and set; when they already match nothing
    is sent and ``changed`` is false. Errors: ``Conflict`` (the server refuses the change, e.g.
    of ``storage`` or ``retention``, or the subjects overlap another stream),
    ``ConnectionFailed`` (retryable), ``AuthenticationFailed``, ``Timeout``, ``JetStreamError``.
    Default retry: 3 attempts on retryable errors (safe: the call converges).
    """

    Request = NatsStreamRequest
    Response = NatsStreamResponse
    retry = SERVER_RETRY
    errors = (Conflict, ConnectionFailed, AuthenticationFailed, Timeout, JetStreamError)

    async def run(self, request: NatsStreamRequest, context: ActionContext) -> NatsStreamResponse:
        declared = request.declared()

        async def work(nc: Client, seconds: float) -> NatsStreamResponse:
            js = nc.jetstream(timeout=seconds)
            try:
                info = await js.stream_info(request.name)
            except nats.js.errors.NotFoundError:
                created = await js.add_stream(_stream_config(None, declared))
                return NatsStreamResponse(
                    changed=True, created=True, config=_as_model(created.config)
                )
            current = _as_model(info.config).model_dump()
            differing = sorted(k for k, v in declared.items() if current.get(k) != v)
            if not differing:
                return NatsStreamResponse(changed=False, config=_as_model(info.config))
            updated = await js.update_stream(_stream_config(info.config, declared))
            return NatsStreamResponse(
                changed=True,
                updated=[_camel(k) for k in differing],
                config=_as_model(updated.config),
            )

        return await _with_client(request, context, work)
