"""Redis plugins against the real local server (127.0.0.1:6379); keys are unique per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from reconciler_plugins.redis import (
    RedisGet,
    RedisGetRequest,
    RedisSet,
    RedisSetRequest,
    RedisSubscribe,
    RedisSubscribeRequest,
)

from reconciler.errors import Conflict, ConnectionFailed, PathNotAllowed, Timeout
from tests.conftest import require_server
from tests.integration.plugins.conftest import CANARY, ContextFactory
from tests.support.waiting import until_async

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def client(unique: str) -> AsyncIterator[aioredis.Redis]:
    require_server("127.0.0.1", 6379, "Redis")
    conn = aioredis.Redis.from_url(URL)
    try:
        yield conn
    finally:
        keys = [k async for k in conn.scan_iter(match=f"t:{unique}:*")]
        if keys:
            await conn.delete(*keys)
        await conn.aclose()


async def test_set_then_get_then_set_again_reports_nothing_changed(
    client: aioredis.Redis, unique: str, make_context: ContextFactory
) -> None:
    key = f"t:{unique}:config"
    setter, getter = RedisSet(), RedisGet()
    request = RedisSetRequest.model_validate(
        {"url": URL, "key": key, "value": {"replicas": 3}, "ttl": "1h"}
    )
    first = await setter.run(request, make_context())
    second = await setter.run(request, make_context())
    read = await getter.run(RedisGetRequest(url=URL, key=key), make_context())
    assert (first.changed, second.changed) == (True, False)
    assert read.exists and read.json_ == {"replicas": 3} and read.value == '{"replicas":3}'
    assert read.ttl is not None and 3000 < read.ttl <= 3600


async def test_a_different_value_is_written_and_only_if_missing_keeps_the_old_one(
    client: aioredis.Redis, unique: str, make_context: ContextFactory
) -> None:
    key = f"t:{unique}:v"
    await client.set(key, "old")
    kept = await RedisSet().run(
        RedisSetRequest.model_validate(
            {"url": URL, "key": key, "value": "new", "onlyIfMissing": True}
        ),
        make_context(),
    )
    assert (kept.changed, kept.existed) == (False, True)
    written = await RedisSet().run(
        RedisSetRequest.model_validate({"url": URL, "key": key, "value": "new"}), make_context()
    )
    assert written.changed and await client.get(key) == b"new"


async def test_get_of_a_missing_key_is_not_an_error_and_values_are_redacted(
    client: aioredis.Redis, unique: str, make_context: ContextFactory
) -> None:
    missing = await RedisGet().run(RedisGetRequest(url=URL, key=f"t:{unique}:none"), make_context())
    assert (missing.exists, missing.value, missing.ttl) == (False, None, None)
    await client.set(f"t:{unique}:s", f"token={CANARY}")
    read = await RedisGet().run(RedisGetRequest(url=URL, key=f"t:{unique}:s"), make_context())
    assert read.value == "token=***"


async def test_a_key_of_another_type_is_a_conflict(
    client: aioredis.Redis, unique: str, make_context: ContextFactory
) -> None:
    key = f"t:{unique}:list"
    await client.rpush(key, "a")
    with pytest.raises(Conflict):
        await RedisGet().run(RedisGetRequest(url=URL, key=key), make_context())
    with pytest.raises(Conflict) as caught:
        await RedisSet().run(
            RedisSetRequest.model_validate({"url": URL, "key": key, "value": "x"}), make_context()
        )
    assert not caught.value.retryable


async def test_unreachable_server_is_retryable_and_masks_the_password(
    make_context: ContextFactory,
) -> None:
    with pytest.raises(ConnectionFailed) as caught:
        await RedisGet().run(
            RedisGetRequest(url=f"redis://:{CANARY}@127.0.0.1:1/0", key="k"), make_context()
        )
    assert caught.value.retryable and CANARY not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "unix:///var/run/docker.sock",
        "rediss://127.0.0.1:6379/0?ssl_certfile=/etc/ssl/private/key.pem",
        "rediss://127.0.0.1:6379/0?ssl_ca_certs=/proc/self/environ",
    ],
)
async def test_a_file_the_url_names_outside_the_roots_is_refused_before_connecting(
    make_context: ContextFactory, url: str
) -> None:
    with pytest.raises(PathNotAllowed):
        await RedisGet().run(RedisGetRequest(url=url, key="k"), make_context())
    with pytest.raises(PathNotAllowed):
        await RedisSubscribe().run(
            RedisSubscribeRequest.model_validate({"url": url, "channel": "c", "timeout": "1s"}),
            make_context(),
        )


async def test_subscribe_matches_a_pattern_and_parses_json(
    client: aioredis.Redis, unique: str, make_context: ContextFactory
) -> None:
    task = asyncio.create_task(
        RedisSubscribe().run(
            RedisSubscribeRequest.model_validate(
                {"url": URL, "pattern": f"t:{unique}:deploy.*", "timeout": "10s"}
            ),
            make_context(),
        )
    )
    await until_async(  # publish until someone listens
        lambda: client.publish(f"t:{unique}:deploy.web", '{"version": "1.2"}'),
        5,
        "a subscriber to receive the message",
        interval=0.05,
    )
    message = await task
    assert message.channel == f"t:{unique}:deploy.web"
    assert message.pattern == f"t:{unique}:deploy.*"
    assert message.data == {"version": "1.2"}


async def test_a_cancelled_subscription_leaves_no_subscriber(
    client: aioredis.Redis, unique: str, make_context: ContextFactory
) -> None:
    channel = f"t:{unique}:quiet"
    task = asyncio.create_task(
        RedisSubscribe().run(
            RedisSubscribeRequest.model_validate(
                {"url": URL, "channel": channel, "timeout": "30s"}
            ),
            make_context(),
        )
    )

    async def subscribers(count: int) -> bool:
        return bool((await client.pubsub_numsub(channel))[0][1] == count)

    await until_async(lambda: subscribers(1), 5, "the subscription", interval=0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until_async(lambda: subscribers(0), 5, "the unsubscription", interval=0.05)
    assert (await client.pubsub_numsub(channel))[0][1] == 0


async def test_subscribe_as_an_action_times_out(unique: str, make_context: ContextFactory) -> None:
    require_server("127.0.0.1", 6379, "Redis")
    with pytest.raises(Timeout):
        await RedisSubscribe().run(
            RedisSubscribeRequest.model_validate(
                {"url": URL, "channel": f"t:{unique}:none", "timeout": "300ms"}
            ),
            make_context(),
        )


def test_subscribe_needs_exactly_one_of_channel_or_pattern() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RedisSubscribeRequest.model_validate({"channel": "a", "pattern": "b*"})


async def test_init_reports_an_unreachable_configured_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECONCILER_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ConnectionFailed, match="RECONCILER_REDIS_URL"):
        await RedisGet().init()
    monkeypatch.setenv("RECONCILER_REDIS_URL", URL)
    require_server("127.0.0.1", 6379, "Redis")
    await RedisSet().init()
