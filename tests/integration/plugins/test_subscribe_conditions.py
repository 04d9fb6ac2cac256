"""``redis.subscribe`` and ``nats.subscribe`` feeding real ``subscribe`` conditions in the engine.

The engine (:class:`reconciler.engine.runner.Engine`) runs a small workflow on the discovered
plugin registry: a state waits on a subscription racing an ``after`` timer. Messages that do not
satisfy ``match`` are skipped; the first that does wins; when the timer wins instead, the
subscription is closed (no subscriber is left on the server).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from reconciler.config.models import Workflow
from reconciler.engine.journal import MemoryJournal
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry
from tests.conftest import require_server
from tests.support.waiting import until_async


def waiting_workflow(plugin: str, with_: dict[str, Any], *, after: str) -> Workflow:
    return Workflow.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Workflow",
            "metadata": {"name": "waiter"},
            "spec": {
                "inputs": {"version": "1.2"},
                "start": "wait",
                "states": {
                    "wait": {
                        "transitions": [
                            {
                                "to": "ready",
                                "subscribe": {
                                    "plugin": plugin,
                                    "with": with_,
                                    "match": "message.data.version == inputs.version",
                                },
                            },
                            {"to": "gave_up", "after": after},
                        ]
                    },
                    "ready": {"end": "success"},
                    "gave_up": {"end": "failure"},
                },
            },
        }
    )


@pytest.fixture
async def registry() -> AsyncIterator[PluginRegistry]:
    plugins = PluginRegistry.discover()
    yield plugins
    await plugins.close()


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    require_server("127.0.0.1", 6379, "Redis")
    conn = aioredis.Redis()
    yield conn
    await conn.aclose()


async def test_a_redis_message_that_matches_fires_the_transition(
    registry: PluginRegistry, client: aioredis.Redis, unique: str
) -> None:
    channel = f"t:{unique}:deployed"
    workflow = waiting_workflow("redis.subscribe", {"channel": channel}, after="20s")
    engine = Engine(registry, journal=MemoryJournal())
    run = asyncio.create_task(engine.run(workflow))

    async def subscribed() -> bool:
        return bool((await client.pubsub_numsub(channel))[0][1])

    await until_async(subscribed, 5, "the condition to subscribe")
    await client.publish(channel, '{"version": "1.1"}')  # skipped by match
    await client.publish(channel, '{"version": "1.2"}')
    result = await asyncio.wait_for(run, 10)
    assert (result.path, result.error) == (["wait", "ready"], None)
    assert (await client.pubsub_numsub(channel))[0][1] == 0


async def test_when_the_timer_wins_the_subscription_is_closed(
    registry: PluginRegistry, client: aioredis.Redis, unique: str
) -> None:
    channel = f"t:{unique}:never"
    workflow = waiting_workflow("redis.subscribe", {"channel": channel}, after="300ms")
    result = await Engine(registry, journal=MemoryJournal()).run(workflow)
    assert result.path == ["wait", "gave_up"]
    assert (await client.pubsub_numsub(channel))[0][1] == 0


async def test_a_nats_message_published_before_the_wait_is_seen_through_jetstream(
    registry: PluginRegistry, unique: str
) -> None:
    require_server("127.0.0.1", 4222, "NATS")
    import json

    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    stream = f"W_{unique.upper()}"
    await js.add_stream(name=stream, subjects=[f"w{unique}.>"])
    try:
        await js.publish(f"w{unique}.done", json.dumps({"version": "1.2"}).encode())
        workflow = waiting_workflow(
            "nats.subscribe",
            {"subject": f"w{unique}.done", "jetstream": True, "deliver": "all"},
            after="10s",
        )
        result = await Engine(registry, journal=MemoryJournal()).run(workflow)
        assert (result.path, result.error) == (["wait", "ready"], None)
    finally:
        await js.delete_stream(stream)
        await nc.close()
