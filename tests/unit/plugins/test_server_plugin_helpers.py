"""What the server-backed plugins share (``reconciler_plugins._common``) and their request models.

No server is needed here: these are the parts that decide what a user sees in errors and what
``validate`` accepts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from reconciler_plugins._common import redact_all
from reconciler_plugins.nats import NatsStreamRequest
from reconciler_plugins.redis import RedisSetRequest
from reconciler_plugins.sql import SqlExecRequest
from reconciler_plugins.vault import VaultKvWriteRequest

from reconciler.plugin import ActionContext, PluginRegistry, RunInfo, SubscribePlugin


def test_redact_all_masks_known_secrets_and_given_values_longest_first() -> None:
    context = ActionContext(
        run=RunInfo(id="r", workflow="w"),
        idempotency_key="k",
        logger=logging.LoggerAdapter(logging.getLogger("t")),
        workdir=Path("."),
        redact=lambda text: text.replace("known", "***"),
    )
    text = "known value pass and password, x"
    assert redact_all(text, context, ["pass", "password", "x"]) == "*** value *** and ***, x"


def test_every_new_plugin_is_registered_with_its_kind() -> None:
    registry = PluginRegistry.discover()
    checks = {"sql.query", "nats.subscribe", "nats.stream.info", "redis.get", "redis.subscribe"}
    checks |= {"vault.kv.read"}
    changers = {"sql.exec", "nats.publish", "nats.stream", "redis.set", "vault.kv.write"}
    for name in checks | changers:
        assert registry.get(name).check is (name in checks), name
    for name in ("nats.subscribe", "redis.subscribe"):
        assert issubclass(registry.get(name), SubscribePlugin)
    assert {"InvalidSQL", "SerializationFailure", "AuthenticationFailed", "JetStreamError"} <= (
        registry.error_names()
    )


def test_request_models_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        SqlExecRequest.model_validate({"dsn": "oracle://x@y/z", "sql": "select 1"})
    with pytest.raises(ValueError, match="subjects"):
        NatsStreamRequest.model_validate({"name": "S", "subjects": []})
    with pytest.raises(ValueError, match="ttl"):
        RedisSetRequest.model_validate({"key": "k", "value": "v", "ttl": 0})
    with pytest.raises(ValueError, match="either"):
        VaultKvWriteRequest.model_validate(
            {"path": "p", "data": {"password": "x"}, "generate": ["password"]}
        )
    with pytest.raises(ValueError, match="give `data`"):
        VaultKvWriteRequest.model_validate({"path": "p"})


def test_stream_request_manages_only_the_fields_written() -> None:
    request = NatsStreamRequest.model_validate(
        {"name": "S", "subjects": ["a.>"], "maxAge": "1h", "url": "nats://h:4222"}
    )
    assert request.declared() == {"name": "S", "subjects": ["a.>"], "max_age": 3600.0}
