"""Retry delays: delay * backoff^(n-1), capped, with full/equal/no jitter (pure, seeded)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from reconciler.config.models import RetryPolicy
from reconciler.engine.retry import SINGLE_ATTEMPT, base_delay, effective_policy, retry_delay
from reconciler.plugin import ActionContext, Plugin, Request, Response


def policy(**kw: Any) -> RetryPolicy:
    return RetryPolicy.model_validate(kw)


def test_base_delay_grows_by_backoff_and_is_capped() -> None:
    p = policy(attempts=10, delay="1s", backoff=2.0, maxDelay="5s", jitter="none")
    assert [base_delay(p, n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_no_jitter_waits_exactly_the_base_delay() -> None:
    p = policy(delay="100ms", backoff=3.0, jitter="none")
    assert retry_delay(p, 2) == pytest.approx(0.3)


def test_full_jitter_is_uniform_between_zero_and_the_base() -> None:
    p = policy(delay="1s", backoff=2.0, jitter="full")
    expected = random.Random(7).uniform(0.0, 4.0)
    assert retry_delay(p, 3, rng=random.Random(7)) == pytest.approx(expected)
    waits = [retry_delay(p, 3, rng=random.Random(seed)) for seed in range(200)]
    assert all(0.0 <= w <= 4.0 for w in waits) and min(waits) < 1.0 < 3.0 < max(waits)


def test_equal_jitter_keeps_at_least_half_the_base() -> None:
    p = policy(delay="2s", backoff=1.0, jitter="equal")
    waits = [retry_delay(p, 1, rng=random.Random(seed)) for seed in range(200)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert retry_delay(p, 1, rng=random.Random(3)) == pytest.approx(
        1.0 + random.Random(3).uniform(0.0, 1.0)
    )


def test_huge_attempt_numbers_do_not_overflow() -> None:
    p = policy(attempts=1000, delay="1s", backoff=100.0, maxDelay="1m", jitter="none")
    assert base_delay(p, 999) == 60.0


class _Req(Request):
    pass


class _WithDefault(Plugin[_Req, Response]):
    Request = _Req
    Response = Response
    retry = RetryPolicy(attempts=4)

    async def run(self, request: _Req, context: ActionContext) -> Response:
        return Response()


def test_state_policy_beats_plugin_default_which_beats_a_single_attempt() -> None:
    state = policy(attempts=2)
    assert effective_policy(state, _WithDefault) is state
    assert effective_policy(None, _WithDefault).attempts == 4
    assert effective_policy(None, None) is SINGLE_ATTEMPT
