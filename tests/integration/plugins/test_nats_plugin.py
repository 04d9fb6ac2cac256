"""NATS plugins against the real local server with JetStream (127.0.0.1:4222).

Subjects and streams carry a per-test suffix; streams are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from reconciler_plugins.nats import (
    NatsPublish,
    NatsPublishRequest,
    NatsStream,
    NatsStreamInfo,
    NatsStreamInfoRequest,
    NatsStreamRequest,
    NatsSubscribe,
    NatsSubscribeRequest,
)

from reconciler.errors import Conflict, ConnectionFailed, NotFound, Timeout
from tests.conftest import require_server
from tests.integration.plugins.conftest import CANARY, ContextFactory
from tests.support.waiting import until_async

URL = "nats://127.0.0.1:4222"


@pytest.fixture
async def nc() -> AsyncIterator[Client]:
    require_server("127.0.0.1", 4222, "NATS")
    client = await nats.connect(URL)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def stream_name(nc: Client, unique: str) -> AsyncIterator[str]:
    name = f"T_{unique.upper()}"
    try:
        yield name
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)


def stream_request(name: str, unique: str, **fields: Any) -> NatsStreamRequest:
    return NatsStreamRequest.model_validate(
        {"name": name, "subjects": [f"t{unique}.>"], "url": URL, **fields}
    )


# ------------------------------------------------------------------------------------ streams


async def test_stream_is_created_then_left_alone_then_healed(
    nc: Client, stream_name: str, unique: str, make_context: ContextFactory
) -> None:
    ensure, info = NatsStream(), NatsStreamInfo()
    declared = stream_request(stream_name, unique, maxAge="1h", maxMsgs=1000)

    before = await info.run(NatsStreamInfoRequest(name=stream_name, url=URL), make_context())
    assert before.exists is False

    created = await ensure.run(declared, make_context())
    assert (created.changed, created.created) == (True, True)
    again = await ensure.run(declared, make_context())
    assert (again.changed, again.updated) == (False, [])

    # drift made by hand: someone raises the limits and shortens the age
    js = nc.jetstream()
    current = (await js.stream_info(stream_name)).config
    current.max_msgs, current.max_age = 5, 1800
    await js.update_stream(current)

    healed = await ensure.run(declared, make_context())
    assert (healed.changed, healed.updated) == (True, ["maxAge", "maxMsgs"])
    observed = await info.run(NatsStreamInfoRequest(name=stream_name, url=URL), make_context())
    assert observed.exists and observed.config is not None
    assert (observed.config.max_age, observed.config.max_msgs) == (3600.0, 1000)
    assert observed.config.subjects == [f"t{unique}.>"]


async def test_stream_change_the_server_refuses_is_a_conflict(
    stream_name: str, unique: str, make_context: ContextFactory
) -> None:
    ensure = NatsStream()
    await ensure.run(stream_request(stream_name, unique, storage="file"), make_context())
    with pytest.raises(Conflict) as caught:
        await ensure.run(stream_request(stream_name, unique, storage="memory"), make_context())
    assert not caught.value.retryable
    assert "storage" in str(caught.value)


# ------------------------------------------------------------------------------------ publish


async def test_jetstream_publish_is_deduplicated_by_idempotency_key(
    stream_name: str, unique: str, make_context: ContextFactory
) -> None:
    await NatsStream().run(stream_request(stream_name, unique), make_context())
    publish = NatsPublish()
    request = NatsPublishRequest.model_validate(
        {"url": URL, "subject": f"t{unique}.db", "data": {"db": "app"}, "jetstream": True}
    )
    first = await publish.run(request, make_context("run-9/notify/0"))
    replay = await publish.run(request, make_context("run-9/notify/0"))
    other = await publish.run(request, make_context("run-10/notify/0"))
    assert (first.changed, first.stream, first.seq) == (True, stream_name, 1)
    assert (replay.changed, replay.duplicate, replay.seq) == (False, True, 1)
    assert (other.changed, other.seq) == (True, 2)


async def test_jetstream_publish_without_a_stream_is_not_found(
    unique: str, make_context: ContextFactory
) -> None:
    require_server("127.0.0.1", 4222, "NATS")
    with pytest.raises(NotFound):
        await NatsPublish().run(
            NatsPublishRequest.model_validate(
                {"url": URL, "subject": f"nostream{unique}.x", "jetstream": True}
            ),
            make_context(),
        )


async def test_unreachable_server_is_retryable_and_masks_the_password(
    make_context: ContextFactory,
) -> None:
    with pytest.raises(ConnectionFailed) as caught:
        await NatsPublish().run(
            NatsPublishRequest.model_validate(
                {"url": f"nats://app:{CANARY}@127.0.0.1:1", "subject": "x"}
            ),
            make_context(),
        )
    assert caught.value.retryable
    assert CANARY not in str(caught.value) and "//***@127.0.0.1:1" in str(caught.value)


# ----------------------------------------------------------------------------------- subscribe


async def test_subscribe_yields_parsed_messages_with_secrets_redacted(
    nc: Client, unique: str, make_context: ContextFactory
) -> None:
    subject = f"t{unique}.ready"
    stream = NatsSubscribe().subscribe(
        NatsSubscribeRequest.model_validate({"url": URL, "subject": subject}), make_context()
    )
    receive = asyncio.ensure_future(anext(stream))
    for _ in range(100):  # publish until the subscription is in place
        await nc.publish(subject, json.dumps({"db": "app", "note": CANARY}).encode())
        await nc.flush()
        done, _ = await asyncio.wait({receive}, timeout=0.05)
        if done:
            break
    message = await receive
    await stream.aclose()  # type: ignore[attr-defined]
    assert message["subject"] == subject
    assert message["data"] == {"db": "app", "note": "***"}
    assert CANARY not in message["text"]


async def test_subscribe_as_an_action_times_out_without_a_message(
    unique: str, make_context: ContextFactory
) -> None:
    require_server("127.0.0.1", 4222, "NATS")
    with pytest.raises(Timeout):
        await NatsSubscribe().run(
            NatsSubscribeRequest.model_validate(
                {"url": URL, "subject": f"t{unique}.silent", "timeout": "300ms"}
            ),
            make_context(),
        )


async def test_jetstream_subscribe_sees_a_message_published_before_it_started(
    stream_name: str, unique: str, make_context: ContextFactory
) -> None:
    await NatsStream().run(stream_request(stream_name, unique), make_context())
    await NatsPublish().run(
        NatsPublishRequest.model_validate(
            {"url": URL, "subject": f"t{unique}.done", "data": "finished", "jetstream": True}
        ),
        make_context(),
    )
    message = await NatsSubscribe().run(
        NatsSubscribeRequest.model_validate(
            {"url": URL, "subject": f"t{unique}.done", "jetstream": True, "deliver": "all"}
        ),
        make_context(),
    )
    assert (message.text, message.data) == ("finished", None)


async def test_cancelling_a_subscription_unsubscribes(
    nc: Client, unique: str, make_context: ContextFactory
) -> None:
    subject = f"t{unique}.never"
    request = NatsSubscribeRequest.model_validate(
        {"url": URL, "subject": subject, "timeout": "30s"}
    )
    received: list[Any] = []

    async def listen() -> None:
        async for message in NatsSubscribe().subscribe(request, make_context()):
            received.append(message)

    task = asyncio.create_task(listen())

    async def subscribed() -> bool:  # a probe reaches it once the subscription is in place
        await nc.publish(subject, b"probe")
        return bool(received)

    await until_async(subscribed, 20, "the subscription to receive a probe", interval=0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # No subscriber is left on the subject: a request finds no responders. The server reads
    # each connection on its own, so it may see this request before the subscriber's UNSUB.
    async def no_responders() -> bool:
        try:
            await nc.request(subject, b"anyone?", timeout=0.5)
        except nats.errors.NoRespondersError:
            return True
        except nats.errors.TimeoutError:
            return False  # the subscription is still there (or the reply was slow): ask again
        raise AssertionError("something answered on a subject nobody should listen to")

    await until_async(no_responders, 20, "the subscription to be gone")


async def test_init_reports_an_unreachable_configured_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILER_NATS_URL", f"nats://app:{CANARY}@127.0.0.1:1")
    with pytest.raises(ConnectionFailed, match=r"RECONCILER_NATS_URL.*//\*\*\*@127.0.0.1:1") as e:
        await NatsPublish().init()
    assert CANARY not in str(e.value)
    monkeypatch.setenv("RECONCILER_NATS_URL", URL)
    require_server("127.0.0.1", 4222, "NATS")
    await NatsStream().init()  # a reachable server: ready
