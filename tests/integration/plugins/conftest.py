"""Fixtures for the server-backed plugins' tests: an action context whose run knows a secret.

Every test here talks to a real local server (PostgreSQL, NATS JetStream, Redis) or the
in-process Vault API (``tests/support/vault_server.py``); names are unique per test.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.plugin import ActionContext, RunInfo

CANARY = "canary-Secret-7f3a"
"""A value the run knows as a secret: it must come back as ``***`` wherever it appears."""

ContextFactory = Callable[..., ActionContext]


@pytest.fixture
def make_context(tmp_path: Path) -> ContextFactory:
    def make(key: str = "run-1/state/0", *, deadline: float | None = None) -> ActionContext:
        return ActionContext(
            run=RunInfo(id="run-1", workflow="plugin-test"),
            idempotency_key=key,
            logger=logging.LoggerAdapter(logging.getLogger("plugin-test")),
            workdir=tmp_path,
            redact=lambda text: text.replace(CANARY, "***"),
            deadline=deadline,
        )

    return make


@pytest.fixture
def unique() -> str:
    """A short lower-case suffix that makes server-side names unique to one test."""
    return uuid.uuid4().hex[:10]
